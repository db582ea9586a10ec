#!/usr/bin/env python
"""ScaNN vs exact search on clustered vectors: build time, QPS, recall@100, memory.

    python benchmark/retrieval_ann.py [--n 1000000] [--dim 64] [--queries 10000]

Data: `n` x `dim` float32 vectors around 1,000 Gaussian centres (seeded), queries
drawn the same way. Exact baselines: NumPy batched matmul + argpartition
(`ExactIndex`) and ScaNN's own brute-force scorer. ScaNN: the library defaults
(`make_index()`), then a sweep of leaves-to-search for the recall-vs-QPS curve.
Writes `benchmark/results/retrieval.md` and `retrieval_recall_qps.png`.
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def data(n, d, q, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(1000, d)).astype(np.float32)
    x = centres[rng.integers(0, 1000, n)] + 0.5 * rng.normal(size=(n, d)).astype(np.float32)
    qs = centres[rng.integers(0, 1000, q)] + 0.5 * rng.normal(size=(q, d)).astype(np.float32)
    return x, qs


def recall(got, truth):
    k = truth.shape[1]
    return float(np.mean([len(set(a[:k]) & set(b)) / k for a, b in zip(got, truth)]))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--queries", type=int, default=10_000)
    p.add_argument("--k", type=int, default=100)
    args = p.parse_args()
    import scann

    from fuxi_like.io_utils import atomic_write_text
    from fuxi_like.retrieval import ExactIndex, make_index

    x, q = data(args.n, args.dim, args.queries)
    k = args.k
    rows = []

    t = time.perf_counter()
    exact = ExactIndex().build(x)
    b_exact = time.perf_counter() - t
    t = time.perf_counter()
    truth, _ = exact.search(q, k)
    s_exact = time.perf_counter() - t
    rows.append(("exact: NumPy matmul + argpartition", b_exact, args.queries / s_exact, 1.0, exact.memory_bytes()))
    print(rows[-1], flush=True)

    t = time.perf_counter()
    bf = scann.scann_ops_pybind.builder(x, k, "dot_product").score_brute_force().build()
    b_bf = time.perf_counter() - t
    t = time.perf_counter()
    got, _ = bf.search_batched(q)
    s_bf = time.perf_counter() - t
    rows.append(("exact: ScaNN brute force", b_bf, args.queries / s_bf, recall(got, truth), x.nbytes))
    print(rows[-1], flush=True)
    best_exact_qps = max(rows[0][2], rows[1][2])

    t = time.perf_counter()
    idx = make_index().build(x, k=k)
    b_sc = time.perf_counter() - t
    t = time.perf_counter()
    got, _ = idx.search(q, k)
    s_sc = time.perf_counter() - t
    default = ("ScaNN, library defaults " + str({kk: idx.resolved[kk] for kk in
                                                 ("num_leaves", "num_leaves_to_search", "reorder")}),
               b_sc, args.queries / s_sc, recall(got, truth), idx.memory_bytes())
    rows.append(default)
    print(rows[-1], flush=True)

    curve = []
    for leaves in (10, 25, 50, 100, 200, 400):
        t = time.perf_counter()
        got, _ = idx.search(q, k, leaves_to_search=leaves)
        dt = time.perf_counter() - t
        curve.append((leaves, args.queries / dt, recall(got, truth)))
        print("curve", curve[-1], flush=True)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([c[2] for c in curve], [c[1] for c in curve], "o-", label="ScaNN (leaves searched annotated)")
    for leaves, qps, rec in curve:
        ax.annotate(str(leaves), (rec, qps), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.axhline(best_exact_qps, color="C3", ls="--", label="best exact search")
    ax.scatter([default[3]], [default[2]], color="C2", zorder=5, label="library defaults")
    ax.set_xlabel(f"recall@{k} vs exact")
    ax.set_ylabel("queries / s")
    ax.set_yscale("log")
    ax.set_title(f"{args.n:,} x {args.dim} clustered, {args.queries:,} queries")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out_png = ROOT / "benchmark/results/retrieval_recall_qps.png"
    fig.savefig(out_png, dpi=110)

    lines = ["# Retrieval: ScaNN vs exact search", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores. {args.n:,} x {args.dim} float32 vectors around 1,000 "
             f"clustered centres, {args.queries:,} queries, top-{k}, dot product. Command: "
             f"`python benchmark/retrieval_ann.py --n {args.n} --dim {args.dim} --queries {args.queries}`.", "",
             "| method | build s | queries/s | recall@100 | index memory MB | QPS vs best exact |",
             "|---|---|---|---|---|---|"]
    for name, b, qps, rec, mem in rows:
        lines.append(f"| {name} | {b:.1f} | {qps:,.0f} | {rec:.4f} | {mem / 2 ** 20:,.0f} | {qps / best_exact_qps:.1f}x |")
    lines += ["", "Recall vs QPS over leaves searched (same index): ![curve](retrieval_recall_qps.png)", "",
              "| leaves searched | queries/s | recall@100 |", "|---|---|---|"]
    lines += [f"| {l} | {qps:,.0f} | {rec:.4f} |" for l, qps, rec in curve]
    target = default[3] >= 0.97 and default[2] >= 10 * best_exact_qps
    lines += ["", f"Target (defaults: recall@100 >= 0.97 at >= 10x the best exact QPS): "
              f"{'met' if target else 'NOT met'} (recall {default[3]:.4f}, {default[2] / best_exact_qps:.1f}x).", ""]
    atomic_write_text(ROOT / "benchmark/results/retrieval.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
