"""ML-Tag-style CTR recipe (the MovielensLatest CTR set of NFM/AFN/BARS, built from MovieLens tags).

Raw input: a MovieLens `tags.csv` (userId, movieId, tag, timestamp), e.g.
`ml-latest-small/tags.csv`. Each distinct (user, movie, tag) application is a positive; for
each positive, `n_neg` negatives pair the same user and movie with a tag drawn uniformly from
the tags that user did not apply to that movie (as in the common set: 2 negatives per
positive, fields user_id, item_id, tag_id). Rows are shuffled and split 7:2:1, all seeded.
The full MovieLens-latest tag log gives the ~2M-row BARS set; `ml-latest-small` gives 3,683
positives -> 11,049 rows.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from .synthetic_ctr import split_frame, write_splits


def build(raw_path, n_neg=2, seed=2024):
    p = Path(raw_path)
    if not p.is_file():
        raise DataError(f"MovieLens tags not found: {p} (set recipe.raw_path to your tags.csv)")
    raw = pd.read_csv(p, dtype=str, keep_default_na=False)
    missing = {"userId", "movieId", "tag"} - set(raw.columns)
    if missing:
        raise DataError(f"{p}: missing column(s) {sorted(missing)}; columns are {list(raw.columns)}")
    raw["tag"] = raw["tag"].str.strip()
    bad = raw.index[raw["tag"] == ""]
    if len(bad):
        raise DataError(f"{p}: empty tag at data row {int(bad[0]) + 1}")
    pos = raw[["userId", "movieId", "tag"]].drop_duplicates().reset_index(drop=True)
    pos.columns = ["user_id", "item_id", "tag_id"]
    tags = np.array(sorted(pos["tag_id"].unique()), dtype=object)
    if len(tags) < n_neg + 2:
        raise DataError(f"{p}: only {len(tags)} distinct tags; cannot sample {n_neg} negatives")
    used = set(zip(pos["user_id"], pos["item_id"], pos["tag_id"]))
    rng = np.random.default_rng(seed)
    negs = []
    for _ in range(n_neg):
        pick = tags[rng.integers(0, len(tags), len(pos))]
        for i in range(len(pos)):  # resample the rare collisions with a real application
            while (pos.at[i, "user_id"], pos.at[i, "item_id"], pick[i]) in used:
                pick[i] = tags[rng.integers(0, len(tags))]
        neg = pos.copy()
        neg["tag_id"] = pick
        negs.append(neg.assign(label=0))
    df = pd.concat([pos.assign(label=1)] + negs, ignore_index=True)
    return df[["label", "user_id", "item_id", "tag_id"]]


def make(train_path, valid_path, test_path, raw_path, n_neg=2, seed=2024, split=(0.7, 0.2, 0.1)):
    """Recipe entry point: build the ML-Tag-style set and write seeded 7:2:1 splits."""
    write_splits(split_frame(build(raw_path, n_neg=n_neg, seed=seed), tuple(split), seed),
                 (train_path, valid_path, test_path))
