"""Activations: `Dice` (DIN) and a name -> layer helper."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="fuxi_like")
class Dice(keras.layers.Layer):
    """Dice (Zhou et al., DIN 2018): p = sigmoid(BN(x)); y = p*x + (1-p)*alpha*x."""

    def __init__(self, epsilon=1e-9, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon
        self.bn = keras.layers.BatchNormalization(axis=-1, epsilon=epsilon, center=False, scale=False)

    def build(self, input_shape):
        self.bn.build(input_shape)
        self.alpha = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="alpha")

    def call(self, x, training=None):
        p = ops.sigmoid(self.bn(x, training=training))
        return p * x + (1.0 - p) * self.alpha * x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def get_activation(name):
    """A layer for `name` (relu, dice, prelu, or any keras activation name)."""
    if name is None:
        return None
    key = str(name).lower()
    if key == "dice":
        return Dice()
    if key == "prelu":
        return keras.layers.PReLU()
    return keras.layers.Activation(key)
