"""MLPBlock: Dense -> [BatchNorm] -> activation -> [Dropout], repeated."""

import keras
from keras import activations, ops

from .activations import get_activation
from .embedding import FeatureEmbedding
from .factored_fields import dense_on_fields, has_factored


class MLPBlock(keras.layers.Layer):
    def __init__(self, hidden_units=(), hidden_activations="relu", output_dim=None, output_activation=None,
                 dropout_rates=0.0, batch_norm=False, use_bias=True, kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        n = len(hidden_units)
        acts = hidden_activations if isinstance(hidden_activations, (list, tuple)) else [hidden_activations] * n
        drops = dropout_rates if isinstance(dropout_rates, (list, tuple)) else [dropout_rates] * n
        self.blocks = []
        for i, units in enumerate(hidden_units):
            layers = [keras.layers.Dense(units, use_bias=use_bias, kernel_regularizer=kernel_regularizer)]
            if batch_norm:
                # torch-style statistics (momentum 0.1 there = 0.9 here), as in FuxiCTR
                layers.append(keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5))
            if acts[i]:
                layers.append(get_activation(acts[i]))
            if drops[i] and drops[i] > 0:
                layers.append(keras.layers.Dropout(drops[i]))
            self.blocks.extend(layers)
        if output_dim is not None:
            self.blocks.append(keras.layers.Dense(output_dim, use_bias=use_bias, kernel_regularizer=kernel_regularizer))
            if output_activation:
                self.blocks.append(get_activation(output_activation))

    def build(self, input_shape):
        shape = input_shape
        for layer in self.blocks:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def call(self, x, training=None):
        for layer in self.blocks:
            x = layer(x, training=training)
        return x

    def call_fields(self, emb, names=None, training=None):
        """The block on flatten(emb, names) (default all fields), its first Dense computed per field group:
        numeric fields as values @ (vector @ kernel rows) instead of rows of the flattened input
        (`factored_fields`). Same output and gradients as `self(FeatureEmbedding.flatten(emb, names))`."""
        names = list(names or emb)
        first = self.blocks[0] if self.blocks else None
        if not isinstance(first, keras.layers.Dense) or first.activation not in (None, activations.linear) \
                or getattr(first, "lora_enabled", False) or getattr(first, "quantization_mode", None) \
                or not has_factored(emb, names):
            return self(FeatureEmbedding.flatten(emb, names), training=training)
        if not self.built:
            self.build((None, sum(int(emb[n].shape[-1]) for n in names)))
        dtype = emb[names[0]].dtype
        x = dense_on_fields(emb, names, ops.cast(first.kernel, dtype))
        if first.use_bias:
            x = x + ops.cast(first.bias, dtype)
        for layer in self.blocks[1:]:
            x = layer(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        shape = input_shape
        for layer in self.blocks:
            shape = layer.compute_output_shape(shape)
        return shape
