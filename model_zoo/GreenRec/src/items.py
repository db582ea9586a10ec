"""Item text aligned to the item vocabulary, and the five item-encoder families of GreenRec's grid.

Every item encoder maps item ids (the vocabulary of the `candidates` feature, shared by `hist_items`) to vectors of
`dim`: `id` (an embedding table), `text_cnn` / `text_mhsa` (word vectors initialised from GloVe + NAML's CNN or
NRMS's multi-head self-attention, each with additive attention: the native news encoders), `plm` (all-MiniLM-L6-v2
run on the item text at every step, all layers or the top n trained: the pretrain-finetune paradigm) and `oleo`
(the same language model run ONCE over all items by `encode_items`, its vectors a frozen table, only a Dense
projection + dropout trained: OLEO / GreenRec's "MFT" rows).
"""

import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from keras import ops

from fuxi_like.errors import ConfigError, DataError
from fuxi_like.layers import masked_pool
from fuxi_like.pretrained.blocks import set_trainable
from fuxi_like.pretrained.glove import tokenize


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


class AdditiveAttention(keras.layers.Layer):
    """Additive attention pooling (NAML / NRMS): softmax over positions of q . tanh(W h + b), masked."""

    def __init__(self, units=200, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.proj = keras.layers.Dense(self.units, activation="tanh", name="proj")
        self.proj.build(input_shape)
        self.query = self.add_weight(name="query", shape=(self.units,), initializer="glorot_uniform")

    def call(self, h, mask):
        score = ops.sum(self.proj(h) * self.query, axis=-1)  # [..., L]
        score = ops.where(mask > 0, score, ops.full_like(score, -1e9))
        w = ops.softmax(score, axis=-1) * ops.cast(mask, h.dtype)
        w = w / ops.maximum(ops.sum(w, axis=-1, keepdims=True), 1e-9)
        return ops.sum(h * ops.expand_dims(w, -1), axis=-2)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class IdItemEncoder(keras.layers.Layer):
    def __init__(self, vocab_size, dim, **kwargs):
        super().__init__(**kwargs)
        self.table = keras.layers.Embedding(vocab_size, dim, name="item_id_table")

    def call(self, ids, training=None):
        return self.table(ids)


class OleoItemEncoder(keras.layers.Layer):
    """A frozen [vocab, d_plm] table of vectors computed once, + a trainable Dense(dim) and dropout (OLEO)."""

    def __init__(self, vectors, dim, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.table = keras.layers.Embedding(vectors.shape[0], vectors.shape[1], trainable=False,
                                            embeddings_initializer=keras.initializers.Constant(vectors),
                                            name="frozen_item_vectors")
        self.proj = keras.layers.Dense(dim, name="projection")
        self.dropout = keras.layers.Dropout(dropout)

    def call(self, ids, training=None):
        return self.dropout(self.proj(self.table(ids)), training=training)


class TokenTable(keras.layers.Layer):
    """Item id -> its token ids [L] (a non-trainable int table, saved with the weights)."""

    def __init__(self, tokens, **kwargs):
        super().__init__(**kwargs)
        self.tokens = self.add_weight(name="tokens", shape=tokens.shape, dtype="int32", trainable=False,
                                      initializer=keras.initializers.Constant(tokens))

    def call(self, ids):
        return ops.take(self.tokens, ops.cast(ids, "int32"), axis=0)


class TextItemEncoder(keras.layers.Layer):
    """Native news encoder over the item's words: word vectors (GloVe-initialised, trainable) -> dropout ->
    `cnn` (Conv1D, kernel 3, ReLU: NAML) or `mhsa` (multi-head self-attention: NRMS) -> additive attention ->
    Dense(dim)."""

    def __init__(self, tokens, word_vectors, dim, kind="cnn", heads=4, dropout=0.2, **kwargs):
        super().__init__(**kwargs)
        if kind not in ("cnn", "mhsa"):
            raise ConfigError(f"text item encoder kind must be 'cnn' or 'mhsa', got {kind!r}")
        self.kind = kind
        self.token_table = TokenTable(tokens, name="item_tokens")
        self.words = keras.layers.Embedding(word_vectors.shape[0], word_vectors.shape[1],
                                            embeddings_initializer=keras.initializers.Constant(word_vectors),
                                            name="word_vectors")
        self.dropout = keras.layers.Dropout(dropout)
        if kind == "cnn":
            self.body = keras.layers.Conv1D(dim, 3, padding="same", activation="relu", name="cnn")
        else:
            self.body = keras.layers.MultiHeadAttention(heads, max(dim // heads, 8), name="mhsa")
        self.pool = AdditiveAttention(dim, name="word_attention")
        self.out = keras.layers.Dense(dim, name="projection")

    def call(self, ids, training=None):
        tok = self.token_table(ids)  # [..., L]
        shape = ops.shape(tok)
        tok = ops.reshape(tok, (-1, shape[-1]))
        mask = ops.cast(ops.not_equal(tok, 0), "float32")
        x = self.dropout(self.words(tok), training=training)
        if self.kind == "cnn":
            h = self.body(x)
        else:
            att_mask = ops.cast(ops.expand_dims(mask, 1) * ops.expand_dims(mask, 2), "bool")
            h = self.body(x, x, attention_mask=att_mask, training=training)
        v = self.out(self.pool(self.dropout(h, training=training), mask))
        return ops.reshape(v, tuple(shape[:-1]) + (v.shape[-1],))


class PlmItemEncoder(keras.layers.Layer):
    """all-MiniLM-L6-v2 on the item text at every step (mean pooling over the non-padding tokens, as the sentence
    encoder) -> Dense(dim). `train_layers`: "all" (full fine-tuning), n (the top n transformer layers) or 0."""

    def __init__(self, sentence_encoder, token_ids, dim, train_layers="all", **kwargs):
        super().__init__(**kwargs)
        self.encoder = set_trainable(sentence_encoder, train_layers if train_layers else None)
        self.token_table = TokenTable(token_ids, name="item_wordpieces")
        self.out = keras.layers.Dense(dim, name="projection")

    def call(self, ids, training=None):
        tok = self.token_table(ids)
        shape = ops.shape(tok)
        tok = ops.reshape(tok, (-1, shape[-1]))
        mask = ops.not_equal(tok, 0)
        h = self.encoder.backbone({"token_ids": tok, "segment_ids": ops.zeros_like(tok),
                                   "padding_mask": mask}, training=training)
        v = self.out(masked_pool(h, ops.cast(mask, "float32")))
        return ops.reshape(v, tuple(shape[:-1]) + (v.shape[-1],))


def word_tokens(texts, max_words, vocab=None):
    """Word-level token ids [N, max_words] of `texts` (the GloVe tokenizer) and the word list (0 = padding,
    1 = unknown); with `vocab`, its words only."""
    tokenized = [tokenize(t)[:max_words] for t in texts]
    if vocab is None:
        counts = {}
        for toks in tokenized:
            for w in toks:
                counts[w] = counts.get(w, 0) + 1
        vocab = ["<pad>", "<unk>"] + sorted(counts, key=lambda w: (-counts[w], w))
    index = {w: i for i, w in enumerate(vocab)}
    out = np.zeros((len(texts), max_words), np.int32)
    for r, toks in enumerate(tokenized):
        out[r, :len(toks)] = [index.get(w, 1) for w in toks]
    return out, vocab
