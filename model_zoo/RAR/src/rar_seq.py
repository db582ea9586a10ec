"""Sequence CTR datasets with cross-stage data for recall-augmented ranking (RAR).

Each written row is one ranking request: `user_id, item_id, hist_items` (the user's clicks
before the request, oldest first), `recall_items` (the recall stage's top `pool_size`
items at the request time), `recall_labels` (per recall slot, 1 if the user clicked that
item later within the request's split: the auxiliary target, never a model input),
`lookalike_items` (`lookalike_size` look-alike users x `lookalike_history` of their items,
fixed slots, empty ones written as `__pad__`), `label`, and `ts`. Built with
`fuxi_like.retrieval.cross_stage.build_cross_stage`: the recall model and the user
snapshot use only clicks before the cutoff, a request's history only clicks before it.

Sources:
- `movielens` (`ratings.csv`): every rating is an impression, `rating >= min_rating` a
  click; the cutoff is the `cutoff` quantile of rating times; requests (ratings at or after
  it) split by time into train / valid / test (`valid_frac`, `test_frac` of the requests);
  `item_genre` (first genre of `movies.csv` next to the ratings) is added when present;
- `user_items` (one user a line, chronological, e.g. Amazon Beauty): no timestamps, so a
  click's time is its position / sequence length; the first `cutoff` of each sequence is
  before the cutoff; later clicks are requests (each + `num_negatives` items the user never
  clicked, label 0): the last one per user is test, the one before valid, the rest train;
- `taobao` (UserBehavior.csv: user, item, category, behaviour, unix time; no header): every
  behaviour is a click; requests at or after the cutoff quantile (+ sampled negatives),
  split by time; `item_cate` added;
- `synthetic`: seeded users in taste groups (items belong to groups); an impression is
  clicked with probability `p_in` when the item is in the user's group, `p_out` otherwise;
  users' own histories are short, so the label depends on what similar users clicked.
"""

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from fuxi_like.datasets.seq_loo import read_ratings, read_user_items
from fuxi_like.errors import DataError
from fuxi_like.io_utils import atomic_path, atomic_write_text

from .cross_stage import build_cross_stage, codes, future_labels

log = logging.getLogger("fuxi_like")
SOURCES = ("synthetic", "movielens", "user_items", "taobao")
PAD = "__pad__"


# ----------------------------------------------------------------------- sources
def synthetic_impressions(n_users=2000, n_items=1000, n_groups=20, impressions_per_user=40, p_group=0.5,
                          p_in=0.9, p_out=0.1, seed=0):
    """Impressions (user, item, ts, label) of users in taste groups; item i is in group i % n_groups."""
    rng = np.random.default_rng(seed)
    group = rng.integers(n_groups, size=n_users)
    n = n_users * impressions_per_user
    user = np.repeat(np.arange(n_users), impressions_per_user)
    in_group = rng.random(n) < p_group
    per_group = n_items // n_groups
    item = np.where(in_group, group[user] + n_groups * rng.integers(per_group, size=n), rng.integers(n_items, size=n))
    member = item % n_groups == group[user]
    label = (rng.random(n) < np.where(member, p_in, p_out)).astype(np.int64)
    return pd.DataFrame({"user": "u" + pd.Series(user).astype(str), "item": "i" + pd.Series(item).astype(str),
                         "ts": rng.random(n), "label": label})


def read_movielens(path, min_rating):

    p = Path(path)
    df = read_ratings(p)
    imp = pd.DataFrame({"user": df["userId"], "item": df["movieId"], "ts": df["timestamp"].astype(np.float64),
                        "label": (df["rating"] >= float(min_rating)).astype(np.int64)})
    attrs = None
    movies = p.parent / "movies.csv"
    if movies.is_file():
        m = pd.read_csv(movies, dtype={"movieId": str})
        attrs = pd.DataFrame({"item": m["movieId"], "item_genre": m["genres"].astype(str).str.split("|").str[0]})
    return imp, attrs


def read_taobao(path):
    p = Path(path)
    if not p.is_file():
        raise DataError(f"UserBehavior file not found: {p} (set recipe.source_path)")
    df = pd.read_csv(p, header=None, names=["user", "item", "cate", "behavior", "ts"],
                     dtype={"user": str, "item": str, "cate": str, "behavior": str})
    ts = pd.to_numeric(df["ts"], errors="coerce")
    if ts.isna().any():
        row = int(np.flatnonzero(ts.isna().to_numpy())[0])
        raise DataError(f"{p}: column 5 (timestamp), row {row + 1}: {df['ts'].iloc[row]!r} is not a number")
    clicks = pd.DataFrame({"user": df["user"], "item": df["item"], "ts": ts.astype(np.float64)})
    attrs = df[["item", "cate"]].drop_duplicates("item").rename(columns={"cate": "item_cate"})
    return clicks, attrs


def _time_splits(req, valid_frac, test_frac):
    """Split requests by time quantiles; returns split names and the horizon (end of the split) per row."""
    t = req["ts"].to_numpy()
    t_valid = np.quantile(t, 1.0 - valid_frac - test_frac)
    t_test = np.quantile(t, 1.0 - test_frac)
    split = np.where(t < t_valid, "train", np.where(t < t_test, "valid", "test"))
    horizon = np.where(split == "train", t_valid, np.where(split == "valid", t_test, np.inf))
    return split, horizon


def _negatives(pos, clicked_by_user, all_items, k, rng):
    """k items per positive request the user never clicked, sampled uniformly."""
    rows = []
    for u, ts, sp, hz in zip(pos["user"], pos["ts"], pos["split"], pos["horizon"]):
        seen = clicked_by_user[u]
        if len(seen) >= len(all_items):
            raise DataError(f"rar_seq: user {u!r} clicked every item; no negative can be sampled for it")
        got = 0
        while got < k:
            cand = all_items[rng.integers(len(all_items))]
            if cand not in seen:
                rows.append((u, cand, ts, 0, sp, hz))
                got += 1
    return pd.DataFrame(rows, columns=["user", "item", "ts", "label", "split", "horizon"])


def _positive_only_requests(clicks, cutoff_ts, num_negatives, seed, per_user_splits, valid_frac, test_frac):
    rng = np.random.default_rng(seed)
    pos = clicks[clicks["ts"] >= cutoff_ts].copy()
    pos["label"] = 1
    if per_user_splits:  # last request per user = test, the one before = valid (leave-one-out style)
        pos = pos.sort_values(["user", "ts"], kind="stable")
        from_end = pos.groupby("user").cumcount(ascending=False).to_numpy()
        pos["split"] = np.where(from_end == 0, "test", np.where(from_end == 1, "valid", "train"))
        # horizon: train rows end at the user's valid request, valid rows at the test request
        last = pos.groupby("user")["ts"].transform("max").to_numpy()
        valid_ts = pos["user"].map(pos[pos["split"] == "valid"].set_index("user")["ts"]).to_numpy(dtype=np.float64)
        pos["horizon"] = np.where(pos["split"] == "train", valid_ts,
                                  np.where(pos["split"] == "valid", last, np.inf))
    else:
        pos["split"], pos["horizon"] = _time_splits(pos, valid_frac, test_frac)
    clicked = clicks.groupby("user")["item"].agg(set).to_dict()
    items = clicks["item"].unique()
    neg = _negatives(pos, clicked, items, int(num_negatives), rng) if num_negatives else None
    return pd.concat([pos, neg], ignore_index=True) if neg is not None else pos


# ----------------------------------------------------------------------- recipe
def make(train_path, valid_path, test_path, source="synthetic", source_path=None, min_rating=4.0, cutoff=0.5,
         valid_frac=0.1, test_frac=0.1, num_negatives=1, pool_size=50, lookalike_size=10, lookalike_history=10,
         max_history=50, recall=None, backend="auto", seed=2024, synthetic=None, verbose=1):
    """Recipe entry point (`recipe: {name: rar_seq, source: ..., ...}`)."""
    if source not in SOURCES:
        raise DataError(f"rar_seq recipe: source must be one of {SOURCES}, got {source!r}")
    if not 0.0 < float(cutoff) < 1.0:
        raise DataError(f"rar_seq recipe: cutoff must be a fraction in (0, 1), got {cutoff!r}")
    attrs = None
    if source in ("movielens", "synthetic"):
        if source == "movielens":
            imp, attrs = read_movielens(source_path, min_rating)
        else:
            imp = synthetic_impressions(**(synthetic or {}))
        cutoff_ts = float(np.quantile(imp["ts"], cutoff))
        clicks = imp[imp["label"] == 1][["user", "item", "ts"]]
        req = imp[imp["ts"] >= cutoff_ts].copy()
        req["split"], req["horizon"] = _time_splits(req, valid_frac, test_frac)
    elif source == "user_items":

        seqs = read_user_items(source_path)
        rows = [(u, it, i / len(s)) for u, s in seqs.items() for i, it in enumerate(s)]
        clicks = pd.DataFrame(rows, columns=["user", "item", "ts"])
        cutoff_ts = float(cutoff)
        req = _positive_only_requests(clicks, cutoff_ts, num_negatives, seed, True, valid_frac, test_frac)
    else:
        clicks, attrs = read_taobao(source_path)
        cutoff_ts = float(np.quantile(clicks["ts"], cutoff))
        req = _positive_only_requests(clicks, cutoff_ts, num_negatives, seed, False, valid_frac, test_frac)
    req = req.sort_values(["ts", "user", "item"], kind="stable").reset_index(drop=True)
    log.info("rar_seq: %d clicks (%d before the cutoff), %d requests", len(clicks),
             int((clicks["ts"] < cutoff_ts).sum()), len(req))
    cross = build_cross_stage(clicks, req, cutoff_ts, pool_size=pool_size, lookalike_size=lookalike_size,
                              lookalike_history=lookalike_history, history_len=max_history, recall=recall,
                              backend=backend, verbose=verbose)
    items, users = cross["items"], cross["users"]
    aux = future_labels(clicks, codes(req["user"], users), req["ts"].to_numpy(), req["horizon"].to_numpy(),
                        cross["recall"], users, items)
    tok = np.asarray(items, dtype=object)

    def joined(mat, pad=None):
        t = tok[mat]
        if pad is None:
            return ["^".join(x for x in row if x is not None) for row in t]
        return ["^".join(pad if x is None else x for x in row) for row in t]

    out = pd.DataFrame({"user_id": req["user"].astype(str).to_numpy(), "item_id": req["item"].astype(str).to_numpy()})
    if attrs is not None:
        col = [c for c in attrs.columns if c != "item"][0]
        out[col] = req["item"].map(attrs.set_index("item")[col]).fillna("").to_numpy()
    out["hist_items"] = joined(cross["hist"])
    out["recall_items"] = joined(cross["recall"])
    out["recall_labels"] = ["^".join("1" if v else "0" for v in row) for row in aux]
    out["lookalike_items"] = joined(cross["lookalike_items"].reshape(len(req), -1), pad=PAD)
    out["label"] = req["label"].to_numpy()
    out["ts"] = req["ts"].to_numpy()
    for split, path in (("train", train_path), ("valid", valid_path), ("test", test_path)):
        part = out[req["split"].to_numpy() == split]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            part.to_csv(tmp, index=False)
    stats = {k: round(v, 2) for k, v in cross["timings"].items()}
    target = codes(req["item"], items)
    hit = (cross["recall"] == target[:, None]).any(1)
    lab = req["label"].to_numpy() == 1
    stats.update(requests=int(len(req)), clicks=int(len(clicks)), clicks_before_cutoff=cross["num_pre_clicks"],
                 recall_catalogue=cross["catalogue_size"],
                 target_in_pool_clicked=round(float(hit[lab].mean()), 4) if lab.any() else None,
                 target_in_pool_not_clicked=round(float(hit[~lab].mean()), 4) if (~lab).any() else None,
                 rows={sp: int((req["split"] == sp).sum()) for sp in ("train", "valid", "test")})
    atomic_write_text(Path(train_path).parent / "cross_stage.json", json.dumps(stats, indent=1))
    log.info("rar_seq: wrote %s (%s)", Path(train_path).parent, stats)
    return stats
