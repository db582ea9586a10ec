#!/usr/bin/env python
"""Memory of loading a processed split into the in-memory pipeline, stage by stage (RSS rise and peak rise
over each stage, from /proc/self/status; the peak is reset before each stage via /proc/self/clear_refs).

    python benchmark/diagnostics/load_memory.py [--rows 1000000]

Stages on the Criteo-like training split: `load_split` (parquet -> numpy), `_pack_columns` (numpy -> the
pipeline's TF tensors), and a whole `InputPipeline(...).dataset("train")` plus its first batch.
Linux only.
"""

import argparse
import gc
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from fuxi_like.tf_env import configure  # noqa: E402

configure()


def status_mb(key):
    return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1]) // 1024


def stage(name, fn):
    gc.collect()
    open("/proc/self/clear_refs", "w").write("5")  # reset VmHWM
    before = status_mb("VmRSS")
    out = fn()
    print(f"{name}: RSS +{status_mb('VmRSS') - before} MB, peak +{status_mb('VmHWM') - before} MB", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    from benchmark.profile_train_step import processed
    from fuxi_like.data import tf_dataset

    fmap = processed(args.rows)
    arrays = stage("load_split", lambda: tf_dataset.load_split(fmap, "train"))
    print(f"  (the arrays: {sum(v.nbytes for v in arrays.values()) >> 20} MB)")
    packed = stage("_pack_columns (consumes the arrays)", lambda: tf_dataset._pack_columns(arrays))
    del packed  # the arrays dict is empty now: _pack_columns popped every column
    ds = stage("InputPipeline.dataset('train'), from disk", lambda: tf_dataset.InputPipeline(fmap, 4096, seed=1)
               .dataset("train", shuffle=True))
    stage("first batch", lambda: next(iter(ds)))


if __name__ == "__main__":
    main()
