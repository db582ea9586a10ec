"""ContentRecModel: the evaluation and loss shared by the content-based recommenders (GreenRec, UIST).

Rows of the `content_rec` data: training rows hold a click and sampled negatives (`candidates`, the click first);
evaluation rows hold one candidate each, grouped by `impression_id`, with a `cold` column (the candidate never occurs
in training). A subclass sets `self.cold_field` and may override `refresh_item_cache()` (called before every
prediction pass, e.g. to encode the whole item vocabulary once).
"""

import time

import keras
import numpy as np
from keras import ops

from ..metrics import evaluate_cold, evaluate_metrics
from .base_model import BaseModel


class ContentRecModel(BaseModel):
    cold_field = "cold"

    def refresh_item_cache(self):
        """Hook: refresh whatever inference reads instead of running the item encoder (default: nothing)."""

    @staticmethod
    def _pointwise(y_true, logits):
        """Binary cross-entropy of every candidate: the click (candidate 0) 1, the negatives 0."""
        labels = ops.concatenate([ops.ones_like(logits[:, :1]), ops.zeros_like(logits[:, 1:])], axis=1)
        return ops.mean(ops.binary_crossentropy(labels, logits, from_logits=True), axis=-1)

    def predict_split(self, dataset, group_id=None, verbose=0):
        self.refresh_item_cache()
        return super().predict_split(dataset, group_id, verbose)

    def predict_step(self, data):
        out = super().predict_step(data)
        x = keras.utils.unpack_x_y_sample_weight(data)[0]
        if isinstance(out, dict) and self.cold_field in x:
            out["cold"] = x[self.cold_field]
        return out

    def evaluate_split(self, dataset, metrics, group_id=None, verbose=0):
        """The metrics over all impressions and (`cold_<metric>`) over those whose clicked item never occurs in
        training; `last_infer_samples_per_s` is the scoring throughput of this pass."""
        self.refresh_item_cache()
        t0 = time.perf_counter()
        out = self.predict_collecting(dataset, group_id or "", verbose)
        seconds = time.perf_counter() - t0
        y = np.asarray(out["y_true"]).reshape(-1)
        p = np.asarray(out["y_pred"]).reshape(-1)
        g = np.asarray(out["group_id"]).reshape(-1) if group_id else None
        result = evaluate_metrics(y, p, metrics, g)
        if g is not None and "cold" in out:
            result.update(evaluate_cold(y, p, metrics, g, out["cold"]))
        self.last_infer_samples_per_s = len(y) / max(seconds, 1e-9)
        return result
