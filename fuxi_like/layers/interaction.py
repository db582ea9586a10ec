"""Feature-interaction layers: LogisticRegression (first order), FactorizationMachine, CrossNetwork (DCN)."""

import keras
from keras import ops

from .embedding import FeatureEmbedding
from .factored_fields import fm_on_fields


@ops.custom_gradient
def _fm_interaction(v):
    s = ops.sum(v, axis=1)  # [B, D]
    out = 0.5 * (ops.sum(s * s, axis=-1, keepdims=True) - ops.expand_dims(ops.sum(v * v, axis=(1, 2)), -1))

    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        # d/dv_f = s - v_f: one fused broadcast instead of autodiff's tile/square chain
        return ops.expand_dims(upstream, -1) * (ops.expand_dims(s, 1) - v)

    return out, grad


class FactorizationMachine(keras.layers.Layer):
    """Second-order FM term: 0.5 * sum_d[(sum_f v_fd)^2 - sum_f v_fd^2], [B,F,D] -> [B,1].

    The gradient is written out (s - v_f, s = sum of the fields); tested against autodiff."""

    def call(self, v):
        return _fm_interaction(v)

    def call_fields(self, emb, names=None):
        """The same term on a FieldEmbeddings dict (fields `names`, default all): numeric fields enter by
        their sums, never as [B, k, D] products (`factored_fields`); equal to `self(stack(emb, names))`."""
        names = list(names or emb)
        out = fm_on_fields(emb, names)
        return self(FeatureEmbedding.stack(emb, names)) if out is None else out


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


class CrossNetwork(keras.layers.Layer):
    """Cross layers in DCN-V2's full-rank form: x_{l+1} = x0 * (W x_l + b) + x_l (GreenRec's and UIST's DCN);
    DCNv2 uses keras-rs' FeatureCross (low-rank option)."""

    def __init__(self, num_layers=3, **kwargs):
        super().__init__(**kwargs)
        self.num_layers = num_layers

    def build(self, input_shape):
        d = int(input_shape[-1])
        self.dense = [keras.layers.Dense(d, name=f"cross_{i}") for i in range(self.num_layers)]
        for layer in self.dense:
            layer.build(input_shape)

    def call(self, x0):
        x = x0
        for layer in self.dense:
            x = x0 * layer(x) + x
        return x

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers}
