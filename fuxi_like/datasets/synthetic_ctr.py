"""Seeded synthetic CTR data with planted signal.

Columns: `label`, `user_id`, `item_id`, `item_cate`, `c1..c{n_context}` (context
categoricals), `num1` (informative numeric, ~5% missing), `num2` (noise numeric),
`hist_items` / `hist_cates` (`^`-joined behaviour sequence, most recent last).

The click logit is the sum of
- first-order effects of every context field (`first_order` scale),
- planted pairwise interactions c1 x c2, c3 x c4 and user-group x item_cate
  (`interaction` scale): what FM / cross layers should find,
- `seq_weight` if the target item's category occurs in the row's history, which
  depends on the target *and* the sequence (what target attention should find),
- `0.5 * num1`,
shifted so the mean CTR is about `ctr`.
"""

import numpy as np
import pandas as pd

from ..io_utils import atomic_path


def generate(n_rows=100_000, n_users=2000, n_items=1000, n_cates=40, n_context=6, context_vocab=20,
             seq_len=20, seq_weight=2.0, interaction=1.5, first_order=0.5, ctr=0.3, seed=42, hist_cates_per_row=3):
    rng = np.random.default_rng(seed)
    item_cate = rng.integers(0, n_cates, n_items)
    cate_items = [np.flatnonzero(item_cate == c) for c in range(n_cates)]
    cate_items = [a if len(a) else np.array([0]) for a in cate_items]
    user_group = rng.integers(0, 8, n_users)

    users = rng.integers(0, n_users, n_rows)
    items = rng.integers(0, n_items, n_rows)
    cates = item_cate[items]
    ctx = rng.integers(0, context_vocab, (n_rows, n_context))

    # history: each row draws `hist_cates_per_row` categories, then seq_len items from them
    k = hist_cates_per_row
    lengths = rng.integers(seq_len // 2, seq_len + 1, n_rows)
    row_cats = rng.integers(0, n_cates, (n_rows, k))
    pick = row_cats[np.arange(n_rows)[:, None], rng.integers(0, k, (n_rows, seq_len))]
    hist_items = np.empty((n_rows, seq_len), dtype=np.int64)
    for c in range(n_cates):
        m = pick == c
        hist_items[m] = cate_items[c][rng.integers(0, len(cate_items[c]), m.sum())]
    hist_cates = item_cate[hist_items]
    valid = np.arange(seq_len)[None, :] < lengths[:, None]
    in_hist = ((hist_cates == cates[:, None]) & valid).any(axis=1)

    logit = np.zeros(n_rows)
    for f in range(n_context):
        logit += first_order * rng.normal(size=context_vocab)[ctx[:, f]]
    w12 = rng.normal(size=(context_vocab, context_vocab))
    w34 = rng.normal(size=(context_vocab, context_vocab))
    wug = rng.normal(size=(8, n_cates))
    logit += interaction * (w12[ctx[:, 0], ctx[:, 1]] + w34[ctx[:, 2], ctx[:, 3 % n_context]]
                            + wug[user_group[users], cates])
    logit += seq_weight * in_hist
    num1 = rng.normal(size=n_rows)
    logit += 0.5 * num1
    # shift to the requested mean CTR
    lo, hi = -20.0, 20.0
    for _ in range(50):
        mid = (lo + hi) / 2
        if (1 / (1 + np.exp(-(logit + mid)))).mean() > ctr:
            hi = mid
        else:
            lo = mid
    p = 1 / (1 + np.exp(-(logit + lo)))
    label = (rng.random(n_rows) < p).astype(np.int8)

    num1_obs = num1.copy()
    num1_obs[rng.random(n_rows) < 0.05] = np.nan

    def join(mat):
        return ["^".join(map(str, r[:l])) for r, l in zip(mat, lengths)]

    df = pd.DataFrame({"label": label, "user_id": users, "item_id": items, "item_cate": cates})
    for f in range(n_context):
        df[f"c{f + 1}"] = ctx[:, f]
    df["num1"] = np.round(num1_obs, 4)
    df["num2"] = np.round(rng.normal(size=n_rows), 4)
    df["hist_items"] = join(hist_items)
    df["hist_cates"] = join(hist_cates)
    return df


def split_frame(df, ratios=(0.8, 0.1, 0.1), seed=42):
    """Shuffle with `seed` and cut into train/valid/test by `ratios`."""
    idx = np.random.default_rng(seed).permutation(len(df))
    n_train = int(round(ratios[0] * len(df)))
    n_valid = int(round(ratios[1] * len(df)))
    parts = (idx[:n_train], idx[n_train:n_train + n_valid], idx[n_train + n_valid:])
    return [df.iloc[p].reset_index(drop=True) for p in parts]


def write_splits(frames, paths):
    for frame, path in zip(frames, paths):
        if path is None:
            continue
        with atomic_path(path) as tmp:
            if str(path).endswith(".parquet"):
                frame.to_parquet(tmp, index=False)
            else:
                frame.to_csv(tmp, index=False)


def make(train_path, valid_path, test_path, n_rows=100_000, n_users=2000, n_items=1000, n_cates=40,
         n_context=6, context_vocab=20, seq_len=20, seq_weight=2.0, interaction=1.5, first_order=0.5,
         ctr=0.3, seed=42, hist_cates_per_row=3, split=(0.8, 0.1, 0.1)):
    """Recipe entry point: generate and write the three splits."""
    df = generate(n_rows=n_rows, n_users=n_users, n_items=n_items, n_cates=n_cates, n_context=n_context,
                  context_vocab=context_vocab, seq_len=seq_len, seq_weight=seq_weight,
                  interaction=interaction, first_order=first_order, ctr=ctr, seed=seed,
                  hist_cates_per_row=hist_cates_per_row)
    write_splits(split_frame(df, tuple(split), seed), (train_path, valid_path, test_path))
