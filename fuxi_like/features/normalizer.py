"""Numeric normalizers fitted on the training split (parameters kept in JSON)."""

import numpy as np

ALIASES = {"StandardScaler": "standard", "MinMaxScaler": "minmax"}


def fit_normalizer(kind, values):
    kind = ALIASES.get(kind, kind)
    v = np.asarray(values, dtype=np.float64)
    if kind == "standard":
        std = float(v.std())
        return {"kind": kind, "mean": float(v.mean()), "scale": std if std > 0 else 1.0}
    if kind == "minmax":
        lo, hi = float(v.min()), float(v.max())
        return {"kind": kind, "mean": lo, "scale": (hi - lo) if hi > lo else 1.0}
    raise ValueError(f"unknown normalizer {kind!r}")


def apply_normalizer(params, values):
    v = np.asarray(values, dtype=np.float64)
    return ((v - params["mean"]) / params["scale"]).astype(np.float32)
