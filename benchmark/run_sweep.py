#!/usr/bin/env python
"""Run (or resume) a hyperparameter sweep, then print its summary.

    python benchmark/run_sweep.py benchmark/sweeps/DeepFM_frappe_tuner.yaml --gpu 0 1 2 3
    python benchmark/run_sweep.py <tuner.yaml> --gpu -1 -1            # two CPU workers
    python benchmark/run_sweep.py <tuner.yaml> --search random --max-trials 8 --seed 1

Rerunning the same command skips finished trials and reruns interrupted ones.
Exits non-zero when any trial failed (their log paths are printed).
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("tuner_config")
    p.add_argument("--gpu", nargs="+", type=int, default=[-1])
    p.add_argument("--max-trials", type=int, default=None)
    p.add_argument("--search", choices=["grid", "random"], default=None)
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args()
    from fuxi_like.errors import ConfigError
    from fuxi_like.summarize import summarize
    from fuxi_like.tuner import run_sweep

    try:
        rc, _ = run_sweep(args.tuner_config, args.gpu, args.max_trials, args.search, args.seed)
    except ConfigError as e:
        print(f"Config error: {e}", file=sys.stderr)
        return 2
    results = Path(args.tuner_config).resolve().with_suffix("") / "results.csv"
    if results.is_file():
        print(summarize(str(results)))
    return rc


if __name__ == "__main__":
    sys.exit(main())
