"""Training callbacks: per-epoch validation with a monitor, checkpoints, resume.

`TrainingMonitor` (one callback, FuxiCTR's checkpoint-and-early-stop semantics):
after each epoch it evaluates the validation split in inference mode, computes
the monitor value (a metric, or a weighted sum of metrics), and then
- improved by more than `min_delta`: saves the best weights (atomically), resets
  the patience counter;
- not improved: multiplies the learning rate by `lr_decay_factor` (floored at
  `min_lr`) when `reduce_lr_on_plateau`, and stops after `early_stop_patience`
  evaluations without improvement.
It also writes a resume snapshot every epoch: all model and optimizer variables
(including dropout RNG states), the monitor's own state and the epoch, so a run
restarted after a crash continues exactly where it stopped (`Snapshot`).
"""

import json
import logging
import os
import shutil
import time
import zipfile
from pathlib import Path

import keras
import numpy as np

from ..io_utils import atomic_write_text
from ..metrics import monitor_value

log = logging.getLogger("fuxi_like")


class EpochSetter(keras.callbacks.Callback):
    """Tells the input pipeline which epoch starts (for its seeded shuffle)."""

    def __init__(self, pipeline):
        super().__init__()
        self.pipeline = pipeline

    def on_epoch_begin(self, epoch, logs=None):
        self.pipeline.epoch.assign(epoch)


class SnapshotError(Exception):
    """A resume snapshot that cannot be read back (truncated, garbled, or another model's)."""


class Snapshot:
    """All variables of a model + optimizer and a JSON state, saved atomically."""

    def __init__(self, directory):
        self.dir = Path(directory)

    @staticmethod
    def _variables(model):
        vs = list(model.variables)
        if model.optimizer is not None:
            vs += list(model.optimizer.variables)
        return vs

    def exists(self):
        return (self.dir / "state.json").is_file()

    def save(self, model, state):
        tmp = self.dir.parent / f".{self.dir.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        vs = self._variables(model)
        np.savez(tmp / "variables.npz", **{f"v{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(vs)})
        state = dict(state, variable_shapes=[list(v.shape) for v in vs])
        atomic_write_text(tmp / "state.json", json.dumps(state, indent=1))
        old = self.dir.parent / f".{self.dir.name}.old-{os.getpid()}"
        if self.dir.exists():
            os.replace(self.dir, old)
        os.replace(tmp, self.dir)
        shutil.rmtree(old, ignore_errors=True)

    def load_state(self):
        p = self.dir / "state.json"
        try:
            with open(p, encoding="utf-8") as f:
                state = json.load(f)
        except (OSError, ValueError) as e:
            raise SnapshotError(f"{p}: {type(e).__name__}: {e}") from None
        if not isinstance(state, dict) or "variable_shapes" not in state:
            raise SnapshotError(f"{p}: not a snapshot state (no variable_shapes)")
        return state

    def restore(self, model):
        """Assign saved values; the model and optimizer must already be built. Every array is read and checked
        before the first assignment, so a damaged file (SnapshotError) leaves the model as it was."""
        state = self.load_state()
        vs = self._variables(model)
        # paths differ between instances (auto-numbered layer names); order and shapes do not
        if [list(v.shape) for v in vs] != state["variable_shapes"]:
            raise SnapshotError(f"{self.dir} does not match this model's variables (another model's snapshot)")
        p = self.dir / "variables.npz"
        try:
            with np.load(p) as data:
                values = [data[f"v{i:05d}"] for i in range(len(vs))]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise SnapshotError(f"{p}: {type(e).__name__}: {e}") from None
        for v, value in zip(vs, values):
            if list(value.shape) != list(v.shape):
                raise SnapshotError(f"{p}: an array has shape {list(value.shape)}, the variable {list(v.shape)}")
        for v, value in zip(vs, values):
            v.assign(value)
        return state

    def quarantine(self):
        """Move a damaged snapshot aside (`<dir>.damaged-<time>`, kept for inspection); returns the new path."""
        dst = self.dir.parent / f"{self.dir.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        os.replace(self.dir, dst)
        return dst

    def delete(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class TrainingMonitor(keras.callbacks.Callback):
    def __init__(self, valid_data, metrics, monitor="AUC", mode="max", patience=2, min_delta=1e-6,
                 reduce_lr_on_plateau=True, lr_decay_factor=0.1, min_lr=1e-6, best_path=None,
                 save_best_only=True, snapshot=None, group_id=None, state=None, verbose=1):
        super().__init__()
        self.valid_data = valid_data
        self.metrics = list(metrics)
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.min_delta = min_delta
        self.reduce_lr = reduce_lr_on_plateau
        self.factor = lr_decay_factor
        self.min_lr = min_lr
        self.best_path = best_path
        self.save_best_only = save_best_only
        self.snapshot = snapshot
        self.group_id = group_id
        self.verbose = verbose
        self.state = state or {"best": None, "best_epoch": None, "wait": 0, "history": [], "train_seconds": 0.0}
        self._t0 = None

    def _improved(self, value):
        best = self.state["best"]
        if best is None:
            return True
        return value > best + self.min_delta if self.mode == "max" else value < best - self.min_delta

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        train_s = time.time() - self._t0
        t1 = time.time()
        results = self.model.evaluate_split(self.valid_data, self.metrics, self.group_id)
        value = monitor_value(self.monitor, results)
        eval_s = time.time() - t1
        for k, v in results.items():
            logs[f"val_{k}"] = v
        logs["val_monitor"] = value
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        msg = " - ".join(f"{k}: {v:.6f}" for k, v in results.items())
        if self._improved(value):
            self.state.update(best=value, best_epoch=epoch + 1, wait=0)
            note = "improved"
            if self.best_path:
                self._save_weights()
        else:
            self.state["wait"] += 1
            note = f"no improvement ({self.state['wait']}/{self.patience})"
            if self.reduce_lr and lr > self.min_lr:
                new_lr = max(lr * self.factor, self.min_lr)
                self.model.optimizer.learning_rate.assign(new_lr)
                note += f", lr {lr:.2e} -> {new_lr:.2e}"
            if not self.save_best_only and self.best_path:
                self._save_weights()
            if self.state["wait"] >= self.patience:
                self.model.stop_training = True
                note += ", early stop"
        self.state["train_seconds"] += train_s
        self.state["history"].append({"epoch": epoch + 1, "loss": float(logs.get("loss", np.nan)),
                                      "train_seconds": train_s, "eval_seconds": eval_s, "lr": lr,
                                      **{f"val_{k}": v for k, v in results.items()}})
        log.info("Epoch %d: train %.1fs, eval %.1fs, loss %.6f | valid %s | monitor %.6f %s",
                 epoch + 1, train_s, eval_s, logs.get("loss", float("nan")), msg, value, note)
        if self.snapshot is not None:
            self.snapshot.save(self.model, {"epoch": epoch + 1, "monitor": self.state,
                                            "stop_training": bool(self.model.stop_training)})

    def _save_weights(self):
        path = Path(self.best_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".tmp-{os.getpid()}-{path.name}"
        self.model.save_weights(tmp)
        os.replace(tmp, path)
