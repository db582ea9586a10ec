"""Regularizer specs from config: a float (L2), "l2(x)", "l1(x)", "l1_l2(x, y)"."""

import re

import keras
import tensorflow as tf

from ..errors import ConfigError


@keras.saving.register_keras_serializable(package="fuxi_like")
class L1L2(keras.regularizers.L1L2):
    """Keras's L1L2 with the L2 term from one fused kernel on TensorFlow (`tf.nn.l2_loss`): no
    [table]-sized square in the forward pass and a one-pass gradient. Same value; on a 4.8M-float
    table the forward + backward of the term is several times cheaper
    (`python benchmark/micro_ab.py l2-regularizer`)."""

    def __call__(self, x):
        if keras.backend.backend() != "tensorflow" or not self.l2:
            return super().__call__(x)

        x = tf.convert_to_tensor(x)
        reg = (2.0 * self.l2) * tf.nn.l2_loss(x)
        return reg + self.l1 * tf.reduce_sum(tf.abs(x)) if self.l1 else reg


def get_regularizer(spec, half=False):
    """Return a keras regularizer or None. `half` scales to lambda/2 * ||W||^2."""
    if spec in (None, 0, 0.0, ""):
        return None
    l1 = l2 = 0.0
    if isinstance(spec, (int, float)):
        l2 = float(spec)
    else:
        m = re.fullmatch(r"\s*(l1|l2|l1_l2)\(\s*([0-9.eE+-]+)\s*(?:,\s*([0-9.eE+-]+)\s*)?\)\s*", str(spec))
        if not m:
            raise ConfigError(f"bad regularizer {spec!r}: use a number, 'l2(x)', 'l1(x)' or 'l1_l2(x, y)'")
        kind, a, b = m.group(1), float(m.group(2)), m.group(3)
        if kind == "l1":
            l1 = a
        elif kind == "l2":
            l2 = a
        else:
            l1, l2 = a, float(b or 0)
    if half:
        l2 /= 2
    return L1L2(l1=l1, l2=l2)
