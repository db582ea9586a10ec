#!/usr/bin/env python
"""Time RAR's cross-stage data construction (recall stage training, recall pools, look-alike users)
for 100k users and 10k items on seeded taste-group data.

    python benchmark/rar_pools.py [--users 100000 --items 10000 --requests-per-user 2]

Clicks: 40 impressions per user (half in the user's taste group, clicked with p 0.9, else 0.1),
about 20 clicks per user; the cutoff is the median impression time; `--requests-per-user`
impressions after it per user are the requests. Writes `benchmark/results/rar.md` (appends a row
to the table of runs kept there) with wall time per step and peak RSS.
"""

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--requests-per-user", type=int, default=2)
    ap.add_argument("--pool-size", type=int, default=50)
    ap.add_argument("--lookalike-size", type=int, default=10)
    ap.add_argument("--recall-epochs", type=int, default=3)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--note", default="", help="e.g. what else shared the machine")
    ap.add_argument("--out", default=str(ROOT / "benchmark" / "results" / "rar.md"))
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
    row = (f"| {a.users:,} | {a.items:,} | {out['num_pre_clicks']:,} | {len(req):,} | {a.pool_size} | "
           f"{a.lookalike_size} | {a.recall_epochs} | {tm['recall_training_s']:.0f} | {tm['recall_pools_s']:.0f} | "
           f"{tm['lookalike_s']:.0f} | {tm['total_s']:.0f} | {rss_gb:.1f} | {hit[lab].mean():.3f} / "
           f"{hit[~lab].mean():.3f} | {time.strftime('%Y-%m-%d')} {a.note} |")
    print(row)
    path = Path(a.out)
    head = ("# RAR cross-stage data: construction time\n\n"
            "Command: `python benchmark/rar_pools.py` (2-core CPU, ScaNN for items and users). Steps: train the "
            "recall two-tower on the clicks before the cutoff; embed every request's history and take the top "
            "pool items (history removed); embed every user's snapshot and search the look-alike users.\n\n"
            "| users | items | clicks before cutoff | requests | pool | look-alikes | recall epochs | "
            "recall training s | pools s | look-alikes s | total s | peak RSS GB | target in pool (clicked / not) "
            "| run |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    text = path.read_text() if path.is_file() else head
    if "| run |" not in text:
        text = head
    lines = text.rstrip("\n").split("\n")
    last = max(i for i, line in enumerate(lines) if line.startswith("|"))
    lines.insert(last + 1, row)
    from fuxi_like.io_utils import atomic_write_text

    atomic_write_text(path, "\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
