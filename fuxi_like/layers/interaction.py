"""Feature-interaction layers: LogisticRegression (first order) and FactorizationMachine."""

import keras
from keras import ops

from .embedding import FeatureEmbedding


class FactorizationMachine(keras.layers.Layer):
    """Second-order FM term: 0.5 * sum_d[(sum_f v_fd)^2 - sum_f v_fd^2], [B,F,D] -> [B,1]."""

    def call(self, v):
        square_of_sum = ops.square(ops.sum(v, axis=1))
        sum_of_square = ops.sum(ops.square(v), axis=1)
        return 0.5 * ops.sum(square_of_sum - sum_of_square, axis=-1, keepdims=True)


class LogisticRegression(keras.layers.Layer):
    """First-order term: sum over fields of a scalar weight per feature value, plus bias."""

    def __init__(self, feature_map, regularizer=None, use_bias=True, features=None, **kwargs):
        super().__init__(**kwargs)
        self.embedding = FeatureEmbedding(feature_map, 1, regularizer, features=features, use_pretrain=False,
                                          force_dim=1)
        self.use_bias = use_bias

    def build(self, input_shape=None):
        self.embedding.build()
        if self.use_bias:
            self.bias = self.add_weight(shape=(1,), initializer="zeros", name="bias")

    def call(self, inputs):
        w = self.embedding(inputs)
        out = ops.sum(FeatureEmbedding.flatten(w), axis=-1, keepdims=True)
        return out + self.bias if self.use_bias else out
