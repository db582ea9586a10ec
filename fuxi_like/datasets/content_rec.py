"""Content-based recommendation sets (recipe `content_rec`): news-recommendation style data
for models that read item TEXT (NAML, NRMS, LSTUR, BST, DCN, DIN over text; GreenRec/OLEO, UIST).

Output, in the directory of `train_path` (CSV, `^`-joined item lists, oldest first):

- `train.csv`: `impression_id` (-1), `user_id`, `hist_items` (the at most `max_history` most
  recent items before the click; may be empty), `candidates` (the clicked item FIRST, then
  `num_negatives` negatives), `label` (1.0), `cold` (0). One row per training click. The two
  meta columns are there because the feature processor reads every configured column from
  every split.
- `valid.csv`, `test.csv`: `impression_id` (int, unique over valid + test), `user_id`,
  `hist_items`, `candidates` (ONE item), `label` (0/1), `cold` (1 when that candidate never
  occurs in train.csv, as a history item or a candidate). One row per (impression,
  candidate); every impression has >= 1 positive and >= 1 negative.
- `items.csv`: `item_id`, `text`: one row per item that occurs in any split (sorted by id);
  whitespace in texts is collapsed to single spaces.

Sources (`source:`):

- `recbole`: RecBole leave-one-out files `<source_path>.{train,valid,test}.inter` (UniSRec's
  Amazon Scientific): each user's sequence is rebuilt and checked by `seq_loo.read_recbole`, so the
  valid/test targets are the published ones; text from `<source_path>.text` (`item_id:token<TAB>
  text:token_seq`, keyed by the original id) through `<source_path>.item2index`; item ids written
  are the .inter files' ids. Every item must have text (a DataError otherwise).
- `goodreads`: `<source_path>/user_histories.tsv` (user_id, space-separated book ids) and
  `books.tsv` (bid, title). The files have no timestamps: the released order of each history is
  taken as the time order. Text = title; every book must have one (a DataError otherwise).
- `movielens`: `<source_path>/ratings.csv` (every rating is an interaction, sorted by timestamp
  then movieId, as `seq_loo`), `movies.csv`, `tags.csv` (optional). Text = "title. genres (`|` ->
  `, `). tags" (tags unique case-insensitively, in file order, `, `-joined; an empty part is left
  out). Every rated movie must be in movies.csv (a DataError otherwise).
- `synthetic`: seeded topics (the demo and the tests; parameters in the `synthetic` mapping, see
  `synthetic_content`): each topic has its own words, each item a topic and a text of ~8 words
  mostly from that topic, each user 1-2 preferred topics from which the history and the clicks
  come; negatives are uniform. The label depends on the history, and text generalises to items
  never seen in training.
- `mind`: MIND behaviours files (impression_id, user_id, time, history, impressions `N1-1 N2-0`)
  `behaviors_train`, `behaviors_dev` and news file(s) `news` (a path or a list; news_id,
  category, subcategory, title, abstract, ...; the first definition of an id wins); relative
  names are relative to `source_path` (a directory). Text = "title. category subcategory"
  (GreenRec's default data config reads title + category). News ids without an article are
  dropped from histories and impressions with a logged count (MIND samples may be partial, e.g.
  `mind_subset` covers ~3% of its ids); an impression left without a positive or a negative is
  dropped (logged). Train rows: every click of every train impression, history = the impression's
  history (last `max_history`), negatives sampled (seeded) from THAT impression's non-clicked
  items: without replacement when it has at least `num_negatives` of them, with replacement when
  it has fewer (Microsoft's NRMS reference `newsample` pads with an empty news there instead);
  clicks of an impression with no non-clicked item are dropped (logged). Dev impressions are
  split 50/50 (seeded permutation of the impression ids; an odd one goes to test) into valid and
  test; their rows are the impression's candidates in file order, `impression_id` the file's.
  `num_eval_negatives` and `min_user_items` do not apply.

Leave-one-out sources (recbole, goodreads, movielens, synthetic): users with fewer than
`min_user_items` (>= 3) items are dropped; per user the last item is the test target (history:
everything before it, the valid item included), the second-to-last the valid target (history:
the training items), and every training position t >= 1 is a train row (history: the training
items before t). Negatives (train: `num_negatives`, from items not cold; valid/test:
`num_eval_negatives`, from all items) are drawn uniformly (seeded) from the items the user never
interacted with (anywhere in the sequence), distinct within a row. The candidates of a
valid/test impression are written in a seeded random order (so a model that scores ties equally
gains nothing from the position of the positive); impression ids are 0.. for valid, then test.

`cold_item_fraction` (all sources): a seeded fraction of the items has its interactions removed
from TRAINING only (they are in no train row, as history or candidate, and no train negative)
while they stay valid/test targets/candidates and in valid/test histories: those rows get
cold=1. The log says how many items, interactions, users and rows that affects.

Separate seeded streams are used for the cold items, the train negatives, the eval negatives /
candidate order and the MIND dev split, so e.g. a change of `num_negatives` does not move the
valid/test data.
"""

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from ..io_utils import atomic_path
from .seq_loo import read_movielens, read_recbole
from .synthetic_ctr import write_splits

SOURCES = ("recbole", "goodreads", "movielens", "mind", "synthetic")
ITEMS_FILE = "items.csv"
COLUMNS = ["impression_id", "user_id", "hist_items", "candidates", "label", "cold"]
log = logging.getLogger("fuxi_like")

# seeded streams: default_rng([seed, stream])
_COLD, _TRAIN_NEG, _EVAL, _SPLIT, _SYN = range(5)


def _rng(seed, stream):
    return np.random.default_rng([int(seed), stream])


def _clean(text):
    return " ".join(str(text).split())


# ------------------------------------------------------------------------------ readers
def _need_file(p, what):
    p = Path(p)
    if not p.is_file():
        raise DataError(f"{what} not found: {p} (set recipe.source_path)")
    return p


def read_recbole_text(prefix):
    """{inter item id: text} from `<prefix>.text` (keyed by original id) and `<prefix>.item2index`."""
    tp = _need_file(f"{prefix}.text", "RecBole item text file")
    ip = _need_file(f"{prefix}.item2index", "RecBole item index file")
    raw = {}
    with open(tp, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if [h.split(":")[0] for h in header][:2] != ["item_id", "text"]:
            raise DataError(f"{tp}: header must be item_id:token<TAB>text:token_seq, got {header}")
        for i, line in enumerate(f, 2):
            parts = line.rstrip("\n").split("\t", 1)
            if not parts[0].strip():
                continue
            if len(parts) != 2:
                raise DataError(f"{tp}: line {i}: expected item_id<TAB>text, got {line!r}")
            raw.setdefault(parts[0], _clean(parts[1]))
    text = {}
    with open(ip, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise DataError(f"{ip}: line {i}: expected <original id> <index>, got {line!r}")
            if parts[0] in raw:
                text[parts[1]] = raw[parts[0]]
    return text, f"{tp} (through {ip})"


def read_goodreads(folder):
    """({user: [book ids in released order]}, {book id: title})."""
    folder = Path(folder)
    hp = _need_file(folder / "user_histories.tsv", "Goodreads user_histories.tsv")
    bp = _need_file(folder / "books.tsv", "Goodreads books.tsv")
    seqs = {}
    with open(hp, encoding="utf-8") as f:
        f.readline()  # header: user_id, history_book_ids
        for i, line in enumerate(f, 2):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 2:
                raise DataError(f"{hp}: line {i}: expected user_id<TAB>space-separated book ids, got {line!r}")
            if parts[0] in seqs:
                raise DataError(f"{hp}: line {i}: user {parts[0]!r} appears twice")
            seqs[parts[0]] = parts[1].split()
    text = {}
    with open(bp, encoding="utf-8") as f:
        f.readline()  # header: bid, title
        for i, line in enumerate(f, 2):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t", 1)
            if len(parts) != 2 or not parts[1].strip():
                raise DataError(f"{bp}: line {i}: expected bid<TAB>title, got {line!r}")
            text.setdefault(parts[0], _clean(parts[1]))
    return seqs, text, str(bp)


def read_movielens_content(folder):
    """({user: [movie ids by time]}, {movie id: "title. genres. tags"})."""
    folder = Path(folder)
    seqs = read_movielens(_need_file(folder / "ratings.csv", "MovieLens ratings.csv"))
    mp = _need_file(folder / "movies.csv", "MovieLens movies.csv")
    movies = pd.read_csv(mp, dtype=str, keep_default_na=False)
    if not {"movieId", "title", "genres"} <= set(movies.columns):
        raise DataError(f"{mp}: needs columns movieId, title, genres, has {list(movies.columns)}")
    tags = {}
    tp = folder / "tags.csv"
    if tp.is_file():
        tdf = pd.read_csv(tp, dtype=str, keep_default_na=False)
        if not {"movieId", "tag"} <= set(tdf.columns):
            raise DataError(f"{tp}: needs columns movieId, tag, has {list(tdf.columns)}")
        for m, tag in zip(tdf["movieId"], tdf["tag"]):
            tag = _clean(tag)
            if tag:
                seen = tags.setdefault(m, {})
                seen.setdefault(tag.lower(), tag)
    else:
        log.warning("content_rec: %s not found; MovieLens texts get no tags", tp)
    text = {}
    for m, title, genres in zip(movies["movieId"], movies["title"], movies["genres"]):
        g = "" if genres.strip() in ("", "(no genres listed)") else ", ".join(x.strip() for x in genres.split("|"))
        parts = [_clean(title), g, ", ".join(tags.get(m, {}).values())]
        text.setdefault(m, ". ".join(p for p in parts if p))
    return seqs, text, str(mp)


_CONS, _VOW = "bdfgklmnprstvz", "aeiou"


def _words(rng, n, taken):
    out = []
    while len(out) < n:
        w = "".join(_CONS[rng.integers(len(_CONS))] + _VOW[rng.integers(len(_VOW))]
                    for _ in range(int(rng.integers(2, 4))))
        if w not in taken:
            taken.add(w)
            out.append(w)
    return out


def synthetic_content(n_users=1000, n_items=400, n_topics=8, words_per_topic=40, n_common_words=30,
                      text_len=8, topic_word_prob=0.8, min_len=5, max_len=15, seed=0):
    """Seeded topic data: ({user: [items]}, {item: text}, {item: topic}). Users prefer 1-2 topics;
    their sequences are items of those topics (no repeats); a text is `text_len` words, each from
    the item's topic vocabulary with probability `topic_word_prob`, else from common words."""
    if n_topics < 1 or n_items < n_topics or min_len < 3 or max_len < min_len:
        raise DataError(f"synthetic: need n_topics >= 1, n_items >= n_topics, 3 <= min_len <= max_len; got "
                        f"n_topics={n_topics}, n_items={n_items}, min_len={min_len}, max_len={max_len}")
    rng = _rng(seed, _SYN)
    taken = set()
    topic_words = [_words(rng, words_per_topic, taken) for _ in range(n_topics)]
    common = _words(rng, n_common_words, taken) if n_common_words else []
    topic = np.concatenate([np.arange(n_topics), rng.integers(0, n_topics, n_items - n_topics)])
    rng.shuffle(topic)
    items = [f"i{j + 1}" for j in range(n_items)]
    text, item_topic = {}, {}
    for j, it in enumerate(items):
        t = int(topic[j])
        words = []
        for _ in range(text_len):
            own = not common or rng.random() < topic_word_prob
            pool = topic_words[t] if own else common
            words.append(pool[rng.integers(len(pool))])
        text[it], item_topic[it] = " ".join(words), t
    by_topic = [np.flatnonzero(topic == t) for t in range(n_topics)]
    seqs = {}
    for u in range(n_users):
        k = 1 if n_topics == 1 or rng.random() < 0.5 else 2
        pool = np.concatenate([by_topic[t] for t in rng.choice(n_topics, k, replace=False)])
        length = min(int(rng.integers(min_len, max_len + 1)), len(pool))
        seqs[f"u{u + 1}"] = [items[j] for j in rng.choice(pool, length, replace=False)]
    return seqs, text, item_topic


def read_behaviors(path):
    """MIND behaviours -> list of (impression_id, user, [history], [(news, label)], line)."""
    p = _need_file(path, "MIND behaviours file")
    out = []
    with open(p, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 5:
                raise DataError(f"{p}: line {i}: expected 5 TAB-separated fields (impression_id, user_id, time, "
                                f"history, impressions), got {len(parts)}")
            try:
                iid = int(parts[0])
            except ValueError:
                raise DataError(f"{p}: line {i}: impression_id {parts[0]!r} is not an integer") from None
            cands = []
            for tok in parts[4].split():
                nid, sep, lab = tok.rpartition("-")
                if not sep or not nid or lab not in ("0", "1"):
                    raise DataError(f"{p}: line {i}: impression token {tok!r} is not <news_id>-<0|1> (a labelled "
                                    f"MIND behaviours file is needed: train or dev, not the unlabelled test)")
                cands.append((nid, int(lab)))
            if not cands:
                raise DataError(f"{p}: line {i}: impression {iid} lists no news")
            out.append((iid, parts[1], parts[3].split(), cands, i))
    return out


def read_news(paths):
    """{news_id: "title. category subcategory"} from MIND news file(s)."""
    text = {}
    for path in paths:
        p = _need_file(path, "MIND news file")
        with open(p, encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                parts = line.rstrip("\r\n").split("\t")
                if len(parts) < 4:
                    raise DataError(f"{p}: line {i}: expected news_id, category, subcategory, title, ... "
                                    f"(TAB-separated), got {len(parts)} field(s)")
                nid, cat, sub, title = (x.strip() for x in parts[:4])
                text.setdefault(nid, _clean(f"{title}. {cat} {sub}"))
    return text


# ------------------------------------------------------------------------------ sampling
def _sample_negatives(rng, users, k, pool, forbid, n_items):
    """[len(users), k] item indices from `pool`, uniform, none with (user * n_items + item) in the
    sorted array `forbid`, distinct within a row (the caller checks each user has k allowed items)."""
    n = len(users)
    out = pool[rng.integers(0, len(pool), size=(n, k))] if n else np.zeros((0, k), np.int64)
    todo = np.arange(n)
    for _ in range(100_000):
        if not len(todo):
            return out
        sub = out[todo]
        bad = np.isin(users[todo, None] * n_items + sub, forbid)
        order = np.argsort(sub, axis=1, kind="stable")
        srt = np.take_along_axis(sub, order, 1)
        r, c = np.nonzero(srt[:, 1:] == srt[:, :-1])
        bad[r, order[:, 1:][r, c]] = True
        sub[bad] = pool[rng.integers(0, len(pool), size=int(bad.sum()))]
        out[todo] = sub
        todo = todo[bad.any(axis=1)]
    raise DataError("content_rec: negative sampling did not converge")  # pragma: no cover


def _check_pool(users_of_keys, items_of_keys, in_pool, n_users, k, what, names):
    have = int(in_pool.sum()) - np.bincount(users_of_keys[in_pool[items_of_keys]], minlength=n_users)
    short = np.flatnonzero(have < k)
    if len(short):
        u = short[0]
        raise DataError(f"content_rec: user {names[u]!r} has only {int(have[u])} candidate {what} items it never "
                        f"interacted with, fewer than the {k} negatives asked ({len(short)} such user(s)); "
                        f"lower the number of negatives")


# ------------------------------------------------------------------------------ leave-one-out
def loo_content(seqs, text, text_file, num_negatives=4, num_eval_negatives=19, max_history=30, seed=2024,
                min_user_items=3, cold_item_fraction=0.0):
    """{user: [items, oldest first]} + {item: text} -> (train, valid, test, items) DataFrames."""
    if min_user_items < 3:
        raise DataError(f"content_rec: min_user_items must be >= 3 (a training, a valid and a test item), "
                        f"got {min_user_items}")
    users = [u for u, s in seqs.items() if len(s) >= min_user_items]
    if not users:
        raise DataError(f"content_rec: no user has {min_user_items} or more items: nothing to split")
    if len(users) < len(seqs):
        log.info("content_rec: %d of %d users have fewer than %d items and are dropped",
                 len(seqs) - len(users), len(seqs), min_user_items)
    names = np.array(sorted({i for u in users for i in seqs[u]}), dtype=object)
    missing = [i for i in names if i not in text]
    if missing:
        raise DataError(f"{text_file}: no text for {len(missing)} of {len(names)} items that are kept "
                        f"(e.g. {', '.join(map(repr, missing[:5]))})")
    index = {it: j for j, it in enumerate(names)}
    n_items, n_users = len(names), len(users)
    enc = [np.fromiter((index[i] for i in seqs[u]), dtype=np.int64, count=len(seqs[u])) for u in users]
    unames = np.array(users, dtype=object)
    lens = np.array([len(e) for e in enc])
    keys = np.unique(np.repeat(np.arange(n_users), lens) * n_items + np.concatenate(enc))
    k_users, k_items = keys // n_items, keys % n_items

    cold = np.zeros(n_items, bool)
    n_cold = int(round(cold_item_fraction * n_items))
    if n_cold:
        cold[_rng(seed, _COLD).choice(n_items, n_cold, replace=False)] = True

    # train rows: every training position t >= 1 of the (cold-filtered) training items
    r_user, r_click, hists, hist_items = [], [], [], []
    removed = affected = lost = 0
    for u, e in enumerate(enc):
        tr = e[:-2]
        keep = ~cold[tr]
        if not keep.all():
            removed += int((~keep).sum())
            affected += 1
            lost += max(len(tr) - 1, 0) - max(int(keep.sum()) - 1, 0)
            tr = tr[keep]
        if len(tr) < 2:
            continue
        nm = names[tr].tolist()
        r_user.append(np.full(len(tr) - 1, u))
        r_click.append(tr[1:])
        hist_items.append(tr[:-1])
        hists += ["^".join(nm[max(0, t - max_history):t]) for t in range(1, len(tr))]
    r_user = np.concatenate(r_user) if r_user else np.zeros(0, np.int64)
    r_click = np.concatenate(r_click) if r_click else np.zeros(0, np.int64)
    if not len(r_user):
        raise DataError("content_rec: no training row (every user's training items are too few or cold)")
    train_pool = np.flatnonzero(~cold)
    _check_pool(k_users, k_items, ~cold, n_users, num_negatives, "training (not cold)", unames)
    negs = _sample_negatives(_rng(seed, _TRAIN_NEG), r_user, num_negatives, train_pool, keys, n_items)
    cand = np.concatenate([r_click[:, None], negs], axis=1)
    in_train = np.zeros(n_items, bool)
    in_train[cand.ravel()] = True
    if hist_items:
        in_train[np.concatenate(hist_items)] = True
    present = in_train.copy()
    train = pd.DataFrame({"impression_id": -1, "user_id": unames[r_user], "hist_items": hists,
                          "candidates": ["^".join(r) for r in names[cand].tolist()], "label": 1.0, "cold": 0})

    # valid / test: one impression per user, 1 + num_eval_negatives candidates in a seeded order
    rng = _rng(seed, _EVAL)
    _check_pool(k_users, k_items, np.ones(n_items, bool), n_users, num_eval_negatives, "", unames)
    frames, base = [], 0
    for cut in (2, 1):  # valid target = second-to-last, test target = last
        uidx = np.arange(n_users)
        target = np.array([e[-cut] for e in enc])
        hist = ["^".join(names[e[:-cut][-max_history:]].tolist()) for e in enc]
        for e in enc:
            present[e[:-cut][-max_history:]] = True
        neg = _sample_negatives(rng, uidx, num_eval_negatives, np.arange(n_items), keys, n_items)
        cands = np.concatenate([target[:, None], neg], axis=1)
        labels = np.zeros(cands.shape)
        labels[:, 0] = 1.0
        order = np.argsort(rng.random(cands.shape), axis=1)
        cands, labels = np.take_along_axis(cands, order, 1), np.take_along_axis(labels, order, 1)
        present[cands.ravel()] = True
        m = cands.shape[1]
        frames.append(pd.DataFrame({
            "impression_id": np.repeat(base + uidx, m), "user_id": np.repeat(unames, m),
            "hist_items": np.repeat(np.array(hist, dtype=object), m), "candidates": names[cands.ravel()],
            "label": labels.ravel(), "cold": (~in_train[cands.ravel()]).astype(np.int64)}))
        base += n_users
    valid, test = frames
    if n_cold:
        tgt_cold = [int((f.loc[f["label"] == 1, "cold"]).sum()) for f in frames]
        log.info("content_rec: cold_item_fraction=%s: %d of %d items cold; %d training interactions of %d users "
                 "removed, %d train rows fewer; valid/test impressions with a cold target: %d/%d; rows with "
                 "cold=1: %d/%d", cold_item_fraction, n_cold, n_items, removed, affected, lost, tgt_cold[0],
                 tgt_cold[1], int(valid["cold"].sum()), int(test["cold"].sum()))
    items = pd.DataFrame({"item_id": names[present], "text": [text[i] for i in names[present]]})
    return train, valid, test, items


# ------------------------------------------------------------------------------ MIND
def _mind_path(value, folder, key):
    if value is None:
        raise DataError(f"content_rec (source: mind): set recipe.{key} (a path, relative to source_path)")
    p = Path(str(value)).expanduser()
    if not p.is_absolute():
        if folder is None:
            raise DataError(f"content_rec (source: mind): recipe.{key} {value!r} is relative: set "
                            f"recipe.source_path to its directory or give an absolute path")
        p = Path(folder) / p
    return p


def mind_content(train_imps, dev_imps, text, dev_file, num_negatives=4, max_history=30, seed=2024,
                 cold_item_fraction=0.0):
    """MIND impressions + news texts -> (train, valid, test, items) DataFrames (see the module doc)."""
    seen = {}
    for iid, _, _, _, line in dev_imps:
        if iid in seen:
            raise DataError(f"{dev_file}: line {line}: impression_id {iid} already used on line {seen[iid]}")
        seen[iid] = line
    tr = [(u, [i for i in h if i in text], [(n, l) for n, l in c if n in text]) for _, u, h, c, _ in train_imps]
    dev = [(iid, u, [i for i in h if i in text], [(n, l) for n, l in c if n in text])
           for iid, u, h, c, _ in dev_imps]
    n_hist = sum(len(x[2]) for x in train_imps + dev_imps)
    n_cand = sum(len(x[3]) for x in train_imps + dev_imps)
    kept_hist = sum(len(x[1]) for x in tr) + sum(len(x[2]) for x in dev)
    kept_cand = sum(len(x[2]) for x in tr) + sum(len(x[3]) for x in dev)
    if kept_hist < n_hist or kept_cand < n_cand:
        log.warning("content_rec (mind): news without an article dropped: %d of %d history entries, %d of %d "
                    "impression entries", n_hist - kept_hist, n_hist, n_cand - kept_cand, n_cand)

    universe = sorted({i for _, h, c in tr for i in h + [n for n, _ in c]}
                      | {i for _, _, h, c in dev for i in h + [n for n, _ in c]})
    n_cold = int(round(cold_item_fraction * len(universe)))
    cold = set(np.array(universe, dtype=object)[_rng(seed, _COLD).choice(len(universe), n_cold, replace=False)]) \
        if n_cold else set()

    rng = _rng(seed, _TRAIN_NEG)
    rows, no_neg, cold_clicks = [], 0, 0
    for u, h, c in tr:
        h = [i for i in h if i not in cold]
        clicks = [n for n, l in c if l == 1]
        pool = [n for n, l in c if l == 0 and n not in cold]
        cold_clicks += sum(n in cold for n in clicks)
        clicks = [n for n in clicks if n not in cold]
        if not pool:
            no_neg += len(clicks)
            continue
        hist = "^".join(h[-max_history:])
        pool = np.array(pool, dtype=object)
        for n in clicks:
            neg = rng.choice(pool, num_negatives, replace=len(pool) < num_negatives)
            rows.append((-1, u, hist, "^".join([n, *neg]), 1.0, 0))
    if no_neg:
        log.warning("content_rec (mind): %d train click(s) dropped: their impression has no non-clicked news", no_neg)
    train = pd.DataFrame(rows, columns=COLUMNS)
    if not len(train):
        raise DataError("content_rec (mind): no training row (no train impression has a click and a non-click)")
    in_train = {i for s in train["hist_items"] for i in s.split("^") if i} | \
               {i for s in train["candidates"] for i in s.split("^")}

    ok = [d for d in dev if any(l for _, l in d[3]) and not all(l for _, l in d[3])]
    if len(ok) < len(dev):
        log.warning("content_rec (mind): %d of %d dev impressions dropped: no positive or no negative left",
                    len(dev) - len(ok), len(dev))
    ids = np.array(sorted(d[0] for d in ok), dtype=np.int64)
    perm = _rng(seed, _SPLIT).permutation(len(ids))
    valid_ids = set(ids[perm[:len(ids) // 2]].tolist())
    out = {"valid": [], "test": []}
    for iid, u, h, c in ok:
        hist = "^".join(h[-max_history:])
        part = out["valid" if iid in valid_ids else "test"]
        part += [(iid, u, hist, n, float(l), int(n not in in_train)) for n, l in c]
    valid, test = (pd.DataFrame(out[s], columns=COLUMNS) for s in ("valid", "test"))
    if n_cold:
        log.info("content_rec (mind): cold_item_fraction=%s: %d of %d news cold; %d train clicks removed; valid/"
                 "test rows with cold=1: %d/%d", cold_item_fraction, n_cold, len(universe), cold_clicks,
                 int(valid["cold"].sum()), int(test["cold"].sum()))
    present = set(in_train)
    for f in (valid, test):
        present |= set(f["candidates"])
        present |= {i for s in f["hist_items"] for i in s.split("^") if i}
    names = sorted(present)
    items = pd.DataFrame({"item_id": names, "text": [text[i] for i in names]})
    return train, valid, test, items


# ------------------------------------------------------------------------------ entry point
def _positive_int(name, v, minimum=1):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise DataError(f"content_rec: {name} must be an integer >= {minimum}, got {v!r}")


def make(train_path, valid_path, test_path, source="synthetic", source_path=None, num_negatives=4,
         num_eval_negatives=19, max_history=30, seed=2024, min_user_items=3, cold_item_fraction=0.0,
         behaviors_train=None, behaviors_dev=None, news=None, synthetic=None):
    """Recipe entry point (`recipe: {name: content_rec, source: ..., source_path: ...}`); writes
    train/valid/test and `items.csv` beside `train_path` (see the module doc)."""
    if source not in SOURCES:
        raise DataError(f"content_rec recipe: source must be one of {SOURCES}, got {source!r}")
    _positive_int("num_negatives", num_negatives)
    _positive_int("num_eval_negatives", num_eval_negatives)
    _positive_int("max_history", max_history)
    _positive_int("min_user_items", min_user_items, 3)
    if not isinstance(cold_item_fraction, (int, float)) or not 0 <= cold_item_fraction < 1:
        raise DataError(f"content_rec: cold_item_fraction must be in [0, 1), got {cold_item_fraction!r}")
    common = dict(num_negatives=num_negatives, max_history=max_history, seed=seed,
                  cold_item_fraction=float(cold_item_fraction))
    if source == "mind":
        folder = source_path
        news_list = news if isinstance(news, (list, tuple)) else [news]
        train_imps = read_behaviors(_mind_path(behaviors_train, folder, "behaviors_train"))
        dev_file = _mind_path(behaviors_dev, folder, "behaviors_dev")
        dev_imps = read_behaviors(dev_file)
        text = read_news([_mind_path(n, folder, "news") for n in news_list])
        frames = mind_content(train_imps, dev_imps, text, dev_file, **common)
    else:
        if source == "synthetic":
            seqs, text, _ = synthetic_content(**{"seed": seed, **(synthetic or {})})
            text_file = "synthetic"
        elif source_path is None:
            raise DataError(f"content_rec (source: {source}): set recipe.source_path")
        elif source == "recbole":
            seqs = read_recbole(source_path)
            text, text_file = read_recbole_text(source_path)
        elif source == "goodreads":
            seqs, text, text_file = read_goodreads(source_path)
        else:
            seqs, text, text_file = read_movielens_content(source_path)
        frames = loo_content(seqs, text, text_file, num_eval_negatives=num_eval_negatives,
                             min_user_items=min_user_items, **common)
    train, valid, test, items = frames
    log.info("content_rec (%s): %d users, %d items, %d train rows; valid %d impressions / %d rows, test %d / %d",
             source, len(set(train["user_id"]) | set(valid["user_id"]) | set(test["user_id"])), len(items),
             len(train), valid["impression_id"].nunique(), len(valid), test["impression_id"].nunique(), len(test))
    with atomic_path(Path(train_path).parent / ITEMS_FILE) as tmp:
        items.to_csv(tmp, index=False)
    write_splits([train, valid, test], (train_path, valid_path, test_path))


# ------------------------------------------------------------------ reading items.csv back (models)
def item_vocabulary(feature_map, owner):
    """[(token, id)] of the item vocabulary (`feature_vocab.json` of the processed data), id order."""
    path = Path(feature_map.data_dir or ".") / "feature_vocab.json"
    if not path.is_file():
        raise DataError(f"{path}: the processed data's vocabularies are missing (build the dataset first)")
    vocab = json.loads(path.read_text(encoding="utf-8"))
    if owner not in vocab:
        raise ConfigError(f"{path}: no vocabulary for item feature '{owner}' (has: {', '.join(vocab)})")
    return sorted(vocab[owner].items(), key=lambda kv: kv[1])


def item_texts(feature_map, owner, items_file, vocab_size):
    """The text of every item id 0..vocab_size-1 ("" for padding, OOV and items without text), and how many ids
    have text."""
    p = Path(items_file)
    if not p.is_file():
        raise DataError(f"items_file {p} not found (the content_rec recipe writes items.csv beside train.csv)")
    df = pd.read_csv(p, dtype=str, keep_default_na=False)
    for col in ("item_id", "text"):
        if col not in df.columns:
            raise DataError(f"{p}: missing column '{col}' (has: {', '.join(df.columns)})")
    text_of = dict(zip(df["item_id"], df["text"]))
    texts = [""] * vocab_size
    found = 0
    for token, i in item_vocabulary(feature_map, owner):
        if i < vocab_size and token in text_of:
            texts[i] = text_of[token]
            found += 1
    return texts, found
