"""Multi-device training: `distribute:` in the model config.

- `null` (default): one device (the GPU chosen with --gpu, or the CPU).
- `mirrored`: `tf.distribute.MirroredStrategy` over all visible GPUs of this machine
  (or `distribute_devices`, e.g. ["/cpu:0", "/cpu:1"] with `logical_cpus: 2` to try
  it on a CPU).
- `multi_worker`: `tf.distribute.MultiWorkerMirroredStrategy` across machines; each
  worker runs the same command with its own `TF_CONFIG`
  (`{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": i}}`).
  Worker 0 is the chief: it alone keeps checkpoints, the `.keras` file and the
  result row; the others write to a scratch folder that is removed.

Batch size and learning rate: `batch_size` is the *global* batch, split evenly
over all replicas (each of R replicas sees batch_size / R rows per step), so a
config trains the same optimisation problem on 1 or R devices. When you raise
`batch_size` to keep each replica busy (e.g. R x the single-device batch), scale
`learning_rate` with it (linear scaling, with a warm-up for large R) — the
library does not change it for you.
"""

import json
import logging
import os

import tensorflow as tf

from .errors import ConfigError

log = logging.getLogger("fuxi_like")
STRATEGIES = (None, "mirrored", "multi_worker")


def configure_logical_cpus(n):
    """Split the host CPU into `n` logical devices (before TensorFlow initialises)."""

    if not n or n <= 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * int(n))
    except RuntimeError as e:  # already initialised in this process
        log.warning("logical_cpus=%s not applied: %s", n, e)


def is_chief_task(tf_config=None):
    """Whether this process is the chief of a multi-worker cluster (TF_CONFIG: the `chief` task, or worker 0 when
    the cluster has no chief); True without TF_CONFIG."""
    cfg = tf_config if tf_config is not None else json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = cfg.get("task", {})
    if not task:
        return True
    return task.get("type") == "chief" or (task.get("type") == "worker" and int(task.get("index", 0)) == 0 and
                                           "chief" not in cfg.get("cluster", {}))


def make_strategy(kind, devices=None):
    """Return (strategy or None, info dict with num_replicas, num_workers, worker_index, is_chief)."""


    if kind not in STRATEGIES:
        raise ConfigError(f"distribute must be null, mirrored or multi_worker, got {kind!r}")
    if kind is None:
        return None, {"num_replicas": 1, "num_workers": 1, "worker_index": 0, "is_chief": True}
    if kind == "mirrored":
        strategy = tf.distribute.MirroredStrategy(devices=devices)
        return strategy, {"num_replicas": strategy.num_replicas_in_sync, "num_workers": 1, "worker_index": 0,
                          "is_chief": True}
    if "TF_CONFIG" not in os.environ:
        raise ConfigError("distribute: multi_worker needs the TF_CONFIG environment variable on every worker")
    cfg = json.loads(os.environ["TF_CONFIG"])
    task = cfg.get("task", {})
    workers = cfg.get("cluster", {}).get("worker", [])
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    patch_keras_multi_worker()
    index = int(task.get("index", 0))
    is_chief = is_chief_task(cfg)
    return strategy, {"num_replicas": strategy.num_replicas_in_sync, "num_workers": max(1, len(workers)),
                      "worker_index": index, "is_chief": is_chief}


def patch_keras_multi_worker():
    """Work around Keras 3.15 reducing scalar logs with `axis=0` under MultiWorkerMirroredStrategy.

    Keras' `reduce_per_replica(..., "mean")` calls `strategy.reduce("MEAN", v, axis=0)`
    for multi-worker strategies, which fails on the scalar loss/metric values of
    `fit`. Replica values of those logs are scalars: reduce them with `axis=None`.
    Applied only when `distribute: multi_worker` is used.
    """
    try:
        # lazy: Keras' private trainer module, patched only for multi_worker runs
        from keras.src.backend.tensorflow import trainer as kt
    except ImportError:  # a Keras layout without this module: nothing to patch
        return
    orig = kt.reduce_per_replica
    if getattr(orig, "_fuxi_patched", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and kt._collective_all_reduce_multi_worker(strategy):
            def _mean(v):
                if not kt._is_per_replica_instance(v):
                    return v
                return strategy.reduce("MEAN", v, axis=None)

            return tf.nest.map_structure(_mean, values)
        return orig(values, strategy, reduction)

    reduce_per_replica._fuxi_patched = True
    kt.reduce_per_replica = reduce_per_replica
