"""The five item-encoder families of GreenRec's grid (item texts come from `fuxi_like.datasets.content_rec.item_texts`).

Every item encoder maps item ids (the vocabulary of the `candidates` feature, shared by `hist_items`) to vectors of
`dim`: `id` (an embedding table), `text_cnn` / `text_mhsa` (word vectors initialised from GloVe + NAML's CNN or
NRMS's multi-head self-attention, each with additive attention: the native news encoders), `plm` (all-MiniLM-L6-v2
run on the item text at every step, all layers or the top n trained: the pretrain-finetune paradigm) and `oleo`
(the same language model run ONCE over all items by `encode_items`, its vectors a frozen table, only a Dense
projection + dropout trained: OLEO / GreenRec's "MFT" rows). `plm` and `oleo` are the core's `PlmItemEncoder` and
`FrozenTableEncoder` (fuxi_like/layers/item_encoders.py, shared with UIST).
"""

import keras
import numpy as np
from keras import ops

from fuxi_like.errors import ConfigError
from fuxi_like.layers.attention import AdditiveAttention
from fuxi_like.layers.item_encoders import TokenTable
from fuxi_like.pretrained.glove import tokenize


class IdItemEncoder(keras.layers.Layer):
    def __init__(self, vocab_size, dim, **kwargs):
        super().__init__(**kwargs)
        self.table = keras.layers.Embedding(vocab_size, dim, name="item_id_table")

    def call(self, ids, training=None):
        return self.table(ids)


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
