"""Feature processing: each feature type, parquet input, pretrained files, bad data."""

import json

import h5py
import numpy as np
import pandas as pd
import pytest

from fuxi_like.config import load_dataset_config
from fuxi_like.data.build_dataset import build_dataset, load_feature_map
from fuxi_like.data.tf_dataset import load_split
from fuxi_like.errors import DataError
from helpers import make_model_folder


def build(tmp_path, feature_cols, train, valid=None, fmt="csv", **extra):
    ext = "csv" if fmt == "csv" else "parquet"
    paths = {}
    for split, frame in (("train", train), ("valid", valid)):
        if frame is None:
            continue
        p = tmp_path / f"{split}.{ext}"
        frame.to_csv(p, index=False) if fmt == "csv" else frame.to_parquet(p, index=False)
        paths[f"{split}_data"] = str(p)
    ds = {"data_root": str(tmp_path / "proc"), "feature_cols": feature_cols, "label_col": {"name": "y"},
          **paths, **extra}
    cfg = load_dataset_config(make_model_folder(tmp_path, {"d": ds}, {}), "d")
    data_dir = build_dataset(cfg)
    fmap = load_feature_map(data_dir)
    return fmap, {s: load_split(fmap, s) for s in ("train", "valid") if s + "_data" in paths}, data_dir


def test_categorical_vocab_min_count_pad_oov(tmp_path):
    train = pd.DataFrame({"y": [1, 0, 1, 0, 1, 0], "c": ["a", "a", "a", "b", "b", "z"]})
    valid = pd.DataFrame({"y": [1, 0, 1], "c": ["b", "new", None]})
    fmap, d, data_dir = build(tmp_path, [{"name": "c", "type": "categorical", "min_categr_count": 2}], train, valid)
    spec = fmap.features["c"]
    # PAD=0, a (3) -> 1, b (2) -> 2, z (1 < min count) -> OOV, OOV = last = 3
    assert spec["vocab_size"] == 4 and spec["oov_idx"] == 3 and spec["padding_idx"] == 0
    assert d["train"]["c"].tolist() == [1, 1, 1, 2, 2, 3]
    assert d["valid"]["c"].tolist() == [2, 3, 3]  # unseen and missing -> OOV
    vocab = json.load(open(f"{data_dir}/feature_vocab.json"))["c"]
    assert vocab == {"__PAD__": 0, "a": 1, "b": 2, "__OOV__": 3}


def test_categorical_fill_na_is_a_token(tmp_path):
    train = pd.DataFrame({"y": [1, 0, 1], "c": ["a", None, None]})
    fmap, d, _ = build(tmp_path, [{"name": "c", "type": "categorical", "fill_na": "missing"}], train)
    assert d["train"]["c"].tolist() == [2, 1, 1]  # 'missing' (2x) -> 1, a -> 2


def test_numeric_fill_na_and_normalizers(tmp_path):
    train = pd.DataFrame({"y": [1, 0, 1, 0], "x": [1.0, None, 3.0, 4.0], "m": [0.0, 5.0, 10.0, None]})
    fmap, d, _ = build(tmp_path, [
        {"name": "x", "type": "numeric", "fill_na": 0, "normalizer": "standard"},
        {"name": "m", "type": "numeric", "fill_na": 10, "normalizer": "minmax"}], train)
    x = np.array([1.0, 0.0, 3.0, 4.0])
    np.testing.assert_allclose(d["train"]["x"], (x - x.mean()) / x.std(), rtol=1e-5)
    np.testing.assert_allclose(d["train"]["m"], [0.0, 0.5, 1.0, 1.0], rtol=1e-6)
    assert fmap.features["x"]["normalizer"]["kind"] == "standard"


def test_sequence_truncation_padding_and_shared_vocab(tmp_path):
    train = pd.DataFrame({"y": [1, 0, 1], "item": ["i1", "i2", "i1"],
                          "hist": ["i1^i2^i3^i4", "i2", ""], "hpost": ["i3^i1", "i1^i2^i3^i4", "i2"]})
    cols = [{"name": "item", "type": "categorical"},
            {"name": "hist", "type": "sequence", "splitter": "^", "max_len": 3, "share_embedding": "item"},
            {"name": "hpost", "type": "sequence", "max_len": 3, "padding": "post", "share_embedding": "item"}]
    fmap, d, data_dir = build(tmp_path, cols, train)
    vocab = json.load(open(f"{data_dir}/feature_vocab.json"))
    assert set(vocab) == {"item"}  # one vocab, shared
    v = vocab["item"]
    ids = lambda toks: [v[t] for t in toks]  # noqa: E731
    # pre padding, most recent 3 kept
    assert d["train"]["hist"].tolist() == [ids(["i2", "i3", "i4"]), [0, 0] + ids(["i2"]), [0, 0, 0]]
    assert d["train"]["hpost"].tolist() == [ids(["i3", "i1"]) + [0], ids(["i2", "i3", "i4"]), ids(["i2"]) + [0, 0]]
    assert fmap.features["hist"]["vocab_size"] == fmap.features["item"]["vocab_size"] == len(v)
    assert fmap.features["hist"]["share_embedding"] == "item"


def test_meta_remap_and_raw_ids(tmp_path):
    train = pd.DataFrame({"y": [1, 0, 1], "u": ["7", "9", "7"]})
    cols = [{"name": "u", "type": "categorical"},
            {"name": "gid", "type": "meta", "copy_from": "u", "remap": False},
            {"name": "gid2", "type": "meta", "copy_from": "u"}]
    fmap, d, _ = build(tmp_path, cols, train)
    assert d["train"]["gid"].tolist() == [7, 9, 7]
    assert d["train"]["gid2"].tolist() == [1, 2, 1]
    assert fmap.names() == ["u"] and fmap.meta_names() == ["gid", "gid2"]


def test_dense_embedding_feature_from_parquet_lists(tmp_path):
    vecs = np.arange(12, dtype=np.float32).reshape(3, 4)
    train = pd.DataFrame({"y": [1, 0, 1], "v": list(vecs), "seq": [["a", "b"], ["b"], []]})
    cols = [{"name": "v", "type": "embedding", "pretrain_dim": 4},
            {"name": "seq", "type": "sequence", "max_len": 2}]
    fmap, d, _ = build(tmp_path, cols, train, fmt="parquet")
    np.testing.assert_array_equal(d["train"]["v"], vecs)
    assert d["train"]["seq"].shape == (3, 2) and (d["train"]["seq"][2] == 0).all()


def test_embedding_feature_wrong_size_is_clear(tmp_path):
    train = pd.DataFrame({"y": [1, 0], "v": ["1^2^3", "1^2"]})
    with pytest.raises(DataError, match=r"train\.csv: column 'v', row 2: expected a vector of pretrain_dim=3"):
        build(tmp_path, [{"name": "v", "type": "embedding", "pretrain_dim": 3}], train)


@pytest.mark.parametrize("fmt", ["npz", "h5", "parquet"])
def test_pretrained_vectors_aligned_to_vocab(tmp_path, fmt):
    keys = np.array([10, 20, 30])
    vals = np.arange(6, dtype=np.float32).reshape(3, 2) + 1
    path = tmp_path / f"emb.{fmt}"
    if fmt == "npz":
        np.savez(path, key=keys, value=vals)
    elif fmt == "h5":
        with h5py.File(path, "w") as f:
            f["key"], f["value"] = keys, vals
    else:
        pd.DataFrame({"key": keys, "value": list(vals)}).to_parquet(path)
    train = pd.DataFrame({"y": [1, 0, 1], "u": ["10", "10", "99"]})
    fmap, d, data_dir = build(tmp_path, [{"name": "u", "type": "categorical", "pretrained_emb": str(path)}], train)
    vocab = json.load(open(f"{data_dir}/feature_vocab.json"))["u"]
    # keys only in the pretrained file still get ids (usable at serving time)
    assert {"10", "20", "30", "99"} <= set(vocab)
    mat = np.load(f"{data_dir}/{fmap.features['u']['pretrained_emb']}")
    np.testing.assert_array_equal(mat[vocab["20"]], vals[1])
    np.testing.assert_array_equal(mat[vocab["99"]], [0, 0])
    assert fmap.features["u"]["pretrain_dim"] == 2


def test_bad_numeric_names_file_row_column(tmp_path):
    train = pd.DataFrame({"y": [1, 0, 1], "x": ["1.5", "abc", "2"]})
    with pytest.raises(DataError, match=r"train\.csv: column 'x', row 2 .*cannot parse 'abc' as a number"):
        build(tmp_path, [{"name": "x", "type": "numeric"}], train)


def test_missing_column_names_file_and_suggests(tmp_path):
    train = pd.DataFrame({"y": [1, 0], "user_id": ["a", "b"]})
    with pytest.raises(DataError, match=r"train\.csv: column 'userid' not found \(did you mean 'user_id'\?\)"):
        build(tmp_path, [{"name": "userid", "type": "categorical"}], train)


def test_bad_label_is_clear(tmp_path):
    train = pd.DataFrame({"y": ["1", "yes"], "c": ["a", "b"]})
    with pytest.raises(DataError, match=r"column 'y', row 2 .*'yes' as a numeric label"):
        build(tmp_path, [{"name": "c", "type": "categorical"}], train)


def test_arrow_fast_path_equals_the_c_parser_path(tmp_path, monkeypatch):
    """CSV read by pyarrow (tokens counted/encoded in Arrow) == read by pandas' C parser
    (object tokens): same vocab, same ids, for quoted separators, unicode, numbers-as-text,
    empty and NA-like cells, fill_na and a shared table."""
    from fuxi_like.features import processor

    rng = np.random.default_rng(0)
    pool = ["a", "b,c", "é", "007", "7", "1.0", "", "NA", "null", "x y", "\"q\""]
    n = 3000
    train = pd.DataFrame({"y": rng.integers(0, 2, n), "c": rng.choice(pool, n), "d": rng.choice(pool, n),
                          "e": rng.choice(pool, n), "x": np.where(rng.random(n) < 0.1, np.nan, rng.random(n))})
    valid = train.sample(500, random_state=1)
    cols = [{"name": "c", "type": "categorical", "min_categr_count": 3},
            {"name": "d", "type": "categorical", "fill_na": "missing"},
            {"name": "e", "type": "categorical", "share_embedding": "c"},
            {"name": "x", "type": "numeric"}]
    (tmp_path / "fast").mkdir()
    (tmp_path / "slow").mkdir()
    fast = build(tmp_path / "fast", cols, train, valid)
    slow_read = lambda path, sep, columns, str_cols: pd.read_csv(  # noqa: E731
        path, sep=sep, usecols=columns, dtype={c: object for c in str_cols if c in columns})
    read = processor._read_csv(tmp_path / "fast" / "train.csv", ",", ["c", "x"], ["c"])
    assert processor._arrow_strings(read["c"]) is not None  # the fast path really ran
    monkeypatch.setattr(processor, "_read_csv", slow_read)
    slow = build(tmp_path / "slow", cols, train, valid)
    assert json.load(open(f"{fast[2]}/feature_vocab.json")) == json.load(open(f"{slow[2]}/feature_vocab.json"))
    for split in ("train", "valid"):
        for name in ("c", "d", "e", "x", "y"):
            np.testing.assert_array_equal(fast[1][split][name], slow[1][split][name])


def test_bad_number_far_down_a_big_csv_still_names_the_row(tmp_path):
    n = 300_000  # beyond pyarrow's first block, so its parser rejects the file mid-way
    x = np.round(np.random.default_rng(0).random(n), 3).astype(str)
    x[n - 5] = "oops"
    train = pd.DataFrame({"y": np.zeros(n, dtype=int), "x": x})
    with pytest.raises(DataError, match=rf"column 'x', row {n - 4} .*cannot parse 'oops' as a number"):
        build(tmp_path, [{"name": "x", "type": "numeric"}], train)
