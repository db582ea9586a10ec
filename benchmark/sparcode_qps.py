#!/usr/bin/env python
"""SparCode serving cost vs two-tower + ScaNN: index build time and memory, batched QPS, latency.

    python benchmark/sparcode_qps.py --dataset ml        # or beauty

Loads the trained `SparCode_<dataset>` and `SASRec_<dataset>_rows` (train them first, e.g. with
`benchmark/sparcode_compare.py`; nothing is trained here) and measures on the test users:
- index build: seconds and memory (the index's bytes, and the peak of NumPy allocations during the
  build, traced with tracemalloc) for SparCode's exact code index over all N^M codes, its top-rho
  truncations, and the two-tower's ScaNN and exact indexes;
- batched search QPS: all test queries searched at once (query encoding excluded), best of
  `--repeats`; Recall@50 alongside, so the speed is read with its quality;
- single-query latency: one query at a time, encode (compiled with tf.function) + search, median
  over `--latency-queries` queries, encode and search also given apart.
Appends one row per method to `benchmark/results/runs/sparcode_<dataset>_serving.csv` and regenerates
`benchmark/results/sparcode_<dataset>_serving.md` from it (`benchmark/tables.py`; the table shows this run's
rows, earlier runs stay in the CSV). The page's prose (test users, repeats, the weights' provenance) is in
`benchmark/table_specs/sparcode_<dataset>_serving.md`: printed here, edit the spec when it changes.
`sparcode.md` (the summary across datasets, `runs/sparcode.csv`) is collected by hand from these runs.
"""

import argparse
import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load(model, expid):
    from fuxi_like.runner import load_trained

    folder = ROOT / "model_zoo" / model
    return load_trained(folder / "config", expid, model_dir=folder)


def traced(fn):
    """(result, seconds, peak MiB of Python/NumPy allocations during fn)."""
    tracemalloc.start()
    t = time.perf_counter()
    out = fn()
    sec = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    return out, sec, peak


def best_time(fn, repeats):
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def median_ms(times):
    return float(np.median(times)) * 1e3


def latency(xs, encode, search, warmup=5):
    """One query at a time: median ms of encode, of search and of both. The first `warmup` queries
    (repeated at the end) compile the encoder and are not timed."""
    enc_t, search_t, tot_t = [], [], []
    for i, x in enumerate(xs[:warmup] + xs):
        t0 = time.perf_counter()
        q = encode(x)
        t1 = time.perf_counter()
        search(q, x)
        t2 = time.perf_counter()
        if i >= warmup:
            enc_t.append(t1 - t0)
            search_t.append(t2 - t1)
            tot_t.append(t2 - t0)
    return median_ms(enc_t), median_ms(search_t), median_ms(tot_t)


def recall50(ranked, target):
    from fuxi_like.retrieval.evaluation import metrics_from_ranks, target_ranks

    return metrics_from_ranks(target_ranks(ranked, np.asarray(target).reshape(-1)), ["Recall@50"])["Recall@50"]


def csv_rows(rows, lat, source):
    """The runs-CSV rows, one per method (`rows`: name -> measurements, `lat`: name -> (encode, search,
    total) ms); the x ScaNN columns are against the two-tower + ScaNN row of the same run."""
    ref = rows["two-tower SASRec + ScaNN"]["qps"]
    ref_lat = lat["two-tower SASRec + ScaNN"][2]
    out = []
    for name, r in rows.items():
        e, s, t = lat[name]
        out.append({"section": 0, "method": name, "Recall@50": r["recall"], "build s": r["build_s"],
                    "build peak MiB": r["peak_mb"], "index MiB": r["size_mb"], "entries": r["entries"],
                    "batched QPS": r["qps"], "x ScaNN": r["qps"] / ref, "encode ms": e, "search ms": s,
                    "latency ms": t, "x ScaNN (2)": t / ref_lat, "source": source})
    return out


def write_results(dataset, rows, results_dir=None):
    """Append `rows` (csv_rows') to `<results_dir>/runs/sparcode_<dataset>_serving.csv` and regenerate
    `sparcode_<dataset>_serving.md` (results_dir: default benchmark/results). Returns the table's path."""
    sys.path.insert(0, str(ROOT / "benchmark"))
    import tables

    name = f"sparcode_{dataset}_serving"
    return tables.record(f"{name}.csv", rows, [f"{name}.md"], results_dir or tables.RESULTS)[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="ml", choices=["ml", "beauty"])
    ap.add_argument("--rhos", type=int, nargs="+", default=[250, 100])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--latency-queries", type=int, default=200)
    ap.add_argument("--note", default="", help="recorded in the rows' source cell (the command line)")
    ap.add_argument("--results-dir", default=None,
                    help="a copy of benchmark/results/ to append to and regenerate (default: benchmark/results/)")
    a = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from fuxi_like.data.tf_dataset import InputPipeline
    from fuxi_like.retrieval.index import make_index

    sc_run, tt_run = load("SparCode", f"SparCode_{a.dataset}"), load("SASRec", f"SASRec_{a.dataset}_rows")
    sc, tt = sc_run["model"], tt_run["model"]
    provenance = " ".join(
        f"`{r['params']['expid']}`: " + (f"finished run of {r['finished']['time']} (best epoch {r['finished']['best_epoch']})."
                                         if r["finished"] else "weights not from a finished run of the current config.")
        for r in (sc_run, tt_run))
    rows, lat = {}, {}

    # ------------------------------------------------------------ SparCode
    sdata = sc.embed_queries(InputPipeline(sc.feature_map, 1024).dataset("test"))
    hist, target, codes = sdata["history"], sdata["target"], sdata["codes"]
    n_codes = sc.quantizer.n ** sc.quantizer.m
    index, build_s, build_peak = traced(lambda: sc.build_code_index(np.arange(n_codes)))
    variants = [("SparCode, exact code index (all positive entries)", index, build_s, build_peak)]
    for rho in a.rhos:  # built as a deployment would (`sparsity: topk`), not truncated from the exact index
        cut, cut_s, cut_peak = traced(lambda rho=rho: sc.build_code_index(np.arange(n_codes), sparsity="topk", rho=rho))
        variants.append((f"SparCode, top {rho} per code", cut, cut_s, cut_peak))
    for name, idx, bs, peak in variants:
        (ranked, _), qs = best_time(lambda idx=idx: idx.search(codes, 50, exclude=hist), a.repeats)
        rows[name] = dict(recall=recall50(ranked, target), build_s=bs, peak_mb=peak, size_mb=idx.memory_bytes() / 2 ** 20,
                          entries=len(idx.items), qps=len(codes) / qs)

    xs = [x for x, _ in InputPipeline(sc.feature_map, 1).dataset("test").take(a.latency_queries)]
    sc_encode = tf.function(lambda x: sc.quantizer.codes(sc.tokens(x, training=False)), reduce_retracing=True)
    for name, idx, _, _ in variants:
        lat[name] = latency(xs, lambda x: np.asarray(sc_encode(x)),
                            lambda c, x, idx=idx: idx.search(c, 50, exclude=np.asarray(x[sc.history_field])))

    # ------------------------------------------------------------ two-tower
    tdata = tt.embed_queries(InputPipeline(tt.feature_map, 1024).dataset("test"))
    ids, vecs = tt.embed_catalogue()
    txs = [x for x, _ in InputPipeline(tt.feature_map, 1).dataset("test").take(a.latency_queries)]
    tt_encode = tf.function(lambda x: tt(x, training=False), reduce_retracing=True)
    for name, backend in (("two-tower SASRec + ScaNN", "scann"), ("two-tower SASRec, exact search", "exact")):
        idx = make_index(backend, metric="dot")
        _, tb, tpeak = traced(lambda idx=idx, backend=backend: idx.build(
            vecs, ids=ids, **({"k": 100} if backend == "scann" else {})))
        (ranked, _), qs = best_time(lambda idx=idx: tt.retrieve(tdata["query"], idx, 50, tdata.get("history")), a.repeats)
        rows[name] = dict(recall=recall50(ranked, tdata["target"]), build_s=tb, peak_mb=tpeak,
                          size_mb=idx.memory_bytes() / 2 ** 20, entries=None, qps=len(tdata["query"]) / qs)
        lat[name] = latency(txs, lambda x: np.asarray(tt_encode(x)),
                            lambda q, x, idx=idx: tt.retrieve(q, idx, 50, np.asarray(x[tt.history_field])))

    # ------------------------------------------------------------ report
    sys.path.insert(0, str(ROOT / "benchmark"))
    import tables

    out = write_results(a.dataset, csv_rows(rows, lat, tables.run_source(__file__, argv)), a.results_dir)
    print(out.read_text())
    print(f"Run ({os.cpu_count()}-core CPU): {len(codes)} test users, full ranking over {sc.num_items - 1:,} items, "
          f"batched QPS best of {a.repeats}, latency median of {len(xs)}, {n_codes:,} codes. Weights: {provenance} "
          f"(prose of benchmark/table_specs/sparcode_{a.dataset}_serving.md: edit it if this changed).")


if __name__ == "__main__":
    from fuxi_like.errors import ConfigError

    try:
        main()
    except ConfigError as e:  # e.g. a model not trained yet: the message names the weights path and the command
        sys.exit(f"Config error: {e}")
