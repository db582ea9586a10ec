"""Behaviour-sequence encoders usable as query towers by any model.

Both take an embedded sequence `[B, L, D]` and its mask `[B, L]` (1 = real item;
sequences are pre-padded, so position L-1 is the most recent item) and return the
output at every position `[B, L, D_out]`: position t summarises items <= t. Take the
last position as the query (`last_position`), or use every position for a next-item
loss at each step (SASRec-style training).

- `SASRecEncoder` (Kang & McAuley, ICDM'18): learned positions, dropout, then blocks of
  causal self-attention and a point-wise feed-forward net with residuals; as in the
  official SASRec code the layer norm is applied to the attention queries and before the
  feed-forward net, and once more at the end; padded positions are zeroed after each
  block and are never attended to.
- `GRU4RecEncoder` (Hidasi et al., ICLR'16, as a session/query encoder): a GRU over the
  sequence, masked, plus a linear output projection.
"""

import keras
from keras import ops


def last_position(seq_out):
    """[B, L, D] -> [B, D] (the most recent position of pre-padded sequences)."""
    return seq_out[:, -1, :]


@keras.saving.register_keras_serializable(package="fuxi_like")
class SASRecEncoder(keras.layers.Layer):
    def __init__(self, max_len, num_blocks=2, num_heads=1, dropout=0.2, ffn_dim=None, causal=True,
                 scale_input=True, **kwargs):
        super().__init__(**kwargs)
        self.max_len = int(max_len)
        self.num_blocks = int(num_blocks)
        self.num_heads = int(num_heads)
        self.dropout = float(dropout)
        self.ffn_dim = ffn_dim
        self.causal = bool(causal)
        self.scale_input = bool(scale_input)

    def build(self, input_shape):
        dim = int(input_shape[-1])
        if dim % self.num_heads:
            raise ValueError(f"SASRecEncoder: embedding dim {dim} is not divisible by num_heads {self.num_heads}")
        self.dim = dim
        self.pos = self.add_weight(shape=(self.max_len, dim), name="positions",
                                   initializer=keras.initializers.RandomNormal(stddev=0.02))
        self.drop = keras.layers.Dropout(self.dropout)
        self.attn_ln, self.attn, self.ffn_ln, self.ffn1, self.ffn2, self.ffn_drop = [], [], [], [], [], []
        ffn = int(self.ffn_dim or dim)
        for i in range(self.num_blocks):
            ln = keras.layers.LayerNormalization(epsilon=1e-8, name=f"attn_ln_{i}")
            ln.build((None, None, dim))
            mha = keras.layers.MultiHeadAttention(self.num_heads, dim // self.num_heads, dropout=self.dropout,
                                                  name=f"attn_{i}")
            mha.build((None, None, dim), (None, None, dim))
            ln2 = keras.layers.LayerNormalization(epsilon=1e-8, name=f"ffn_ln_{i}")
            ln2.build((None, None, dim))
            f1 = keras.layers.Dense(ffn, activation="relu", name=f"ffn1_{i}")
            f1.build((None, None, dim))
            f2 = keras.layers.Dense(dim, name=f"ffn2_{i}")
            f2.build((None, None, ffn))
            self.attn_ln.append(ln)
            self.attn.append(mha)
            self.ffn_ln.append(ln2)
            self.ffn1.append(f1)
            self.ffn2.append(f2)
            self.ffn_drop.append(keras.layers.Dropout(self.dropout))
        self.final_ln = keras.layers.LayerNormalization(epsilon=1e-8, name="final_ln")
        self.final_ln.build((None, None, dim))
        self.built = True

    def call(self, seq_emb, mask, training=None):
        length = ops.shape(seq_emb)[1]
        m = ops.cast(ops.expand_dims(mask, -1), seq_emb.dtype)  # [B, L, 1]
        x = seq_emb * (self.dim ** 0.5) if self.scale_input else seq_emb
        x = x + self.pos[-length:][None]  # positions counted back from the most recent item
        x = self.drop(x, training=training) * m
        keep = ops.cast(mask, "bool")
        att_mask = ops.logical_and(keep[:, None, :], ops.ones((1, length, 1), dtype="bool"))
        if self.causal:
            tri = ops.cast(ops.tril(ops.ones((length, length))), "bool")
            att_mask = ops.logical_and(att_mask, tri[None])
        for i in range(self.num_blocks):
            q = self.attn_ln[i](x)
            x = q + self.attn[i](q, x, x, attention_mask=att_mask, training=training)
            h = self.ffn_ln[i](x)
            h = self.ffn2[i](self.ffn_drop[i](self.ffn1[i](h), training=training))
            x = (x + self.ffn_drop[i](h, training=training)) * m
        return self.final_ln(x) * m

    def get_config(self):
        cfg = super().get_config()
        cfg.update(max_len=self.max_len, num_blocks=self.num_blocks, num_heads=self.num_heads,
                   dropout=self.dropout, ffn_dim=self.ffn_dim, causal=self.causal, scale_input=self.scale_input)
        return cfg


@keras.saving.register_keras_serializable(package="fuxi_like")
class GRU4RecEncoder(keras.layers.Layer):
    def __init__(self, hidden_units=64, num_layers=1, dropout=0.2, output_dim=None, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = int(hidden_units)
        self.num_layers = int(num_layers)
        self.dropout = float(dropout)
        self.output_dim = output_dim

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.in_drop = keras.layers.Dropout(self.dropout)
        self.grus = []
        d = dim
        for i in range(self.num_layers):
            g = keras.layers.GRU(self.hidden_units, return_sequences=True, name=f"gru_{i}")
            g.build((None, None, d))
            self.grus.append(g)
            d = self.hidden_units
        self.proj = keras.layers.Dense(int(self.output_dim or dim), name="proj")
        self.proj.build((None, None, self.hidden_units))
        self.built = True

    def call(self, seq_emb, mask, training=None):
        m = ops.cast(ops.expand_dims(mask, -1), seq_emb.dtype)
        x = self.in_drop(seq_emb, training=training) * m
        bmask = ops.cast(mask, "bool")
        for g in self.grus:
            x = g(x, mask=bmask, training=training)
        return self.proj(x) * m

    def get_config(self):
        cfg = super().get_config()
        cfg.update(hidden_units=self.hidden_units, num_layers=self.num_layers, dropout=self.dropout,
                   output_dim=self.output_dim)
        return cfg
