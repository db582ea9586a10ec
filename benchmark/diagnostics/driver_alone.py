#!/usr/bin/env python
"""Our side of the peer comparison run alone, without the harness around it: `ours_driver.py` on the
1M-row Criteo-like DeepFM spec, alternating a CSV build in the training process (as the harness does)
with reusing the processed data already on disk. Answers whether the in-process build slows training.

    python benchmark/diagnostics/driver_alone.py [--pairs 2] [--batch-size 4096]

Needs the Criteo-like CSVs of a previous `run_peers.py` run (benchmark/work/criteo_like_1000000/).
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "benchmark" / "work"

CHILD = r"""
import json, os, sys
sys.path.insert(0, {root!r})
import fuxi_like.data.build_dataset as bd
if os.environ.get("REUSE_PROCESSED") == "1":  # the data processed by the previous run, not rebuilt
    build = bd.build_dataset
    bd.build_dataset = lambda cfg, rebuild=False: build(cfg, rebuild=False)
from benchmark.peers import ours_driver
ours_driver.main(json.loads(sys.argv[1]))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4096)
    args = ap.parse_args()
    csv = WORK / "criteo_like_1000000"
    if not (csv / "train.csv").is_file():
        sys.exit(f"error: {csv}/train.csv is missing; run `python benchmark/peers/run_peers.py` once first")
    spec = {"dataset_id": "criteo_like_DeepFM_alone", "paths": {s: str(csv / f"{s}.csv") for s in ("train", "valid", "test")},
            "numeric": [f"I{i}" for i in range(1, 14)], "categorical": [f"C{i}" for i in range(1, 27)],
            "label": "label", "min_categr_count": 2, "model": "DeepFM",
            "hparams": {"embedding_dim": 16, "hidden_units": [400, 400, 400], "batch_size": args.batch_size,
                        "learning_rate": 1e-3, "num_cross_layers": 3},
            "epochs": 1, "seed": 2024, "warmup_steps": 10, "work_dir": str(WORK / "runs")}
    for i in range(args.pairs):
        for reuse in ("0", "1"):
            out = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT)), json.dumps(spec)],
                                 capture_output=True, text=True,
                                 env=dict(os.environ, REUSE_PROCESSED=reuse, CUDA_VISIBLE_DEVICES=""))
            lines = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
            if out.returncode or not lines:
                sys.exit(f"driver failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
            r = json.loads(lines[0][7:])
            print(f"[{i + 1}/{args.pairs}] {'processed data reused' if reuse == '1' else 'CSV built in process'}: "
                  f"{r['train_samples_per_s']:,.0f} samples/s (build {r['prep_s']:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
