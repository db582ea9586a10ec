"""Encode once (`fuxi_like.pretrained.encode_items`): the table is written once, reused while nothing that went into
it changed, re-encoded when the weights, the options or one input change, and read by the `pretrained_emb` feature
option as an id-aligned frozen embedding."""

import json

import keras
import numpy as np
import pandas as pd
import pytest

from fuxi_like.errors import ConfigError, DataError
from fuxi_like.features.pretrained import load_pretrained
from fuxi_like.pretrained.encode import encode_items
from test_features import build


class CountingEncoder:
    """A Keras Dense layer over fixed-length float inputs, counting the items it encodes."""

    def __init__(self, dim=4, seed=0):
        keras.utils.set_random_seed(seed)
        self.layer = keras.layers.Dense(dim, name="enc")
        self.layer.build((None, 3))
        self.weights = self.layer.weights
        self.name = "counting"
        self.calls = 0

    def __call__(self, xs, scale=1.0):
        self.calls += len(xs)
        return np.asarray(self.layer(np.stack(xs).astype("float32") * scale))


@pytest.mark.parametrize("fmt", ["parquet", "npz"])
def test_encode_once_reuse_and_invalidation(tmp_path, fmt):
    rng = np.random.default_rng(0)
    items = {f"item{i}": rng.normal(size=3) for i in range(10)}
    enc = CountingEncoder()
    path = tmp_path / f"items.{fmt}"
    t1 = encode_items(enc, items, path, batch_size=4, verbose=False)
    assert not t1.reused and enc.calls == 10 and t1.values.shape == (10, 4)
    np.testing.assert_allclose(t1.values[3], np.asarray(enc.layer(items["item3"][None].astype("float32")))[0],
                               rtol=1e-6)
    keys, values = load_pretrained(path)  # the layout the pretrained_emb feature option reads
    assert list(keys) == list(items) and np.array_equal(values, t1.values)
    info = json.loads((tmp_path / f"items.{fmt}.json").read_text())
    assert info["fingerprint"] == t1.fingerprint and info["n_items"] == 10 and info["dim"] == 4

    t2 = encode_items(enc, items, path, batch_size=4, verbose=False)
    assert t2.reused and enc.calls == 10 and np.array_equal(t2.values, t1.values)
    # anything that went into the table changes its fingerprint and encodes again
    enc.layer.kernel.assign(enc.layer.kernel * 2.0)  # a fine-tuned weight
    assert not encode_items(enc, items, path, verbose=False).reused and enc.calls == 20
    assert not encode_items(enc, items, path, options={"scale": 0.5}, verbose=False).reused  # another option
    edited = dict(items, item7=items["item7"] + 1e-6)  # one input
    t5 = encode_items(enc, edited, path, options={"scale": 0.5}, verbose=False)
    assert not t5.reused and t5.fingerprint != t1.fingerprint
    assert encode_items(enc, edited, path, options={"scale": 0.5}, verbose=False).reused
    assert not encode_items(enc, edited, path, options={"scale": 0.5}, force=True, verbose=False).reused


def test_bad_inputs_are_clear(tmp_path):
    enc = CountingEncoder()
    with pytest.raises(ConfigError, match=r"\.parquet, \.npz"):
        encode_items(enc, {"a": np.zeros(3)}, tmp_path / "t.csv", verbose=False)
    with pytest.raises(DataError, match="duplicate item key 'a'"):
        encode_items(enc, [("a", np.zeros(3)), ("a", np.ones(3))], tmp_path / "t.parquet", verbose=False)
    with pytest.raises(DataError, match="non-finite embedding for item 'b'"):
        encode_items(enc, {"a": np.zeros(3), "b": np.array([np.nan, 0, 0])}, tmp_path / "t.parquet", verbose=False)
    assert not (tmp_path / "t.parquet").exists()  # nothing half-written


def test_table_feeds_pretrained_embedding_feature(tmp_path):
    enc = CountingEncoder(dim=5)
    rng = np.random.default_rng(1)
    table = encode_items(enc, {str(k): rng.normal(size=3) for k in (10, 20, 30)}, tmp_path / "items.parquet",
                         verbose=False)
    train = pd.DataFrame({"y": [1, 0, 1], "item": ["10", "20", "10"]})
    fmap, _, data_dir = build(tmp_path, [{"name": "item", "type": "categorical",
                                          "pretrained_emb": str(table.path)}], train)
    vocab = json.load(open(f"{data_dir}/feature_vocab.json"))["item"]
    mat = np.load(f"{data_dir}/{fmap.features['item']['pretrained_emb']}")
    for i, k in enumerate(("10", "20", "30")):  # "30" is in the table only: it still gets an id and its vector
        np.testing.assert_array_equal(mat[vocab[k]], table.values[i])
    assert fmap.features["item"]["pretrain_dim"] == 5


def test_long_texts_and_text_encoders_never_touch_the_filesystem(tmp_path):
    """A text encoder's inputs are texts even when one names a file; a very long text is no path."""
    from fuxi_like.pretrained.encode import fingerprint

    class TextEncoder:
        weights = []

        def encode_texts(self, texts, batch_size=64):
            return np.ones((len(texts), 2), np.float32)

    f = tmp_path / "a.txt"
    f.write_text("content")
    long_text = "word " * 5000
    fp1, _ = fingerprint(TextEncoder(), ["a", "b"], [str(f), long_text])
    f.write_text("other content")  # the file's bytes are not part of a text encoder's fingerprint
    fp2, _ = fingerprint(TextEncoder(), ["a", "b"], [str(f), long_text])
    assert fp1 == fp2
    table = encode_items(TextEncoder(), {"a": long_text}, tmp_path / "t.npz", verbose=False)
    assert table.values.shape == (1, 2)
