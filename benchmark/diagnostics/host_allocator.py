#!/usr/bin/env python
"""DeepFM training steps with TF's host tensors from malloc vs from its BFC pool (fuxi_like/tf_env.py).

    python benchmark/diagnostics/host_allocator.py [--pairs 3] [--batch-size 4096] [--rows 1000000]

Each run is a fresh process (the allocator is chosen when TF starts), alternating malloc, BFC, malloc, ...
Each trains DeepFM (embedding 16, MLP 400x3, Adam, clipping 10) on the Criteo-like pipeline for
`--steps` steps after `--warmup`, and reports ms per step, minor page faults per step and kernel
(system) CPU ms per step from getrusage. Run it alone for timings worth quoting; the fault counts do
not depend on other load.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import json, os, resource, sys, time
sys.path.insert(0, {root!r})
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
from benchmark.diagnostics.profile_train_step import HP, processed
import keras
from fuxi_like.data.tf_dataset import InputPipeline
from fuxi_like.experiment import load_model_module
from fuxi_like.training.optimizers import get_optimizer
from pathlib import Path
fmap = processed({rows})
DeepFM = load_model_module(Path({root!r}) / "model_zoo" / "DeepFM").DeepFM
train = InputPipeline(fmap, {batch}, seed=1).dataset("train", shuffle=True).repeat()
keras.utils.set_random_seed(1)
m = DeepFM(fmap, hidden_units=HP["hidden_units"], embedding_dim=HP["embedding_dim"])
m.compile(optimizer=get_optimizer("adam", HP["learning_rate"], 10.0), loss="binary_crossentropy")
marks = []
class T(keras.callbacks.Callback):
    def on_train_batch_end(self, b, logs=None):
        r = resource.getrusage(resource.RUSAGE_SELF)
        marks.append((time.perf_counter(), r.ru_minflt, r.ru_stime))
m.fit(train, epochs=1, steps_per_epoch={warmup} + {steps}, verbose=0, callbacks=[T()])
a, b = marks[{warmup} - 1], marks[-1]
print("RESULT " + json.dumps({{"ms": (b[0] - a[0]) / {steps} * 1e3, "faults": (b[1] - a[1]) / {steps},
                               "sys_ms": (b[2] - a[2]) / {steps} * 1e3}}))
"""


def run(bfc, args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPU_")}
    env.update(CUDA_VISIBLE_DEVICES="", TF_CPU_ALLOCATOR_USE_BFC="true" if bfc else "false")
    code = CHILD.format(root=str(ROOT), rows=args.rows, batch=args.batch_size, warmup=args.warmup, steps=args.steps)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    lines = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
    if out.returncode or not lines:
        sys.exit(f"child failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(lines[0][7:])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args()
    res = {"malloc": [], "BFC": []}
    for i in range(args.pairs):
        for name in ("malloc", "BFC"):
            r = run(name == "BFC", args)
            res[name].append(r)
            print(f"[{i + 1}/{args.pairs}] {name}: {r['ms']:.1f} ms/step, {r['faults']:,.0f} minor faults/step, "
                  f"{r['sys_ms']:.1f} ms kernel CPU/step", flush=True)
    for name, rs in res.items():
        print(f"{name}: median {np.median([r['ms'] for r in rs]):.1f} ms/step, "
              f"{np.median([r['faults'] for r in rs]):,.0f} faults/step, {np.median([r['sys_ms'] for r in rs]):.1f} ms kernel")
    ratio = np.median([m["ms"] / b["ms"] for m, b in zip(res["malloc"], res["BFC"])])
    print(f"malloc / BFC step time, median over pairs: {ratio:.3f}")


if __name__ == "__main__":
    main()
