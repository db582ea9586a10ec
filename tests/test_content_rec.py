"""The `content_rec` recipe (content-based recommendation sets: train rows = click + negatives,
valid/test = impressions, items.csv = item texts) and the `vocab_keys` feature option."""

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from fuxi_like.config import load_dataset_config
from fuxi_like.data.build_dataset import build_dataset, load_feature_map
from fuxi_like.datasets import RECIPES
from fuxi_like.datasets.content_rec import make, synthetic_content
from fuxi_like.errors import ConfigError, DataError
from helpers import ROOT, SHARED, make_model_folder

MIND_KIM = SHARED / "mind_kim"
SCIENTIFIC = SHARED / "amazon_scientific_text" / "Scientific"
EVAL_COLS = ["impression_id", "user_id", "hist_items", "candidates", "label", "cold"]
SYN = {"n_users": 300, "n_items": 200, "n_topics": 5, "min_len": 5, "max_len": 12, "seed": 3}


def run(tmp_path, name="d", **params):
    d = Path(tmp_path) / name
    paths = [str(d / f"{s}.csv") for s in ("train", "valid", "test")]
    make(*paths, **params)
    return [pd.read_csv(d / f"{s}.csv", dtype={"user_id": str, "hist_items": str, "candidates": str, "item_id": str},
                        keep_default_na=False) for s in ("train", "valid", "test", "items")]


def lists(col):
    return [s.split("^") if s else [] for s in col]


def train_items(train):
    return {i for col in ("hist_items", "candidates") for l in lists(train[col]) for i in l}


def check_eval_frames(valid, test, train):
    """Columns, unique impression ids, >= 1 positive and >= 1 negative each, cold flags right."""
    assert list(valid.columns) == EVAL_COLS and list(test.columns) == EVAL_COLS
    assert not set(valid["impression_id"]) & set(test["impression_id"])
    seen = train_items(train)
    for f in (valid, test):
        g = f.groupby("impression_id")
        assert (g["label"].sum() >= 1).all() and (g["label"].apply(lambda x: (x == 0).sum()) >= 1).all()
        assert (g["user_id"].nunique() == 1).all() and (g["hist_items"].nunique() == 1).all()
        assert set(f["label"]) <= {0.0, 1.0}
        assert (f["cold"] == [int(c not in seen) for c in f["candidates"]]).all()


# --------------------------------------------------------------------------- synthetic
def test_synthetic_contract(tmp_path):
    K, E, H = 3, 9, 4
    train, valid, test, items = run(tmp_path, source="synthetic", num_negatives=K, num_eval_negatives=E,
                                    max_history=H, seed=5, synthetic=SYN)
    seqs, text, _ = synthetic_content(**SYN)
    assert list(train.columns) == EVAL_COLS
    assert (train["impression_id"] == -1).all() and (train["cold"] == 0).all() and (train["label"] == 1.0).all()
    # train: one row per training position t >= 1; candidate 0 = the click, history = the H items before it
    assert len(train) == sum(len(s) - 3 for s in seqs.values())
    pos = {}
    for u, h, c in zip(train["user_id"], lists(train["hist_items"]), lists(train["candidates"])):
        s = seqs[u]
        t = pos[u] = pos.get(u, 0) + 1
        assert len(c) == 1 + K and c[0] == s[t] and h == s[max(0, t - H):t] and 1 <= len(h) <= H
        assert len(set(c)) == len(c) and not set(c[1:]) & set(s)  # distinct, never an item of the user
    assert all(pos[u] == len(s) - 3 for u, s in seqs.items())
    # valid/test: one impression per user, 1 + E candidates, target = second-to-last / last
    check_eval_frames(valid, test, train)
    for f, cut in ((valid, 2), (test, 1)):
        assert f["impression_id"].nunique() == len(seqs) and len(f) == len(seqs) * (1 + E)
        for iid, g in f.groupby("impression_id"):
            s = seqs[g["user_id"].iloc[0]]
            assert g["label"].sum() == 1 and g.loc[g["label"] == 1, "candidates"].item() == s[-cut]
            assert lists(g["hist_items"])[0] == s[:-cut][-H:]
            negs = g.loc[g["label"] == 0, "candidates"]
            assert negs.nunique() == E and not set(negs) & set(s)
    assert sorted(valid["impression_id"].unique()) == list(range(len(seqs)))
    # the positive is not always first (seeded candidate order)
    first = test.groupby("impression_id")["label"].first()
    assert 0 < first.sum() < len(first)
    # items.csv: every item of every split, with the generator's text
    used = train_items(train) | train_items(valid) | train_items(test)
    assert set(items["item_id"]) == used and items["item_id"].is_unique
    assert all(text[i] == t for i, t in zip(items["item_id"], items["text"]))
    # seeded
    again = run(tmp_path, "again", source="synthetic", num_negatives=K, num_eval_negatives=E, max_history=H,
                seed=5, synthetic=SYN)
    assert all(a.equals(b) for a, b in zip(again, (train, valid, test, items)))


def test_synthetic_texts_follow_topics_and_users_their_topics():
    seqs, text, topic = synthetic_content(**SYN)
    words = {t: set() for t in set(topic.values())}
    for i, s in text.items():
        words[topic[i]] |= set(s.split())
        assert len(s.split()) == 8
    for u, s in seqs.items():
        assert 1 <= len({topic[i] for i in s}) <= 2 and len(set(s)) == len(s)
    # items of one topic share far more words than items of two topics
    it = sorted(text)
    same = [len(set(text[a].split()) & set(text[b].split())) for a in it[:60] for b in it[:60]
            if a < b and topic[a] == topic[b]]
    diff = [len(set(text[a].split()) & set(text[b].split())) for a in it[:60] for b in it[:60]
            if topic[a] != topic[b]]
    assert np.mean(same) > 3 * np.mean(diff)


def test_cold_item_fraction(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="fuxi_like"):
        train, valid, test, items = run(tmp_path, source="synthetic", cold_item_fraction=0.2, seed=1, synthetic=SYN)
    seen = train_items(train)
    cold = set(items["item_id"]) - seen
    assert len(cold) >= round(0.2 * SYN["n_items"])  # the chosen ones are in no train row
    check_eval_frames(valid, test, train)
    assert set(test.loc[test["cold"] == 1, "candidates"]) <= cold
    tgt = test[(test["label"] == 1) & (test["cold"] == 1)]
    assert len(tgt) > 0 and set(tgt["candidates"]) <= cold  # cold items stay evaluation targets
    assert any(set(h) & cold for h in lists(test["hist_items"]))  # ... and in valid/test histories
    assert any("items cold" in r.getMessage() and "train rows fewer" in r.getMessage() for r in caplog.records)
    plain = run(tmp_path, "plain", source="synthetic", seed=1, synthetic=SYN)
    assert len(plain[0]) > len(train) and plain[2]["cold"].sum() < test["cold"].sum()


# --------------------------------------------------------------------------- vocabulary
def content_dataset(tmp_path, cold=0.2, vocab_keys=True):
    cand = {"name": "candidates", "type": "sequence", "splitter": "^", "max_len": 5, "padding": "post",
            "truncate": "post", "min_categr_count": 1, "source": "item"}
    if vocab_keys:
        cand["vocab_keys"] = "raw/items.csv:item_id"  # relative to the model folder (a private id)
    ds = {"data_root": "processed/", "train_data": "raw/train.csv", "valid_data": "raw/valid.csv",
          "test_data": "raw/test.csv",
          "recipe": {"name": "content_rec", "source": "synthetic", "cold_item_fraction": cold, "seed": 1,
                     "synthetic": {"n_users": 200, "n_items": 150, "n_topics": 4}},
          "feature_cols": [{"name": "user_id", "type": "categorical", "source": "user"}, cand,
                           {"name": "hist_items", "type": "sequence", "splitter": "^", "max_len": 30,
                            "share_embedding": "candidates", "source": "user"},
                           {"name": "impression_id", "type": "meta", "remap": False},
                           {"name": "cold", "type": "meta", "remap": False}],
          "label_col": {"name": "label", "dtype": "float"}}
    folder = make_model_folder(tmp_path, {"cr": ds}, {}, name="m" if vocab_keys else "m_plain")
    return load_dataset_config(folder, "cr")


def test_vocab_keys_give_cold_items_their_own_ids(tmp_path):
    cfg = content_dataset(tmp_path)
    assert cfg["feature_cols"][1]["vocab_keys"] == str(tmp_path / "m" / "raw" / "items.csv") + ":item_id"
    data_dir = build_dataset(cfg)
    fmap = load_feature_map(data_dir)
    vocab = json.loads((Path(data_dir) / "feature_vocab.json").read_text())["candidates"]
    raw = Path(cfg["train_data"]).parent
    test = pd.read_csv(raw / "test.csv", dtype=str, keep_default_na=False)
    items = pd.read_csv(raw / "items.csv", dtype=str, keep_default_na=False)
    spec = fmap.features["candidates"]
    assert spec["vocab_size"] == len(items) + 2 and fmap.features["hist_items"]["share_embedding"] == "candidates"
    cold_rows = test.index[test["cold"] == "1"]
    assert len(cold_rows)
    enc = pq.read_table(Path(data_dir) / "test").to_pandas()
    for r in cold_rows[:20]:
        item = test.at[r, "candidates"]
        assert 0 < vocab[item] < spec["oov_idx"]
        row = enc["candidates"][r]
        assert row[0] == vocab[item] and not any(row[1:])  # one candidate, padded after it (padding: post)
    assert set(enc["cold"]) == {0, 1} and enc["impression_id"].min() >= 0

    # the training keys keep the ids they get without vocab_keys; cold items would be OOV there
    plain_dir = build_dataset(content_dataset(tmp_path, vocab_keys=False))
    plain = json.loads((Path(plain_dir) / "feature_vocab.json").read_text())["candidates"]
    assert all(vocab[k] == i for k, i in plain.items() if k != "__OOV__")
    assert not set(test.loc[cold_rows, "candidates"]) & set(plain)
    extra = [k for k, _ in sorted(vocab.items(), key=lambda kv: kv[1]) if k not in plain and k != "__OOV__"]
    assert extra == [k for k in items["item_id"] if k not in plain]  # in file order


def test_vocab_keys_errors(tmp_path):
    from fuxi_like.features.processor import FeatureProcessor

    cfg = content_dataset(tmp_path)
    train = pd.DataFrame({"user_id": ["u"], "candidates": ["a^b"], "hist_items": [""], "impression_id": [-1],
                          "cold": [0], "label": [1.0]})
    keys = tmp_path / "keys.csv"
    pd.DataFrame({"item_id": ["b", "c", "c", "a", "NA"]}).to_csv(keys, index=False)
    cfg["feature_cols"][1]["vocab_keys"] = f"{keys}:item_id"
    proc = FeatureProcessor(cfg).fit(train)
    assert proc.vocabs["candidates"].tokens[2:] == ["c", "NA"]  # a, b from train; then file order, once each
    cfg["feature_cols"][1]["vocab_keys"] = f"{keys}:itemid"
    with pytest.raises(DataError, match=r"keys.csv: column 'itemid' not found \(did you mean 'item_id'"):
        FeatureProcessor(cfg).fit(train)
    cfg["feature_cols"][1]["vocab_keys"] = str(keys)
    with pytest.raises(ConfigError, match="vocab_keys must be '<csv file>:<column>'"):
        FeatureProcessor(cfg).fit(train)
    cfg["feature_cols"][1]["vocab_keys"] = None
    cfg["feature_cols"][3]["vocab_keys"] = f"{keys}:item_id"
    with pytest.raises(ConfigError, match="'impression_id' has vocab_keys but is meta"):
        FeatureProcessor(cfg)


# --------------------------------------------------------------------------- MIND
def read_mind(path):
    rows = [l.rstrip("\n").split("\t") for l in open(path, encoding="utf-8") if l.strip()]
    return [(int(r[0]), r[1], r[3].split(), [(t.rsplit("-", 1)[0], int(t.rsplit("-", 1)[1])) for t in r[4].split()])
            for r in rows]


@pytest.mark.skipif(not MIND_KIM.is_dir(), reason="../shared/data/mind_kim absent")
def test_mind_kim_counts_equal_the_files(tmp_path):
    params = dict(source="mind", source_path=str(MIND_KIM), behaviors_train="train.tsv", behaviors_dev="test.tsv",
                  news="docs.tsv", seed=7)
    train, valid, test, items = run(tmp_path, **params)
    tr, dev = read_mind(MIND_KIM / "train.tsv"), read_mind(MIND_KIM / "test.tsv")
    # every click of every train impression is a row: the click first, 4 negatives of its impression's non-clicks
    assert len(train) == sum(l for *_, c in tr for _, l in c) == 5
    clicks = [(u, n) for _, u, _, c in tr for n, l in c if l]
    assert [(u, c[0]) for u, c in zip(train["user_id"], lists(train["candidates"]))] == clicks
    for (_, u, h, c), (hist, cand) in zip(tr, zip(lists(train["hist_items"]), lists(train["candidates"]))):
        assert hist == h[-30:] and len(cand) == 5 and set(cand[1:]) <= {n for n, l in c if l == 0}
    # dev impressions -> valid + test, every candidate a row
    assert valid["impression_id"].nunique() + test["impression_id"].nunique() == len(dev) == 2
    assert len(valid) + len(test) == sum(len(c) for *_, c in dev) == 108
    assert valid["label"].sum() + test["label"].sum() == sum(l for *_, c in dev for _, l in c) == 3
    assert set(valid["impression_id"]) | set(test["impression_id"]) == {d[0] for d in dev}
    for iid, u, h, c in dev:
        f = valid if iid in set(valid["impression_id"]) else test
        g = f[f["impression_id"] == iid]
        assert list(zip(g["candidates"], g["label"].astype(int))) == c and set(g["user_id"]) == {u}
    assert valid["impression_id"].nunique() == test["impression_id"].nunique() == 1  # 50/50
    check_eval_frames(valid, test, train)
    assert set(items["item_id"]) == train_items(train) | train_items(valid) | train_items(test)
    docs = {l.split("\t")[0]: l.split("\t") for l in open(MIND_KIM / "docs.tsv", encoding="utf-8")}
    i = items["item_id"].iloc[0]
    assert items["text"].iloc[0] == f"{docs[i][3]}. {docs[i][1]} {docs[i][2]}"
    again = run(tmp_path, "again", **params)
    assert all(a.equals(b) for a, b in zip(again, (train, valid, test, items)))


def write_mind(folder, n_train=30, n_dev=40, seed=0):
    """A small MIND-format set; news N0..N59 have articles, N99 has none."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "news.tsv").write_text("".join(f"N{j}\tcat{j % 3}\tsub{j % 5}\tTitle {j}\tabstract\turl\t[]\t[]\n"
                                             for j in range(60)))
    for name, n, first in (("train.tsv", n_train, 1), ("dev.tsv", n_dev, 1000)):
        lines = []
        for i in range(n):
            c = rng.choice(60, 6, replace=False)
            toks = [f"N{c[0]}-1", f"N{c[1]}-0"] + [f"N{x}-{int(rng.random() < 0.2)}" for x in c[2:]] + ["N99-0"]
            hist = " ".join(f"N{x}" for x in rng.choice(60, int(rng.integers(0, 40)))) + " N99"
            lines.append(f"{first + i}\tU{i % 7}\t11/11/2019 9:05:58 AM\t{hist.strip()}\t{' '.join(toks)}\n")
        (folder / name).write_text("".join(lines))
    return dict(source="mind", source_path=str(folder), behaviors_train="train.tsv", behaviors_dev="dev.tsv",
                news="news.tsv")


def test_mind_split_is_seeded_half_half_and_uncovered_news_dropped(tmp_path, caplog):
    params = write_mind(tmp_path / "mind")
    with caplog.at_level(logging.INFO, logger="fuxi_like"):
        train, valid, test, items = run(tmp_path, seed=1, **params)
    assert any("news without an article dropped" in r.getMessage() for r in caplog.records)
    assert "N99" not in set(items["item_id"]) and not any("N99" in s for s in train["hist_items"])
    assert valid["impression_id"].nunique() == test["impression_id"].nunique() == 20
    assert set(valid["impression_id"]) | set(test["impression_id"]) == set(range(1000, 1040))
    assert len(valid) + len(test) == 40 * 6  # N99 dropped from every impression
    check_eval_frames(valid, test, train)
    assert all(len(c) == 5 for c in lists(train["candidates"]))
    same = run(tmp_path, "same", seed=1, **params)
    other = run(tmp_path, "other", seed=2, **params)
    assert set(same[1]["impression_id"]) == set(valid["impression_id"])
    assert set(other[1]["impression_id"]) != set(valid["impression_id"])
    # an impression with fewer non-clicks than num_negatives: sampled with replacement
    few = run(tmp_path, "few", seed=1, num_negatives=8, **params)
    assert all(len(c) == 9 for c in lists(few[0]["candidates"]))


# --------------------------------------------------------------------------- Scientific (RecBole)
@pytest.fixture(scope="module")
def scientific(tmp_path_factory):
    if not SCIENTIFIC.with_suffix(".test.inter").is_file():
        pytest.skip("../shared/data/amazon_scientific_text absent")
    return run(tmp_path_factory.mktemp("sci"), source="recbole", source_path=str(SCIENTIFIC))


def test_recbole_scientific_keeps_the_published_targets(scientific):
    train, valid, test, items = scientific
    for f, split in ((valid, "valid"), (test, "test")):
        inter = pd.read_csv(SCIENTIFIC.with_suffix(f".{split}.inter"), sep="\t", dtype=str)
        want = dict(zip(inter["user_id:token"], inter["item_id:token"]))
        got = dict(zip(f.loc[f["label"] == 1, "user_id"], f.loc[f["label"] == 1, "candidates"]))
        assert len(got) == 8442 and got == want
        hist = dict(zip(f["user_id"], f["hist_items"]))
        assert all(hist[u] == "^".join(h.split()[-30:]) for u, h in zip(inter["user_id:token"], inter["item_id_list:token_seq"]))
    assert len(train) == 59427 - 3 * 8442 and len(items) == 4385
    check_eval_frames(valid.head(2000), test.head(2000), train)
    text = {}
    idx = dict(l.split() for l in open(SCIENTIFIC.with_suffix(".item2index"), encoding="utf-8"))
    for l in list(open(SCIENTIFIC.with_suffix(".text"), encoding="utf-8"))[1:]:
        k, t = l.rstrip("\n").split("\t", 1)
        text[idx[k]] = " ".join(t.split())
    assert all(text[i] == t for i, t in zip(items["item_id"], items["text"]))


# --------------------------------------------------------------------------- registry + errors
def test_registry_datasets_are_registered_and_consistent():
    assert "content_rec" in RECIPES
    for ds in ("scientific_content", "goodreads_content", "ml_content", "mind_kim_content", "synthetic_content"):
        cfg = load_dataset_config(ROOT / "model_zoo" / "DeepFM" / "config", ds)
        f = {x["name"]: x for x in cfg["feature_cols"]}
        assert cfg["recipe"]["name"] == "content_rec"
        assert f["candidates"]["max_len"] == 1 + cfg["recipe"].get("num_negatives", 4)
        assert f["hist_items"]["max_len"] == cfg["recipe"].get("max_history", 30)
        assert f["candidates"]["vocab_keys"] == str(Path(cfg["train_data"]).parent / "items.csv") + ":item_id"
        assert f["hist_items"]["share_embedding"] == "candidates"


def test_bad_input_names_file_and_line(tmp_path):
    with pytest.raises(DataError, match="nope.*(not found|set recipe)"):
        run(tmp_path, source="goodreads", source_path=str(tmp_path / "nope"))
    params = write_mind(tmp_path / "mind", n_train=3, n_dev=4)
    bad = tmp_path / "mind" / "dev.tsv"
    lines = bad.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace("-0", "-x", 1)
    bad.write_text("".join(lines))
    with pytest.raises(DataError, match=rf"{bad}: line 3: impression token 'N\d+-x' is not <news_id>-<0\|1>"):
        run(tmp_path, **params)
    lines[2] = "1\tU1\ttime\tN1\n"
    bad.write_text("".join(lines))
    with pytest.raises(DataError, match=rf"{bad}: line 3: expected 5 TAB-separated fields"):
        run(tmp_path, **params)
    with pytest.raises(DataError, match="set recipe.behaviors_dev"):
        run(tmp_path, **{**params, "behaviors_dev": None})
    gr = tmp_path / "gr"
    gr.mkdir()
    (gr / "user_histories.tsv").write_text("user_id\thistory_book_ids\nu1\t1 2 3\nu2 1 2 3\n")
    (gr / "books.tsv").write_text("bid\ttitle\n1\tA\n2\tB\n3\tC\n")
    with pytest.raises(DataError, match=rf"{gr / 'user_histories.tsv'}: line 3: expected user_id<TAB>"):
        run(tmp_path, source="goodreads", source_path=str(gr))
    (gr / "user_histories.tsv").write_text("user_id\thistory_book_ids\nu1\t1 2 3 4\n")
    with pytest.raises(DataError, match=rf"{gr / 'books.tsv'}: no text for 1 of 4 items.*'4'"):
        run(tmp_path, source="goodreads", source_path=str(gr))
    (gr / "books.tsv").write_text("bid\ttitle\n1\tA\n2\tB\n3\tC\n4\tD\n")
    with pytest.raises(DataError, match="has only 0 candidate"):  # a user that interacted with every item
        run(tmp_path, source="goodreads", source_path=str(gr), num_eval_negatives=1)
