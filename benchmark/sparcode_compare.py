#!/usr/bin/env python
"""SparCode vs two-tower (same SASRec encoder) + ScaNN vs all-to-all, on a leave-one-out dataset.

    python benchmark/sparcode_compare.py --dataset ml       # or beauty

Trains (or resumes, or reuses when finished) `SparCode_<dataset>` (model_zoo/SparCode), `SparCode_<dataset>_a2a`
(the all-to-all upper bound: the same encoder, scorer and budget trained without the code bottleneck,
`quantize: false`), `SASRec_<dataset>_rows` (model_zoo/SASRec: the same rows, encoder size, negatives, batch and
epochs, one target per row as SparCode: equal budgets) and `SASRec_<dataset>_rows_seqloss` (the same with a loss at
every history position: more training targets, labelled so), then on the test users:
- SparCode through its code index over all N^M codes (`sparsity: positive`, exact), through
  brute force (the same scores item by item) and with its own weights fed unquantized tokens (not a trained
  model: how much the codes cost this model);
- the trained all-to-all model by brute force;
- the two-tower through a ScaNN index (and exact search for reference), and its per-position-loss variant;
- Recall@50 / NDCG@50, index build time and size, queries per second over the whole test
  set (batched) and single-query latency (encode + search, one query at a time, median);
- the sparsity curve: Recall@50 and index size when each code keeps only its rho best items.
Appends the rows (section 0: the methods; section 1: the sparsity curve) to
`benchmark/results/runs/sparcode_<dataset>.csv`, regenerates `benchmark/results/sparcode_<dataset>.md` from it
(`benchmark/tables.py`; the table shows this run's rows, earlier runs stay in the CSV) and writes
`sparcode_<dataset>_sparsity.png`. The training line (best epochs) is printed, not in the CSV: it is prose
of `benchmark/table_specs/sparcode_<dataset>.md`.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
METRICS = ["Recall@50", "NDCG@50", "Recall@10", "NDCG@10"]


def train(model, expid, seed=None):
    """Train `expid`, or reuse it when the model folder's results.csv records a finished run with
    the same params and data (its best weights are loaded; nothing is retrained). With `seed`, the run is that
    seed's (`run_expid --seed`) and is always trained: the reuse check knows the expid's own seed only."""
    from fuxi_like.errors import ConfigError
    from fuxi_like.runner import load_trained, run_expid

    folder = ROOT / "model_zoo" / model
    if seed is not None:
        return run_expid(folder / "config", expid, model_dir=folder, overrides={"seed": seed})
    try:
        loaded = load_trained(folder / "config", expid, model_dir=folder)
    except ConfigError:
        loaded = None
    if loaded is not None and loaded["finished"] is not None:
        row = loaded["finished"]
        print(f"reusing finished run {expid} ({row['time']}, params_hash {row['params_hash']})", flush=True)
        return {"model": loaded["model"], "state": {"best_epoch": int(row["best_epoch"]),
                                                    "history": [None] * int(row["epochs_run"])}}
    return run_expid(folder / "config", expid, model_dir=folder)


def metrics(ranked, target):
    from fuxi_like.retrieval.evaluation import metrics_from_ranks, target_ranks

    return metrics_from_ranks(target_ranks(ranked, target.reshape(-1)), METRICS)


def timed(fn, *a, **kw):
    t = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t


def single_query_latency(fn, n, warmup=5):
    for i in range(min(warmup, n)):  # compiles the encoder; not timed
        fn(i)
    times = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e3


A2A = "all-to-all, trained without codes (quantize: false), brute force"


def csv_rows(rows, rhos, sizes, recalls, ndcgs, source, seed=""):
    """The runs-CSV rows: section 0 per method (`rows`: name -> measurements), section 1 per rho."""
    out = [{"section": 0, "seed": seed, "method": name, **{m: r[m] for m in METRICS}, "index build s": r.get("build_s"),
            "index MiB": r.get("size_mb"), "entries": r.get("entries"), "QPS (batched search)": r.get("qps"),
            "latency ms (1 query)": r.get("latency_ms"), "source": source} for name, r in rows.items()]
    out += [{"section": 1, "seed": seed, "rho": rho, "index MiB": s, "Recall@50": r, "NDCG@50": n, "source": source}
            for rho, s, r, n in zip(rhos, sizes, recalls, ndcgs)]
    return out


def write_results(dataset, rows, results_dir=None):
    """Append `rows` (csv_rows') to `<results_dir>/runs/sparcode_<dataset>.csv` and regenerate
    `sparcode_<dataset>.md` (results_dir: default benchmark/results). Returns the table's path."""
    sys.path.insert(0, str(ROOT / "benchmark"))
    import tables

    return tables.record(f"sparcode_{dataset}.csv", rows, [f"sparcode_{dataset}.md"], results_dir or tables.RESULTS)[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="ml", choices=["ml", "beauty", "scientific"])
    ap.add_argument("--seed", type=int, default=None,
                    help="train every model with this seed (run_expid --seed; always retrained) and record it")
    ap.add_argument("--latency-queries", type=int, default=100)
    ap.add_argument("--note", default="", help="recorded in the rows' source cell (the command line)")
    ap.add_argument("--results-dir", default=None,
                    help="a copy of benchmark/results/ to append to and regenerate (default: benchmark/results/)")
    a = ap.parse_args(argv)
    from fuxi_like.data.tf_dataset import InputPipeline
    from fuxi_like.retrieval.index import make_index

    res_dir = Path(a.results_dir) if a.results_dir else ROOT / "benchmark" / "results"
    sc_run = train("SparCode", f"SparCode_{a.dataset}", a.seed)
    tt_run = train("SASRec", f"SASRec_{a.dataset}_rows", a.seed)
    a2a_model = train("SparCode", f"SparCode_{a.dataset}_a2a", a.seed)["model"]
    tt_seq = train("SASRec", f"SASRec_{a.dataset}_rows_seqloss", a.seed)["model"]
    sc, tt = sc_run["model"], tt_run["model"]
    rows = {}

    # ------------------------------------------------------------------ SparCode
    data = sc.embed_queries(InputPipeline(sc.feature_map, 1024).dataset("test"))
    hist, target = data["history"], data["target"]
    n_codes = sc.quantizer.n ** sc.quantizer.m
    index, build_s = timed(sc.build_code_index, np.arange(n_codes), verbose=1)
    (ranked, _), search_s = timed(index.search, data["codes"], 50, exclude=hist)
    pipe1 = InputPipeline(sc.feature_map, 1)
    xs = [x for x, _ in pipe1.dataset("test").take(a.latency_queries)]

    import tensorflow as tf

    sc_encode = tf.function(lambda x: sc.quantizer.codes(sc.tokens(x, training=False)), reduce_retracing=True)

    def sc_one(i):
        codes = np.asarray(sc_encode(xs[i]))
        index.search(codes, 50, exclude=np.asarray(xs[i][sc.history_field]))

    rows["SparCode (code index, exact)"] = dict(
        metrics(ranked, target), build_s=build_s, size_mb=index.memory_bytes() / 2 ** 20,
        entries=len(index.items), qps=len(ranked) / search_s, latency_ms=single_query_latency(sc_one, len(xs)))
    (bf, _), bf_s = timed(sc.brute_force, data["query"], 50, hist, verbose=1)
    rows["SparCode (brute force, same scores)"] = dict(metrics(bf, target), qps=len(bf) / bf_s)
    (a2a, _), a2a_s = timed(sc.brute_force, data["raw"], 50, hist, verbose=1)
    rows["SparCode weights, unquantized tokens (brute force; not a trained model)"] = dict(metrics(a2a, target),
                                                                                           qps=len(a2a) / a2a_s)
    adata = a2a_model.embed_queries(InputPipeline(a2a_model.feature_map, 1024).dataset("test"))
    (tr, _), tr_s = timed(a2a_model.brute_force, adata["raw"], 50, adata["history"], verbose=1)
    rows[A2A] = dict(metrics(tr, adata["target"]), qps=len(tr) / tr_s)

    sizes, recalls, ndcgs = [], [], []
    rhos = [r for r in (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000) if r < sc.num_items]
    for rho in rhos:
        cut = index.truncate(rho)
        r, _ = cut.search(data["codes"], 50, exclude=hist)
        m = metrics(r, target)
        sizes.append(cut.memory_bytes() / 2 ** 20)
        recalls.append(m["Recall@50"])
        ndcgs.append(m["NDCG@50"])

    # ------------------------------------------------------------------ two-tower
    tdata = tt.embed_queries(InputPipeline(tt.feature_map, 1024).dataset("test"))
    ids, vecs = tt.embed_catalogue()
    for name, backend in (("two-tower SASRec + ScaNN", "scann"), ("two-tower SASRec, exact search", "exact")):
        idx = make_index(backend, metric="dot")
        _, tb = timed(lambda idx=idx: idx.build(vecs, ids=ids, **({"k": 100} if backend == "scann" else {})))
        (r, _), ts = timed(tt.retrieve, tdata["query"], idx, 50, tdata.get("history"))
        txs = [x for x, _ in InputPipeline(tt.feature_map, 1).dataset("test").take(a.latency_queries)]
        tt_encode = tf.function(lambda x: tt(x, training=False), reduce_retracing=True)

        def tt_one(i, idx=idx, txs=txs, tt_encode=tt_encode):
            q = np.asarray(tt_encode(txs[i]))
            tt.retrieve(q, idx, 50, np.asarray(txs[i][tt.history_field]))

        rows[name] = dict(metrics(r, tdata["target"]), build_s=tb, size_mb=idx.memory_bytes() / 2 ** 20,
                          qps=len(r) / ts, latency_ms=single_query_latency(tt_one, len(txs)))

    sdata = tt_seq.embed_queries(InputPipeline(tt_seq.feature_map, 1024).dataset("test"))
    sids, svecs = tt_seq.embed_catalogue()
    sidx = make_index("exact", metric="dot")
    sidx.build(svecs, ids=sids)
    (sr, _), s_s = timed(tt_seq.retrieve, sdata["query"], sidx, 50, sdata.get("history"))
    rows["two-tower SASRec, loss at every position (more targets), exact search"] = dict(
        metrics(sr, sdata["target"]), qps=len(sr) / s_s)

    # ------------------------------------------------------------------ report
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.plot(sizes, recalls, "o-", label="SparCode, top-rho per code")
    for s, r, rho in zip(sizes, recalls, rhos):
        ax.annotate(str(rho), (s, r), textcoords="offset points", xytext=(3, -10), fontsize=7)
    ax.axhline(rows["SparCode (code index, exact)"]["Recall@50"], ls=":", c="C0", label="SparCode, all positive entries")
    ax.axhline(rows["two-tower SASRec + ScaNN"]["Recall@50"], ls="--", c="C1", label="two-tower SASRec + ScaNN")
    ax.axhline(rows[A2A]["Recall@50"], ls="-.", c="C2", label="all-to-all (trained)")
    ax.set_xscale("log")
    ax.set_xlabel("index size (MiB, log scale; labels: rho)")
    ax.set_ylabel("test Recall@50")
    ax.set_title(f"SparCode sparsity vs recall ({a.dataset}, leave-one-out, full ranking)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    png = res_dir / f"sparcode_{a.dataset}_sparsity.png"
    fig.savefig(png, dpi=120)

    sys.path.insert(0, str(ROOT / "benchmark"))
    import tables

    out = write_results(a.dataset, csv_rows(rows, rhos, sizes, recalls, ndcgs, tables.run_source(__file__, argv),
                                             "" if a.seed is None else a.seed),
                        res_dir)
    print(out.read_text())
    print(f"Training: SparCode best epoch {sc_run['state']['best_epoch']} of {len(sc_run['state']['history'])}, "
          f"two-tower best epoch {tt_run['state']['best_epoch']} of {len(tt_run['state']['history'])} "
          f"(prose of benchmark/table_specs/sparcode_{a.dataset}.md: edit it if this changed).")


if __name__ == "__main__":
    main()
