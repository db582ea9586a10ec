"""DIN target attention (Zhou et al., KDD 2018) and additive attention pooling (NAML / NRMS)."""

import keras
from keras import ops

from .mlp import MLPBlock


class DINAttention(keras.layers.Layer):
    """Attention-pool a behaviour sequence by its relevance to the target.

    score_l = MLP([t, s_l, t - s_l, t * s_l]); padded positions get 0 weight (or
    -inf before a softmax when `use_softmax`). Output: sum_l score_l * s_l.
    """

    def __init__(self, attention_units=(64,), hidden_activations="dice", dropout_rate=0.0,
                 use_softmax=False, **kwargs):
        super().__init__(**kwargs)
        self.mlp = MLPBlock(attention_units, hidden_activations, output_dim=1, dropout_rates=dropout_rate)
        self.use_softmax = use_softmax

    def build(self, target_shape, sequence_shape=None, mask_shape=None):
        d = target_shape[-1]
        self.mlp.build((None, None, 4 * d))
        self.built = True

    def call(self, target, sequence, mask, training=None):
        """target [B, D], sequence [B, L, D], mask [B, L] -> [B, D]."""
        length = ops.shape(sequence)[1]
        t = ops.repeat(ops.expand_dims(target, 1), length, axis=1)
        att_in = ops.concatenate([t, sequence, t - sequence, t * sequence], axis=-1)
        score = ops.squeeze(self.mlp(att_in, training=training), -1)  # [B, L]
        mask = ops.cast(mask, score.dtype)
        if self.use_softmax:
            score = ops.softmax(ops.where(mask > 0, score, -1e9), axis=-1) * mask
        else:
            score = score * mask
        return ops.sum(ops.expand_dims(score, -1) * sequence, axis=1)


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
