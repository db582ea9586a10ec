"""`fit_model`: resumable training with validation, early stopping and best weights."""

import logging
from pathlib import Path

from ..data.audio import media_errors
from .callbacks import EpochSetter, Snapshot, SnapshotError, TrainingMonitor
from .params import training_params

log = logging.getLogger("fuxi_like")


def build_for_training(model, dataset):
    """Create all model and optimizer variables (needed before restoring values)."""
    x, _ = next(iter(dataset.take(1)))
    model(x, training=False)
    model.build_loss_layers(x)  # BaseModel hook: e.g. a retrieval model's item tower, called only by the loss
    model.optimizer.build(model.trainable_variables)


def fit_model(model, pipeline, params, checkpoint_prefix, run_hash="", group_id=None, callbacks=()):
    """Train `model` on the pipeline's train split, validating on its valid split.

    `checkpoint_prefix`: path prefix for `<prefix>.weights.h5` (best weights) and
    `<prefix>.resume/` (snapshot deleted after a finished run). A snapshot whose
    `run_hash` differs from this run's is discarded, never resumed.
    Returns the monitor state: best value and epoch, history, train seconds.
    """
    params = training_params(params)
    prefix = Path(checkpoint_prefix)
    best_path = prefix.parent / (prefix.name + ".weights.h5")
    snapshot = Snapshot(prefix.parent / (prefix.name + ".resume"))
    train_ds = pipeline.dataset("train", shuffle=params["shuffle"])
    valid_split = "valid" if pipeline.has_split("valid") else "test"
    valid_ds = pipeline.dataset(valid_split)
    build_for_training(model, train_ds)

    initial_epoch, state, finished = 0, None, False
    if params["resume"] and snapshot.exists():
        try:
            saved = snapshot.load_state()
            if saved.get("run_hash") == run_hash:
                snapshot.restore(model)  # reads and checks every array before assigning any
                initial_epoch, state = saved["epoch"], saved["monitor"]
                finished = saved.get("stop_training", False) or initial_epoch >= params["epochs"]
                log.info("Resuming from %s after epoch %d", snapshot.dir, initial_epoch)
            else:
                log.warning("Ignoring resume snapshot %s: it belongs to other params", snapshot.dir)
                snapshot.delete()
        except SnapshotError as e:
            moved = snapshot.quarantine()
            log.warning("Resume snapshot unreadable (%s); moved aside to %s, training starts over", e, moved)

    class _Tagged(Snapshot):
        def save(self, m, st):
            super().save(m, dict(st, run_hash=run_hash))

    monitor = TrainingMonitor(
        valid_ds, params["metrics"], monitor=params["monitor"], mode=params["monitor_mode"],
        patience=params["early_stop_patience"], reduce_lr_on_plateau=params["reduce_lr_on_plateau"],
        lr_decay_factor=params["lr_decay_factor"], min_lr=params["min_lr"], best_path=best_path,
        save_best_only=params["save_best_only"], snapshot=_Tagged(snapshot.dir), group_id=group_id,
        state=state, verbose=params["verbose"])
    if not finished:
        with media_errors():  # a media decoding failure inside tf.data comes out as MediaError naming the file
            model.fit(train_ds, epochs=params["epochs"], initial_epoch=initial_epoch,
                      callbacks=[EpochSetter(pipeline), monitor, *callbacks], verbose=params["verbose"],
                      shuffle=False)
    if best_path.is_file():
        model.load_weights(best_path)
        log.info("Loaded best weights from epoch %s (%s)", monitor.state["best_epoch"], best_path)
    snapshot.delete()
    return monitor.state
