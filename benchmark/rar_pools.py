#!/usr/bin/env python
"""Time RAR's cross-stage data construction (recall stage training, recall pools, look-alike users)
for 100k users and 10k items on seeded taste-group data.

    python benchmark/rar_pools.py [--users 100000 --items 10000 --requests-per-user 2]

Clicks: 40 impressions per user (half in the user's taste group, clicked with p 0.9, else 0.1),
about 20 clicks per user; the cutoff is the median impression time; `--requests-per-user`
impressions after it per user are the requests. Appends one row (wall time per step, peak RSS, recall-pool
hit rates) to `benchmark/results/runs/rar.csv` and regenerates `benchmark/results/rar.md`, the table of all
runs (`benchmark/tables.py`).
"""

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_results(rows, results_dir=None):
    """Append `rows` to `<results_dir>/runs/rar.csv` and regenerate `rar.md` (results_dir: default
    benchmark/results). Returns the table's path."""
    sys.path.insert(0, str(ROOT / "benchmark"))
    import tables

    return tables.record("rar.csv", rows, ["rar.md"], results_dir or tables.RESULTS)[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--requests-per-user", type=int, default=2)
    ap.add_argument("--pool-size", type=int, default=50)
    ap.add_argument("--lookalike-size", type=int, default=10)
    ap.add_argument("--recall-epochs", type=int, default=3)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--note", default="", help="e.g. what else shared the machine (the table's run column)")
    ap.add_argument("--results-dir", default=None,
                    help="a copy of benchmark/results/ to append to and regenerate (default: benchmark/results/)")
    a = ap.parse_args(argv)

    from fuxi_like.experiment import load_model_module

    rar_seq = load_model_module(ROOT / "model_zoo" / "RAR").rar_seq  # RAR's recipe and cross-stage builder
    synthetic_impressions, build_cross_stage, codes = (rar_seq.synthetic_impressions, rar_seq.build_cross_stage,
                                                       rar_seq.codes)

    t0 = time.perf_counter()
    imp = synthetic_impressions(n_users=a.users, n_items=a.items, n_groups=100, impressions_per_user=40, seed=0)
    clicks = imp[imp["label"] == 1][["user", "item", "ts"]]
    cutoff = float(np.quantile(imp["ts"], 0.5))
    after = imp[imp["ts"] >= cutoff]
    req = after.groupby("user", sort=False).head(a.requests_per_user).sort_values("ts").reset_index(drop=True)
    gen_s = time.perf_counter() - t0
    print(f"{len(clicks):,} clicks ({int((clicks['ts'] < cutoff).sum()):,} before the cutoff), "
          f"{len(req):,} requests, generated in {gen_s:.1f}s", flush=True)
    out = build_cross_stage(clicks, req, cutoff, pool_size=a.pool_size, lookalike_size=a.lookalike_size,
                            lookalike_history=10, history_len=50, backend=a.backend,
                            recall={"epochs": a.recall_epochs, "batch_size": 1024, "learning_rate": 3e-3})
    tm = out["timings"]
    target = codes(req["item"], out["items"])
    hit = (out["recall"] == target[:, None]).any(1)
    lab = req["label"].to_numpy() == 1
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    sys.path.insert(0, str(ROOT / "benchmark"))
    import tables

    row = {"section": 0, "users": a.users, "items": a.items, "clicks before cutoff": out["num_pre_clicks"],
           "requests": len(req), "pool": a.pool_size, "look-alikes": a.lookalike_size, "recall epochs": a.recall_epochs,
           "recall training s": tm["recall_training_s"], "pools s": tm["recall_pools_s"], "look-alikes s": tm["lookalike_s"],
           "total s": tm["total_s"], "peak RSS GB": rss_gb,
           "target in pool (clicked / not)": f"{hit[lab].mean():.3f} / {hit[~lab].mean():.3f}",
           "run": f"{time.strftime('%Y-%m-%d')} {a.note}".strip(), "source": tables.run_source(__file__, argv)}
    print(row)
    path = write_results([row], a.results_dir)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
