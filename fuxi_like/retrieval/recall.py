"""Recall-then-rank: turn a trained retrieval model + its index into candidate data for a ranker.

`recall_pools(model, data_dir, split, top_n)` retrieves, for every row (request) of a
processed split, the top-N items (history removed as in evaluation) and returns them as
item ids with scores. `write_recall_dataset(...)` writes them as a raw CSV in the format
the dataset recipes produce, with raw tokens (decoded through the dataset's vocabulary),
so a dataset config can read it like any other split:
- `layout: pool` (one row per request, what RAR consumes): the request's columns
  (`user_id`, `item_id` = the true next item, `hist_items`) plus `recall_items` and
  `recall_scores` (`^`-joined, best first);
- `layout: candidates` (one row per retrieved item, what a ranking model trains on):
  `user_id, hist_items, item_id` (the candidate), `recall_rank`, `recall_score`, and
  `label` = 1 when the candidate is the true next item.
The CSV is written atomically.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.tf_dataset import load_split
from ..errors import ConfigError
from ..io_utils import atomic_path
from .serving import Retriever


def _decoder(data_dir, feature):
    with open(Path(data_dir) / "feature_vocab.json", encoding="utf-8") as f:
        vocab = json.load(f)
    if feature not in vocab:
        raise ConfigError(f"{data_dir}: no vocabulary for feature '{feature}'")
    inv = np.empty(max(vocab[feature].values()) + 1, dtype=object)
    for tok, i in vocab[feature].items():
        inv[i] = tok
    inv[0] = ""
    return inv


def recall_pools(model, data_dir, split="test", top_n=100, index=None, batch_size=4096):
    """dict with the split's columns (ids) and `recall_ids` [Q, top_n], `recall_scores`."""

    fmap = model.feature_map
    cols = load_split(fmap, split, data_dir=data_dir)
    inputs = {n: cols[n] for n in fmap.features}

    index = index or model.build_index()
    ids, scores = Retriever(model, index).search(inputs, k=top_n)
    return dict(cols, recall_ids=ids, recall_scores=scores)


def write_recall_dataset(model, data_dir, out_path, split="test", top_n=100, layout="pool", index=None,
                         user_field="user_id"):
    if layout not in ("pool", "candidates"):
        raise ConfigError(f"recall layout must be 'pool' or 'candidates', got {layout!r}")
    pools = recall_pools(model, data_dir, split, top_n, index)
    item_f, hist_f = model.item_field, model.history_field
    items = _decoder(data_dir, model.feature_map.table_owner(item_f))
    ids = pools["recall_ids"]
    tok = np.where(ids > 0, items[np.clip(ids, 0, len(items) - 1)], "")
    base = {}
    if user_field in pools:
        base[user_field] = _decoder(data_dir, model.feature_map.table_owner(user_field))[pools[user_field]]
    if hist_f:
        h = items[pools[hist_f]]
        base[hist_f] = ["^".join(t for t in row if t) for row in h]
    target = items[pools[item_f].reshape(-1)]
    if layout == "pool":
        df = pd.DataFrame(base)
        df[item_f] = target
        df["recall_items"] = ["^".join(t for t in row if t) for row in tok]
        df["recall_scores"] = ["^".join(f"{s:.6g}" for s, i in zip(rs, ri) if i > 0)
                               for rs, ri in zip(pools["recall_scores"], ids)]
    else:
        q, n = ids.shape
        rows = np.repeat(np.arange(q), n)
        keep = ids.reshape(-1) > 0
        df = pd.DataFrame({k: np.asarray(v, dtype=object)[rows[keep]] for k, v in base.items()})
        df[item_f] = tok.reshape(-1)[keep]
        df["recall_rank"] = np.tile(np.arange(1, n + 1), q)[keep]
        df["recall_score"] = pools["recall_scores"].reshape(-1)[keep]
        df["label"] = (ids.reshape(-1)[keep] == pools[item_f].reshape(-1)[rows[keep]]).astype(int)
    with atomic_path(out_path) as tmp:
        df.to_csv(tmp, index=False)
    return df
