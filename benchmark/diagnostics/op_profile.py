#!/usr/bin/env python
"""Where a training step's time goes, op by op (TF profiler trace, summed per op and per op type).

    python benchmark/diagnostics/op_profile.py deepfm --batch 10000             # DeepFM on the 1M-row Criteo-like set
    python benchmark/diagnostics/op_profile.py deepfm --batch 10000 --no-mlp    # the same without its MLP tower
    python benchmark/diagnostics/op_profile.py rat                              # RAT_frappe (needs its trained weights)

Times are thread time over the CPU's compute threads per step (ops of two threads overlap, and the
trace itself slows ops down): read them as shares, not as wall time. Run it alone.
"""

import argparse
import collections
import glob
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from fuxi_like.tf_env import configure  # noqa: E402  TF's host allocator as the entry points set it

configure()


def deepfm_step(batch, mlp):
    import keras

    from benchmark.micro_ab import _criteo_batch
    from fuxi_like.training.optimizers import Adam

    fmap, DeepFM, x, y = _criteo_batch(batch)
    keras.utils.set_random_seed(1)
    m = DeepFM(fmap, hidden_units=[400, 400, 400] if mlp else [], embedding_dim=16)
    m.compile(optimizer=Adam(1e-3, global_clipnorm=10.0), loss="binary_crossentropy")
    return lambda: m.train_on_batch(x, y)


def rat_step(jit_compile=False):
    from fuxi_like.runner import load_trained
    from fuxi_like.training.optimizers import Adam

    d = load_trained(ROOT / "model_zoo" / "RAT" / "config", "RAT_frappe")
    m = d["model"]
    x, y = next(iter(d["pipeline"].dataset("train", shuffle=True)))
    m.compile(optimizer=Adam(1e-3, global_clipnorm=10.0), loss="binary_crossentropy", jit_compile=jit_compile)
    return lambda: m.train_on_batch(x, y)


def op_times(logdir, steps):
    """{op name: ms per step}, {op type: ms per step} from the trace's compute threads."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1]).read_bytes())
    by_op, by_type = collections.Counter(), collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for ev in line.events:
                name = plane.event_metadata[ev.metadata_id].name
                if ":" in name and "::" not in name:  # "scope/op:Type"; not the executor's own events
                    ms = ev.duration_ps / 1e9 / steps
                    by_op[name] += ms
                    by_type[name.rsplit(":", 1)[1]] += ms
    return by_op, by_type


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", choices=["deepfm", "rat"])
    ap.add_argument("--batch", type=int, default=4096, help="DeepFM batch size")
    ap.add_argument("--no-mlp", action="store_true", help="DeepFM without its MLP tower")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--top", type=int, default=30)
    a = ap.parse_args()
    import tensorflow as tf

    from fuxi_like.errors import ConfigError

    try:
        step = deepfm_step(a.batch, not a.no_mlp) if a.model == "deepfm" else rat_step()
    except ConfigError as e:  # e.g. RAT_frappe not trained yet: the weights path and the command to train it
        sys.exit(f"error: {e}")
    for _ in range(3):
        step()
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(a.steps):
            step()
        tf.profiler.experimental.stop()
        by_op, by_type = op_times(logdir, a.steps)
    print(f"thread ms per step, all ops: {sum(by_op.values()):.1f}\n\nby op type:")
    for name, ms in by_type.most_common(a.top):
        print(f"{ms:9.1f}  {name}")
    print("\nby op:")
    for name, ms in by_op.most_common(a.top):
        print(f"{ms:9.1f}  {name}")


if __name__ == "__main__":
    main()
