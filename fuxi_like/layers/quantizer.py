"""ProductQuantizer: vectors -> M sub-vectors, each snapped to the nearest of N codewords.

Straight-through estimator (the forward pass uses the quantized vector, gradients pass to the
input unchanged), codebook + commitment loss `||sg(x) - q||^2 + beta ||x - sg(q)||^2` (added with
`add_loss` while training), codebooks shared by every vector passed in (e.g. the K tokens of a
query). `init_from(samples)` runs k-means per sub-space on a sample (numpy); `reset_dead(samples)`
re-seeds codewords unused since the last reset (usage is counted while training) with random
sample sub-vectors. `codes(x)` returns one int64 id per vector: sum_m idx_m * N^m.
"""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="fuxi_like")
class ProductQuantizer(keras.layers.Layer):
    def __init__(self, num_subspaces=2, num_codewords=64, beta=0.25, **kwargs):
        super().__init__(**kwargs)
        self.m = int(num_subspaces)
        self.n = int(num_codewords)
        self.beta = float(beta)

    def build(self, input_shape):
        dim = int(input_shape[-1])
        if dim % self.m:
            raise ValueError(f"ProductQuantizer: dim {dim} is not divisible by num_subspaces {self.m}")
        self.dim, self.sub = dim, dim // self.m
        self.codebooks = self.add_weight(shape=(self.m, self.n, self.sub), name="codebooks",
                                         initializer=keras.initializers.RandomNormal(stddev=0.1))
        self.usage = self.add_weight(shape=(self.m, self.n), name="usage", trainable=False, initializer="zeros")
        self.initialised = self.add_weight(shape=(), name="initialised", trainable=False, initializer="zeros")
        self.built = True

    def _split(self, x):
        return ops.reshape(x, (-1, self.m, self.sub))  # [V, M, sub]

    def assign(self, x):
        """x [..., D] -> codeword indices [V, M] (V = number of vectors)."""
        v = self._split(x)
        d = (ops.sum(v * v, -1, keepdims=True) - 2 * ops.einsum("vms,mns->vmn", v, self.codebooks)
             + ops.expand_dims(ops.sum(self.codebooks * self.codebooks, -1), 0))
        return ops.argmin(d, axis=-1)

    def call(self, x, training=None):
        shape = ops.shape(x)
        idx = self.assign(x)  # [V, M]
        onehot = ops.one_hot(idx, self.n, dtype=x.dtype)  # [V, M, N]
        q = ops.reshape(ops.einsum("vmn,mns->vms", onehot, self.codebooks), shape)
        if training:
            self.add_loss(ops.mean((ops.stop_gradient(x) - q) ** 2) + self.beta * ops.mean((x - ops.stop_gradient(q)) ** 2))
            self.usage.assign_add(ops.sum(onehot, axis=0))
        return x + ops.stop_gradient(q - x)

    def codes(self, x):
        idx = ops.cast(self.assign(x), "int64")
        base = ops.cast(self.n ** ops.arange(self.m), "int64")
        return ops.reshape(ops.sum(idx * base, axis=-1), ops.shape(x)[:-1])

    def decode(self, codes):
        """int64 code ids [C] -> quantized vectors [C, D]."""
        codes = np.asarray(codes, dtype=np.int64)
        idx = (codes[:, None] // (self.n ** np.arange(self.m))[None, :]) % self.n  # [C, M]
        cb = ops.convert_to_numpy(self.codebooks)
        return np.concatenate([cb[m][idx[:, m]] for m in range(self.m)], axis=1)

    # ------------------------------------------------------------ host side
    def init_from(self, samples, iters=10, seed=0):
        """k-means per sub-space on sample vectors [S, D] (numpy)."""
        rng = np.random.default_rng(seed)
        x = np.asarray(samples, dtype=np.float32).reshape(-1, self.m, self.sub)
        cb = np.empty((self.m, self.n, self.sub), dtype=np.float32)
        for m in range(self.m):
            v = x[:, m]
            c = v[rng.choice(len(v), self.n, replace=len(v) < self.n)]
            for _ in range(iters):
                a = ((v[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
                for j in range(self.n):
                    sel = v[a == j]
                    c[j] = sel.mean(0) if len(sel) else v[rng.integers(len(v))]
            cb[m] = c
        self.codebooks.assign(cb)
        self.usage.assign(np.zeros((self.m, self.n), np.float32))
        self.initialised.assign(1.0)

    def reset_dead(self, samples, seed=0):
        """Re-seed codewords unused since the last call with random sample sub-vectors; returns how many."""
        rng = np.random.default_rng(seed)
        usage = ops.convert_to_numpy(self.usage)
        cb = ops.convert_to_numpy(self.codebooks).copy()
        x = np.asarray(samples, dtype=np.float32).reshape(-1, self.m, self.sub)
        dead = usage == 0
        for m, j in zip(*np.nonzero(dead)):
            cb[m, j] = x[rng.integers(len(x)), m]
        self.codebooks.assign(cb)
        self.usage.assign(np.zeros_like(usage))
        return int(dead.sum())

    def get_config(self):
        cfg = super().get_config()
        cfg.update(num_subspaces=self.m, num_codewords=self.n, beta=self.beta)
        return cfg
