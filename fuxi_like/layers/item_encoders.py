"""Item encoders over an item-id vocabulary, shared by the content-based models (GreenRec, UIST).

- `TokenTable`: item id -> its token ids (a non-trainable int table saved with the weights);
- `FrozenTableEncoder`: a frozen table of vectors computed once (OLEO / encode-once) + a trainable projection;
- `PlmItemEncoder`: a pretrained sentence encoder run on the item text at every step (the content-encoding /
  pretrain-finetune paradigm), all layers, the top n or none trained.
"""

import keras
from keras import ops

from ..pretrained.blocks import set_trainable


class TokenTable(keras.layers.Layer):
    """Item id -> its token ids [L] (a non-trainable int table, saved with the weights)."""

    def __init__(self, tokens, **kwargs):
        super().__init__(**kwargs)
        self.tokens = self.add_weight(name="tokens", shape=tokens.shape, dtype="int32", trainable=False,
                                      initializer=keras.initializers.Constant(tokens))

    def call(self, ids):
        return ops.take(self.tokens, ops.cast(ids, "int32"), axis=0)


class FrozenTableEncoder(keras.layers.Layer):
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


class PlmItemEncoder(keras.layers.Layer):
    """all-MiniLM-L6-v2 on the item text at every step (the sentence encoder's forward and pooling, the same vector
    encode-once computes) -> Dense(dim). `train_layers`: "all" (full fine-tuning), n (the top n transformer layers) or 0."""

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
        # the sentence encoder's own forward: the backbone's sequence output, its pooling (as the vectors that
        # encode-once computes), dropout only where layers train
        v = self.out(self.encoder({"token_ids": tok, "padding_mask": mask}, training=training))
        return ops.reshape(v, tuple(shape[:-1]) + (v.shape[-1],))
