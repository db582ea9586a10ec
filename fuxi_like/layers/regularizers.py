"""Regularizer specs from config: a float (L2), "l2(x)", "l1(x)", "l1_l2(x, y)"."""

import re

import keras

from ..errors import ConfigError


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
    return keras.regularizers.L1L2(l1=l1, l2=l2)
