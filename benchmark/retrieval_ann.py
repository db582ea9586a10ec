#!/usr/bin/env python
"""ScaNN vs exact search on clustered vectors: build time, QPS, recall@100, memory.

    python benchmark/retrieval_ann.py [--n 1000000] [--dim 64] [--queries 10000]

Data: `n` x `dim` float32 vectors around 1,000 Gaussian centres (seeded), queries
drawn the same way. Exact baselines: NumPy batched matmul + argpartition
(`ExactIndex`) and ScaNN's own brute-force scorer. ScaNN: the library defaults
(`make_index()`), then a sweep of leaves-to-search for the recall-vs-QPS curve.
Appends the rows (section 0: the methods; section 1: the leaves-to-search curve) to
`benchmark/results/runs/retrieval.csv`, regenerates `benchmark/results/retrieval.md` from it
(`benchmark/tables.py`; this run's rows, earlier runs stay in the CSV) and writes `retrieval_recall_qps.png`.
The setup sentence and the target line are prose of `benchmark/table_specs/retrieval.md`: printed here, edit
the spec when they change.
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


def csv_rows(rows, curve, best_exact_qps, source):
    """The runs-CSV rows: section 0 per method (name, build s, QPS, recall, memory bytes), section 1 per
    leaves-to-search setting (leaves, QPS, recall)."""
    out = [{"section": 0, "method": name, "build s": b, "queries/s": qps, "recall@100": rec,
            "index memory MB": mem / 2 ** 20, "QPS vs best exact": qps / best_exact_qps, "source": source}
           for name, b, qps, rec, mem in rows]
    out += [{"section": 1, "leaves searched": leaves, "queries/s": qps, "recall@100": rec, "source": source}
            for leaves, qps, rec in curve]
    return out


def write_results(rows, results_dir=None):
    """Append `rows` (csv_rows') to `<results_dir>/runs/retrieval.csv` and regenerate `retrieval.md`
    (results_dir: default benchmark/results). Returns the table's path."""
    sys.path.insert(0, str(ROOT / "benchmark"))
    import tables

    return tables.record("retrieval.csv", rows, ["retrieval.md"], results_dir or tables.RESULTS)[0]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--queries", type=int, default=10_000)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--results-dir", default=None,
                   help="a copy of benchmark/results/ to append to and regenerate (default: benchmark/results/)")
    args = p.parse_args()
    import scann

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
    out_png = Path(args.results_dir or ROOT / "benchmark/results") / "retrieval_recall_qps.png"
    fig.savefig(out_png, dpi=110)

    sys.path.insert(0, str(ROOT / "benchmark"))
    import tables

    out = write_results(csv_rows(rows, curve, best_exact_qps, tables.run_source(__file__)), args.results_dir)
    print(out.read_text())
    target = default[3] >= 0.97 and default[2] >= 10 * best_exact_qps
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores. {args.n:,} x {args.dim} float32 vectors, "
          f"{args.queries:,} queries, top-{k}. Target (defaults: recall@100 >= 0.97 at >= 10x the best exact QPS): "
          f"{'met' if target else 'NOT met'} (recall {default[3]:.4f}, {default[2] / best_exact_qps:.1f}x). "
          "(prose of benchmark/table_specs/retrieval.md: edit it if this changed)")


if __name__ == "__main__":
    main()
