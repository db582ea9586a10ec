"""Sequential leave-one-out recipes for retrieval (next-item) models.

Sources:
- `user_items`: one user a line, `user item1 item2 ...` in chronological order
  (the Amazon 5-core / LastFM files of S3-Rec, e.g. `amazon_seq/Beauty.txt`), or one `user item` pair a line
  in chronological order (SASRec's original data files); `layout: auto` (default) tells them apart, or
  `user_per_line` / `pair_per_line` (see `read_user_items`);
- `movielens`: a MovieLens `ratings.csv` (userId, movieId, rating, timestamp); each user's
  ratings sorted by time (ties by movieId); `min_rating` keeps only ratings >= it;
- `recbole`: RecBole atomic files `<prefix>.{train,valid,test}.inter` (user_id, item_id_list,
  item_id; the leave-one-out splits UniSRec and later papers publish, e.g.
  `amazon_scientific_text/Scientific`): each user's whole sequence is rebuilt from them (the
  training rows in prefix order, those whose history the files cut at 50 items chained by that
  window, then the valid and the test target), and every row's history is checked against it, so
  the split written here is the published one;
- `synthetic`: a seeded Markov-chain generator (each item has a few likely successors),
  so order-aware models have real signal to learn (used by the tests and the demo).

Split per user (users with fewer than 3 interactions are dropped): the last item is the
test target, the second-to-last the valid target, the rest is training. Each written row
is `user_id, item_id, hist_items, label` where `hist_items` (`^`-joined, oldest first,
at most `max_history` of the most recent items) is everything before `item_id`:
- valid row: target = second-to-last, history = the training items;
- test row: target = last, history = training items + the valid item (as at serving);
- train rows (`train_rows: all`): one row per training position >= 1 (target = item t,
  history = items before t), for models trained on (query, next item) pairs;
  `train_rows: last`: one row per user (target = last training item, history = the rest),
  for models that compute a next-item loss at every position of the sequence (SASRec,
  GRU4Rec with `sequence_loss: true`): the same training targets, one row per user.
`num_eval_negatives: 99` adds a `neg_items` column to valid/test: that many items the user
never interacted with, sampled uniformly (seeded), for the sampled-negatives protocol;
full ranking over all items is the default evaluation and needs no column.
"""

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from .synthetic_ctr import write_splits

log = logging.getLogger("fuxi_like")

SOURCES = ("user_items", "movielens", "recbole", "synthetic")


LAYOUTS = ("auto", "user_per_line", "pair_per_line")


def read_user_items(path, layout="auto"):
    """{user: [items]} from a whitespace-separated file in chronological order, in one of two layouts:
    `user_per_line` (`user item1 item2 ...`, S3-Rec's Amazon files) or `pair_per_line` (`user item`, one interaction
    a line, SASRec's original data files). `auto` reads pairs when every line has exactly two fields and some user
    is on more than one line, else one user a line. A user on two lines of a one-user-a-line file is an error naming
    both lines (reading it would overwrite the first line's items)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"sequence file not found: {p} (set recipe.source_path)")
    if layout not in LAYOUTS:
        raise DataError(f"seq_loo: layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    lines = []
    with open(p, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise DataError(f"{p}: line {i} has a user but no items: {line.strip()!r}")
            lines.append((i, parts))
    first_line = {}
    repeated = None
    for i, parts in lines:
        if parts[0] in first_line and repeated is None:
            repeated = (parts[0], first_line[parts[0]], i)
        first_line.setdefault(parts[0], i)
    if layout == "auto":
        layout = "pair_per_line" if repeated and all(len(parts) == 2 for _, parts in lines) else "user_per_line"
    seqs = {}
    if layout == "pair_per_line":
        for i, parts in lines:
            if len(parts) != 2:
                raise DataError(f"{p}: line {i}: a one-pair-a-line file (layout pair_per_line) needs `user item`, "
                                f"got {len(parts)} fields")
            seqs.setdefault(parts[0], []).append(parts[1])
        log.info("%s: read as one (user, item) pair a line: %d lines, %d users", p, len(lines), len(seqs))
        return seqs
    if repeated:
        user, a, b = repeated
        raise DataError(f"{p}: user {user!r} is on line {a} and line {b}; a `user item1 item2 ...` file holds one "
                        f"line per user (reading it would drop line {a}'s items). For one `user item` pair a line "
                        f"(SASRec's data files) every line must have two fields, or set the recipe's layout")
    for _, parts in lines:
        seqs[parts[0]] = parts[1:]
    return seqs


def read_recbole(prefix):
    """{user: [items]} from RecBole `<prefix>.{train,valid,test}.inter` leave-one-out files (see the module doc)."""
    rows = {}
    for split in ("train", "valid", "test"):
        p = Path(f"{prefix}.{split}.inter")
        if not p.is_file():
            raise DataError(f"RecBole file not found: {p} (set recipe.source_path to the prefix, e.g. .../Scientific)")
        with open(p, encoding="utf-8") as f:
            header = f.readline().rstrip("\n").split("\t")
            if [h.split(":")[0] for h in header] != ["user_id", "item_id_list", "item_id"]:
                raise DataError(f"{p}: header must be user_id, item_id_list, item_id (RecBole atomic), got {header}")
            for i, line in enumerate(f, 2):
                parts = line.rstrip("\n").split("\t")
                if len(parts) != 3 or not parts[1].split() or not parts[2]:
                    raise DataError(f"{p}: line {i}: expected user, a non-empty item list and an item, got {line!r}")
                rows.setdefault(parts[0], {}).setdefault(split, []).append((parts[1].split(), parts[2], p, i))
    seqs = {}
    for user, by in rows.items():
        if len(by.get("valid", [])) != 1 or len(by.get("test", [])) != 1 or not by.get("train"):
            raise DataError(f"{prefix}.*.inter: user {user!r} needs training rows and exactly one valid and one test "
                            f"row (leave-one-out), has {({s: len(v) for s, v in by.items()})}")
        seqs[user] = _rebuild_sequence(user, by)
    return seqs


def _rebuild_sequence(user, by):
    """A user's sequence from its RecBole rows: training rows in prefix order (their file order is not), those
    whose history was cut to the file's window chained by that window, then the valid and the test target."""
    train = sorted(by["train"], key=lambda r: len(r[0]))
    window = max(len(r[0]) for r in by["train"] + by["test"])
    seq = list(train[0][0])
    pending = {}
    for hist, target, path, line in train:
        if len(hist) < window:  # the whole prefix
            if hist != seq:
                raise DataError(f"{path}: line {line}: user {user!r}'s history is not the prefix rebuilt from its "
                                f"shorter rows ({len(hist)} vs {len(seq)} items)")
            seq.append(target)
        else:
            pending.setdefault(tuple(hist), []).append((target, path, line))
    while pending:
        nxt = pending.get(tuple(seq[-window:]))
        if not nxt:
            _, path, line = next(iter(pending.values()))[0]
            raise DataError(f"{path}: line {line}: user {user!r}'s training rows do not chain into one sequence "
                            f"(no row continues the {window} items before position {len(seq)})")
        target, _, _ = nxt.pop(0)
        if not nxt:
            del pending[tuple(seq[-window:])]
        seq.append(target)
    for hist, target, path, line in by["valid"] + by["test"]:
        if hist != seq[-len(hist):]:
            raise DataError(f"{path}: line {line}: user {user!r}'s history is not the end of the sequence rebuilt "
                            f"from its training rows")
        seq.append(target)
    return seq


def read_ratings(path):
    """A MovieLens ratings.csv as a DataFrame with numeric rating/timestamp (clear errors otherwise)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"MovieLens ratings not found: {p} (set recipe.source_path)")
    df = pd.read_csv(p, dtype={"userId": str, "movieId": str})
    need = {"userId", "movieId", "rating", "timestamp"}
    if not need <= set(df.columns):
        raise DataError(f"{p}: needs columns {sorted(need)}, has {list(df.columns)}")
    for col in ("rating", "timestamp"):
        num = pd.to_numeric(df[col], errors="coerce")
        bad = np.flatnonzero(num.isna().to_numpy())
        if len(bad):
            raise DataError(f"{p}: column '{col}' is not numeric at data row {int(bad[0]) + 1}: {df[col].iloc[bad[0]]!r}")
        df[col] = num
    return df


def read_movielens(path, min_rating=None):
    df = read_ratings(path)
    if min_rating is not None:
        df = df[df["rating"] >= float(min_rating)]
    m = pd.to_numeric(df["movieId"], errors="coerce")  # numeric ids order ties numerically, others by text
    df = df.assign(_m=m.fillna(-1).astype(np.int64), _s=df["movieId"]).sort_values(["userId", "timestamp", "_m", "_s"], kind="stable")
    return {u: list(g) for u, g in df.groupby("userId", sort=False)["movieId"]}


def synthetic_sequences(n_users=2000, n_items=500, min_len=5, max_len=30, n_successors=3, p_follow=0.8, seed=0):
    """Markov chains: next item is one of the current item's successors w.p. `p_follow`."""
    rng = np.random.default_rng(seed)
    succ = rng.integers(1, n_items + 1, size=(n_items + 1, n_successors))
    pop = rng.zipf(1.3, size=n_items * 4)
    pop = pop[pop <= n_items][: n_items]
    seqs = {}
    for u in range(1, n_users + 1):
        length = int(rng.integers(min_len, max_len + 1))
        cur = int(rng.choice(pop)) if len(pop) else int(rng.integers(1, n_items + 1))
        s = [cur]
        for _ in range(length - 1):
            if rng.random() < p_follow:
                cur = int(succ[cur, rng.integers(n_successors)])
            else:
                cur = int(rng.integers(1, n_items + 1))
            s.append(cur)
        seqs[str(u)] = [str(i) for i in s]
    return seqs


def loo_frames(seqs, max_history=50, train_rows="all", num_eval_negatives=0, seed=0):
    """dict user -> chronological items -> (train, valid, test) DataFrames."""
    if train_rows not in ("all", "last"):
        raise DataError(f"train_rows must be 'all' or 'last', got {train_rows!r}")
    rng = np.random.default_rng(seed)
    all_items = np.array(sorted({i for s in seqs.values() for i in s}), dtype=object)
    rows = {"train": [], "valid": [], "test": []}

    def hist(items):
        return "^".join(items[-max_history:]) if max_history else "^".join(items)

    for u, s in seqs.items():
        if len(s) < 3:
            continue
        train = s[:-2]
        positions = range(1, len(train)) if train_rows == "all" else ([len(train) - 1] if len(train) > 1 else [])
        for t in positions:
            rows["train"].append((u, train[t], hist(train[:t])))
        rows["valid"].append((u, s[-2], hist(train)))
        rows["test"].append((u, s[-1], hist(s[:-1])))
    frames = []
    for split in ("train", "valid", "test"):
        df = pd.DataFrame(rows[split], columns=["user_id", "item_id", "hist_items"])
        df["label"] = 1
        if num_eval_negatives and split != "train":
            negs = []
            for u in df["user_id"]:
                seen = set(seqs[u])
                picked = []
                while len(picked) < num_eval_negatives:
                    cand = all_items[rng.integers(0, len(all_items), size=2 * num_eval_negatives)]
                    picked += [c for c in cand if c not in seen and c not in picked]
                negs.append("^".join(picked[:num_eval_negatives]))
            df["neg_items"] = negs
        elif num_eval_negatives:
            df["neg_items"] = ""
        frames.append(df)
    if len(frames[1]) == 0:
        raise DataError("no user has 3 or more interactions: nothing to split")
    return frames


def make(train_path, valid_path, test_path, source="user_items", source_path=None, min_rating=None,
         max_history=50, train_rows="all", num_eval_negatives=0, seed=2024, synthetic=None, layout="auto"):
    """Recipe entry point (`recipe: {name: seq_loo, source: ..., source_path: ...}`)."""
    if source not in SOURCES:
        raise DataError(f"seq_loo recipe: source must be one of {SOURCES}, got {source!r}")
    if source == "user_items":
        seqs = read_user_items(source_path, layout)
    elif source == "movielens":
        seqs = read_movielens(source_path, min_rating)
    elif source == "recbole":
        seqs = read_recbole(source_path)
    else:
        seqs = synthetic_sequences(**(synthetic or {}))
    frames = loo_frames(seqs, max_history=max_history, train_rows=train_rows,
                        num_eval_negatives=num_eval_negatives, seed=seed)
    write_splits(frames, (train_path, valid_path, test_path))
