"""Frappe CTR recipe: raw app-usage log -> the standard 10-field Frappe CTR set.

Raw input: `frappe.csv` from the Frappe release (TAB-separated:
user, item, cnt, daytime, weekday, isweekend, homework, cost, weather, country, city).
Get it from the original release (Baltrunas et al., 2015) or point `raw_path` at
your copy, e.g. in `dataset_config.yaml`::

    recipe: {name: frappe, raw_path: /path/to/frappe/frappe.csv, seed: 2024}

or from the command line: `python datasets/make_dataset.py frappe --raw_path ... --out_dir ...`.

Each log row becomes one positive (label 1) and `n_neg` negatives (label 0): apps
sampled uniformly from the apps the same user never used, in the same context
(daytime ... city). A negative's `cost` is the app's own cost (its most frequent
value in the log). Rows are shuffled and split 7:2:1, all seeded. With the full
log this gives 96,203 x 3 = 288,609 rows, as in the common Frappe CTR benchmark.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from .synthetic_ctr import split_frame, write_splits

FIELDS = ["user", "item", "daytime", "weekday", "isweekend", "homework", "cost", "weather", "country", "city"]


def build(raw_path, n_neg=2, seed=2024):
    p = Path(raw_path)
    if not p.is_file():
        raise DataError(f"Frappe raw log not found: {p} (set recipe.raw_path to your copy of frappe.csv)")
    raw = pd.read_csv(p, sep="\t", dtype=str)
    missing = [c for c in FIELDS if c not in raw.columns]
    if missing:
        raise DataError(f"{p}: missing column(s) {missing}; columns are {list(raw.columns)}")
    raw = raw[FIELDS].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    items = np.array(sorted(raw["item"].unique(), key=int))
    item_pos = {it: i for i, it in enumerate(items)}
    item_cost = raw.groupby("item")["cost"].agg(lambda s: s.value_counts().index[0])
    used = raw.groupby("user")["item"].agg(lambda s: np.array(sorted({item_pos[i] for i in s})))

    n = len(raw)
    neg_items = np.empty((n, n_neg), dtype=object)
    users = raw["user"].to_numpy()
    for u, rows in raw.groupby("user").indices.items():
        allowed = np.setdiff1d(np.arange(len(items)), used[u])
        if len(allowed) == 0:
            raise DataError(f"{p}: user {u} used every app; cannot sample negatives")
        picks = allowed[rng.integers(0, len(allowed), (len(rows), n_neg))]
        neg_items[rows] = items[picks]
    del users
    pos = raw.copy()
    pos.insert(0, "label", 1)
    negs = []
    for j in range(n_neg):
        neg = raw.copy()
        neg["item"] = neg_items[:, j]
        neg["cost"] = item_cost.reindex(neg["item"]).to_numpy()
        neg.insert(0, "label", 0)
        negs.append(neg)
    return pd.concat([pos] + negs, ignore_index=True)


def make(train_path, valid_path, test_path, raw_path, n_neg=2, seed=2024, split=(0.7, 0.2, 0.1)):
    """Recipe entry point: build the CTR set and write seeded 7:2:1 splits."""
    df = build(raw_path, n_neg=n_neg, seed=seed)
    write_splits(split_frame(df, tuple(split), seed), (train_path, valid_path, test_path))
