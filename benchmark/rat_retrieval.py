#!/usr/bin/env python
"""Time and memory of RAT's sample retrieval (model_zoo/RAT/src/sample_retrieval.py).

    python benchmark/rat_retrieval.py                 # 100k and 1M training rows
    python benchmark/rat_retrieval.py --rows 100000

Data: ML-Tag-like seeded synthetic rows (user, item, tag with power-law popularity
P(i) ~ i^-s over 100k users (s=0.8, top user 2.2% of rows), 50k items (s=0.9, 5.0%) and
20k tags (s=1.0, 9.5%)) plus 2 low-cardinality context fields (7 and 24 values), as a harder
case for the exact bound. Each size retrieves K=5 for every training row from the other 9 folds and
for valid+test rows (20% of the training size) from the whole training set. Each size runs
in its own process so peak RSS is per size. Appends one row per (fields, size) to section 0 of
`benchmark/results/runs/rat.csv` and regenerates `benchmark/results/rat.md` (`benchmark/tables.py`; the table
shows this run's rows, earlier runs stay in the CSV; the real-dataset rows are section 1 of the same CSV).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def power_ids(rng, n, vocab, s):
    """ids 1..vocab with P(i) proportional to i^-s (bounded power law)."""
    p = np.arange(1, vocab + 1, dtype=np.float64) ** -s
    return rng.choice(vocab, size=n, p=p / p.sum()).astype(np.int64) + 1


def make(n, seed=0):
    rng = np.random.default_rng(seed)
    return {"user": power_ids(rng, n, 100_000, 0.8), "item": power_ids(rng, n, 50_000, 0.9),
            "tag": power_ids(rng, n, 20_000, 1.0), "daytime": rng.integers(1, 8, n),
            "hour": rng.integers(1, 25, n)}


def one(n, fields):
    from fuxi_like.experiment import load_model_module

    SampleRetriever = load_model_module(ROOT / "model_zoo" / "RAT").sample_retrieval.SampleRetriever

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    pool = make(n)
    queries = make(n // 5, seed=1)
    t0 = time.time()
    r = SampleRetriever({f: pool[f] for f in fields}, fields, k=5)
    t_index = time.time() - t0
    train_idx, _ = r.query_pool_kfold(10)
    t_train = time.time() - t0 - t_index
    r.query({f: queries[f] for f in fields})
    total = time.time() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"rows": n, "queries": n + n // 5, "fields": fields, "index_s": round(t_index, 2),
            "train_kfold_s": round(t_train, 1), "total_s": round(total, 1),
            "peak_rss_mb": round(rss / 1024, 0), "data_rss_mb": round(rss0 / 1024, 0),
            "empty_slot_frac": round(float((train_idx < 0).mean()), 4), **r.stats}


def csv_rows(results, source):
    """The runs-CSV rows (section 0) of the child processes' results."""
    return [{"section": 0, "training rows": r["rows"], "fields": ",".join(r["fields"]), "queries": r["queries"],
             "total s": r["total_s"], "of which train K-fold s": r["train_kfold_s"], "candidate pairs": r["pairs"],
             "dense-scored queries": r["dense_fallback"], "peak RSS MB": r["peak_rss_mb"],
             "empty-slot share": r["empty_slot_frac"], "source": source} for r in results]


def write_results(rows, results_dir=None):
    """Append `rows` (csv_rows') to `<results_dir>/runs/rat.csv` and regenerate `rat.md` (results_dir:
    default benchmark/results). Returns the table's path."""
    sys.path.insert(0, str(ROOT / "benchmark"))
    import tables

    return tables.record("rat.csv", rows, ["rat.md"], results_dir or tables.RESULTS)[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="*", default=[100_000, 1_000_000])
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--fields", default="user,item,tag")
    ap.add_argument("--results-dir", default=None,
                    help="a copy of benchmark/results/ to append to and regenerate (default: benchmark/results/)")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(one(args.rows[0], args.fields.split(","))))
        return
    results = []
    for fields in ("user,item,tag", "user,item,tag,daytime,hour"):
        for n in args.rows:
            out = subprocess.run([sys.executable, __file__, "--child", "--rows", str(n), "--fields", fields],
                                 capture_output=True, text=True, check=True)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            print(res, flush=True)
            results.append(res)
    sys.path.insert(0, str(ROOT / "benchmark"))
    import tables

    path = write_results(csv_rows(results, tables.run_source(__file__)), args.results_dir)
    print(f"wrote {path}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
