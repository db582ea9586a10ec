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
Writes `benchmark/results/sparcode_<dataset>_serving.md` (`sparcode.md` is the summary across
datasets, kept by hand from these files).
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="ml", choices=["ml", "beauty"])
    ap.add_argument("--rhos", type=int, nargs="+", default=[250, 100])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--latency-queries", type=int, default=200)
    ap.add_argument("--note", default="")
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
    ref = rows["two-tower SASRec + ScaNN"]["qps"]
    ref_lat = lat["two-tower SASRec + ScaNN"][2]

    def f(v, fmt):
        return "" if v is None else format(v, fmt)

    lines = [f"# SparCode serving cost vs two-tower + ScaNN: `{a.dataset}`", "",
             f"Command: `python benchmark/sparcode_qps.py --dataset {a.dataset}` ({os.cpu_count()}-core CPU"
             f"{', ' + a.note if a.note else ''}). Trained models `SparCode_{a.dataset}` and `SASRec_{a.dataset}_rows` "
             f"loaded from their checkpoints; {len(codes)} test users, leave-one-out, full ranking over "
             f"{sc.num_items - 1:,} items, history removed. Build peak = peak NumPy/Python allocations during the "
             "build (tracemalloc; TF's scoring buffers not included). Batched QPS: all test queries at once, "
             f"search only, best of {a.repeats}. Latency: one query at a time, median of {len(xs)}; the query "
             "encoder is compiled (tf.function) for both. Weights: " + provenance, "",
             "| method | Recall@50 | build s | build peak MiB | index MiB | entries | batched QPS | x ScaNN | "
             "encode ms | search ms | latency ms | x ScaNN |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        e, s, t = lat[name]
        lines.append(f"| {name} | {r['recall']:.4f} | {f(r['build_s'], '.2f')} | {f(r['peak_mb'], '.1f')} | "
                     f"{r['size_mb']:.1f} | {f(r['entries'], ',')} | {r['qps']:,.0f} | {r['qps'] / ref:.2f} | "
                     f"{e:.2f} | {s:.2f} | {t:.2f} | {t / ref_lat:.2f} |")
    lines += ["", "The top-rho indexes are built directly (`sparsity: topk`: every code's scores are computed, "
              "only the rho best kept), so they cost the exact index's scoring time with a fraction of its memory. "
              f"SparCode's indexes cover all {n_codes:,} codes (N^M), so no query meets an unindexed code. "
              "ScaNN's and the exact index's build memory is allocated outside NumPy and not traced (their "
              "index MiB is what they hold)."]
    out = ROOT / "benchmark" / "results" / f"sparcode_{a.dataset}_serving.md"
    from fuxi_like.io_utils import atomic_write_text

    atomic_write_text(out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    from fuxi_like.errors import ConfigError

    try:
        main()
    except ConfigError as e:  # e.g. a model not trained yet: the message names the weights path and the command
        sys.exit(f"Config error: {e}")
