"""A pretrained encoder as an ordered list of named blocks: freeze, fine-tune the top n, put adapters between them.

Every image / audio / music encoder of this package (`image.py`, `audio.py`, `music.py`) is a `BlockEncoder`:
a Keras model whose body is `blocks`, a list of named layers run one after another on the preprocessed input,
followed by the encoder's heads (pooling, embedding, classifier). Models that use an encoder reach into it three
ways:

- `set_trainable(encoder, last_n_blocks)`: None/0 freezes it (encode-once features, BatchNorm in inference mode),
  n trains the top n blocks (and the heads), "all" trains everything;
- `encoder.forward(x, stop="block_5", adapters={"block_3": layer})`: run the blocks up to and including `stop`,
  applying `adapters[name]` to the output of block `name` (an adapter is any callable h -> h of the same shape,
  usually a residual bottleneck such as `BottleneckAdapter`); DG-SCT-style cross-modal adapters that need a second
  modality are called the same way with that modality bound into the layer beforehand, or the model runs the blocks
  itself: `for block in encoder.blocks: h = block(h, training=...)`;
- `encoder(x)`: the full forward, returning the encoder's dict of outputs (see each encoder's docstring).
"""

import keras
import numpy as np

from ..errors import ConfigError


class BlockEncoder(keras.Model):
    """Base class: subclasses build `self.blocks` (named layers, bottom to top) and implement `heads(h, training)`
    returning a dict of outputs from the last block's output."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.blocks = []

    @property
    def block_names(self):
        return [b.name for b in self.blocks]

    def block_index(self, name):
        names = self.block_names
        if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
            if not -len(names) <= name < len(names):
                raise ConfigError(f"{self.name}: block index {name} out of range (0..{len(names) - 1})")
            return int(name) % len(names)
        if name not in names:
            raise ConfigError(f"{self.name}: no block named {name!r}; blocks: {', '.join(names)}")
        return names.index(name)

    def forward(self, x, start=None, stop=None, adapters=None, training=None):
        """Run blocks `start`..`stop` (names or indices, both included; default all) on `x`, each followed by its
        adapter if `adapters` names it. Returns the last block's (adapted) output."""
        adapters = dict(adapters or {})
        unknown = set(adapters) - set(self.block_names)
        if unknown:
            raise ConfigError(f"{self.name}: adapters name unknown blocks {sorted(unknown)}; blocks: "
                              f"{', '.join(self.block_names)}")
        i0 = 0 if start is None else self.block_index(start)
        i1 = len(self.blocks) - 1 if stop is None else self.block_index(stop)
        h = x
        for block in self.blocks[i0:i1 + 1]:
            h = block(h, training=training)
            if block.name in adapters:
                h = adapters[block.name](h)
        return h

    def heads(self, h, training=None):
        raise NotImplementedError

    def call(self, x, training=None):
        return self.heads(self.forward(x, training=training), training=training)


class BottleneckAdapter(keras.layers.Layer):
    """Residual bottleneck adapter (Houlsby et al. 2019): h + up(act(down(h))) over the last axis, with `up`
    initialised to zero so that inserting it leaves the pretrained encoder's outputs unchanged at step 0."""

    def __init__(self, bottleneck=32, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.bottleneck = bottleneck
        self.activation = activation

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.down = keras.layers.Dense(self.bottleneck, activation=self.activation, name="down")
        self.up = keras.layers.Dense(dim, kernel_initializer="zeros", name="up")
        self.down.build(input_shape)
        self.up.build(tuple(input_shape[:-1]) + (self.bottleneck,))

    def call(self, h):
        return h + self.up(self.down(h))

    def get_config(self):
        return {**super().get_config(), "bottleneck": self.bottleneck, "activation": self.activation}


def set_trainable(encoder, last_n_blocks=None, *, last_n_layers=None):
    """Freeze `encoder` except its top `last_n_blocks` blocks (and its heads when any block trains).

    None or 0 freezes everything: a frozen Keras layer also runs BatchNormalization in inference mode, so a frozen
    encoder inside a training model keeps its pretrained statistics. "all" trains everything. Returns `encoder`.
    A `SentenceEncoder` (text.py) is handed to its own `set_trainable` (its blocks are transformer layers);
    `last_n_layers=` is accepted as that function's name for the same argument.
    """
    if last_n_layers is not None:
        if last_n_blocks is not None:
            raise ConfigError("set_trainable: give last_n_blocks or last_n_layers, not both")
        last_n_blocks = last_n_layers
    if not isinstance(encoder, BlockEncoder):
        from . import text  # lazy: text.py needs keras-hub (the text extra)

        return text.set_trainable(encoder, last_n_blocks)
    n_blocks = len(encoder.blocks)
    # Set False first: on the TensorFlow backend `x.trainable = True` is a no-op when it is already True, so it would
    # not reach sublayers an earlier call froze.
    encoder.trainable = False
    encoder.trainable = True
    if last_n_blocks == "all":
        return encoder
    n = 0 if last_n_blocks is None else last_n_blocks
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= n_blocks:
        raise ConfigError(f"last_n_blocks must be None, 'all' or an integer in 0..{n_blocks}, got {last_n_blocks!r}")
    if n == 0:
        encoder.trainable = False
        return encoder
    train = {b.name for b in encoder.blocks[n_blocks - int(n):]}
    for block in encoder.blocks:
        if block.name not in train:
            block.trainable = False
    return encoder


__all__ = ["BlockEncoder", "BottleneckAdapter", "set_trainable"]
