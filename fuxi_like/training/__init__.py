"""Training loop pieces: callbacks (monitor, snapshot) and the resumable fit."""

from .callbacks import EpochSetter, Snapshot, TrainingMonitor
from .trainer import fit_model

__all__ = ["EpochSetter", "Snapshot", "TrainingMonitor", "fit_model"]
