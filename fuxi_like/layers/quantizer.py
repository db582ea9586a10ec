"""Vector quantizers: ProductQuantizer (SparCode) and ResidualQuantizer (UIST; see its docstring).

ProductQuantizer: vectors -> M sub-vectors, each snapped to the nearest of N codewords.

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


@keras.saving.register_keras_serializable(package="fuxi_like")
class ResidualQuantizer(keras.layers.Layer):
    """Residual quantization: L levels, each snapping the remaining residual to the nearest of K codewords.

        r_0 = x;  k_l = argmin_j ||r_{l-1} - C_l[j]||;  q_l = C_l[k_l];  r_l = r_{l-1} - q_l;  x_hat = sum_l q_l

    The L codebooks are one table [L*K, D] with per-level offsets (level l owns rows l*K .. l*K+K-1), so a
    level's code never indexes another level's rows (`global_codes`). Straight-through estimator on the sum
    (`x + sg(x_hat - x)`), and per level the VQ-VAE loss `||sg(r) - q||^2 + beta ||r - sg(q)||^2` (added with
    `add_loss` while training; `call(..., return_loss=True)` returns it instead). Host side: `init_from(samples)`
    runs k-means level by level on the residuals of a sample; `reset_dead(samples, min_idle_steps)` re-seeds the
    codes of each level not used in the last `min_idle_steps` training calls with residuals of that level,
    leaving used codes untouched.
    """

    def __init__(self, num_levels=3, codes_per_level=64, beta=0.25, **kwargs):
        super().__init__(**kwargs)
        self.levels = int(num_levels)
        self.k = int(codes_per_level)
        self.beta = float(beta)
        if self.levels < 1 or self.k < 2:
            raise ValueError(f"ResidualQuantizer: need num_levels >= 1 and codes_per_level >= 2, got "
                             f"{self.levels}, {self.k}")

    def build(self, input_shape):
        self.dim = int(input_shape[-1])
        self.codebooks = self.add_weight(shape=(self.levels * self.k, self.dim), name="codebooks",
                                         initializer=keras.initializers.RandomNormal(stddev=0.1))
        self.steps = self.add_weight(shape=(), name="steps", trainable=False, initializer="zeros")
        self.last_used = self.add_weight(shape=(self.levels * self.k,), name="last_used", trainable=False,
                                         initializer="zeros")
        self.built = True

    @property
    def offsets(self):
        """Row of each level's first code in `codebooks`: [0, K, 2K, ...]."""
        return np.arange(self.levels, dtype=np.int64) * self.k

    def level_codebook(self, level):
        return self.codebooks[level * self.k:(level + 1) * self.k]

    def residual_quantize(self, x):
        """x [..., D] -> (per-level codes [..., L] in 0..K-1, per-level codewords [..., L, D], last residual)."""
        shape = ops.shape(x)
        r = ops.reshape(x, (-1, self.dim))
        codes, qs = [], []
        for level in range(self.levels):
            cb = self.level_codebook(level)
            d = (ops.sum(r * r, -1, keepdims=True) - 2 * ops.matmul(r, ops.transpose(cb))
                 + ops.expand_dims(ops.sum(cb * cb, -1), 0))
            idx = ops.argmin(d, axis=-1)
            q = ops.take(cb, idx, axis=0)
            codes.append(idx)
            qs.append(q)
            r = r - q
        codes = ops.reshape(ops.stack(codes, axis=-1), tuple(shape[:-1]) + (self.levels,))
        qs = ops.reshape(ops.stack(qs, axis=-2), tuple(shape[:-1]) + (self.levels, self.dim))
        return codes, qs, ops.reshape(r, shape)

    def call(self, x, training=None, return_loss=False):
        codes, qs, _ = self.residual_quantize(x)
        x_hat = ops.sum(qs, axis=-2)
        loss = 0.0
        if training or return_loss:
            # residual entering each level: x minus the codewords of the levels before it
            before = ops.cumsum(qs, axis=-2) - qs
            r = ops.expand_dims(x, -2) - ops.stop_gradient(before)
            loss = (ops.mean(ops.sum((ops.stop_gradient(r) - qs) ** 2, -1))
                    + self.beta * ops.mean(ops.sum((r - ops.stop_gradient(qs)) ** 2, -1)))
        if training:
            if not return_loss:
                self.add_loss(loss)
            used = ops.reshape(ops.cast(codes, "int32") + ops.cast(self.offsets, "int32"), (-1,))
            hit = ops.minimum(ops.bincount(used, minlength=self.levels * self.k), 1)
            self.steps.assign_add(1.0)
            self.last_used.assign(ops.where(hit > 0, self.steps, self.last_used))
        out = x + ops.stop_gradient(x_hat - x)
        return (out, codes, loss) if return_loss else (out, codes)

    def global_codes(self, codes):
        """Per-level codes [..., L] -> rows of `codebooks` (level offsets added)."""
        return ops.cast(codes, "int32") + ops.cast(self.offsets, "int32")

    def decode(self, codes, depth=None):
        """Per-level codes [..., L] -> the sum of their codewords (of the first `depth` levels)."""
        depth = self.levels if depth is None else int(depth)
        rows = self.global_codes(codes)[..., :depth]
        return ops.sum(ops.take(self.codebooks, rows, axis=0), axis=-2)

    # ------------------------------------------------------------ host side
    def residuals(self, samples, level):
        """The residuals of `samples` [S, D] entering `level` (numpy), under the current codebooks."""
        x = np.asarray(samples, np.float32).reshape(-1, self.dim)
        if level == 0:
            return x
        codes, qs, _ = self.residual_quantize(x)
        return x - np.asarray(ops.convert_to_numpy(qs))[:, :level].sum(1)

    def init_from(self, samples, iters=10, seed=0):
        """k-means level by level: level l's codebook from the residuals left by levels < l (numpy)."""
        rng = np.random.default_rng(seed)
        r = np.asarray(samples, np.float32).reshape(-1, self.dim).copy()
        cb = np.empty((self.levels * self.k, self.dim), np.float32)
        for level in range(self.levels):
            c = r[rng.choice(len(r), self.k, replace=len(r) < self.k)].copy()
            for _ in range(iters):
                d = (r * r).sum(1, keepdims=True) - 2 * r @ c.T + (c * c).sum(1)[None]
                a = d.argmin(1)
                for j in range(self.k):
                    sel = r[a == j]
                    c[j] = sel.mean(0) if len(sel) else r[rng.integers(len(r))]
            d = (r * r).sum(1, keepdims=True) - 2 * r @ c.T + (c * c).sum(1)[None]
            r = r - c[d.argmin(1)]
            cb[level * self.k:(level + 1) * self.k] = c
        self.codebooks.assign(cb)
        self.last_used.assign(np.full((self.levels * self.k,), float(ops.convert_to_numpy(self.steps)), np.float32))

    def reset_dead(self, samples, min_idle_steps, seed=0):
        """Re-seed every code not used in the last `min_idle_steps` training calls with a random residual of its
        level (computed from `samples` [S, D] under the current codebooks, level by level, so a later level sees
        the re-seeded earlier ones). Used codes are left as they are. Returns how many codes were re-seeded."""
        rng = np.random.default_rng(seed)
        steps = float(ops.convert_to_numpy(self.steps))
        idle = steps - np.asarray(ops.convert_to_numpy(self.last_used))
        dead = idle >= min_idle_steps
        if not dead.any():
            return 0
        cb = np.asarray(ops.convert_to_numpy(self.codebooks)).copy()
        last = np.asarray(ops.convert_to_numpy(self.last_used)).copy()
        for level in range(self.levels):
            rows = np.nonzero(dead[level * self.k:(level + 1) * self.k])[0] + level * self.k
            if len(rows):
                self.codebooks.assign(cb)
                r = self.residuals(samples, level)
                cb[rows] = r[rng.integers(len(r), size=len(rows))]
                last[rows] = steps
        self.codebooks.assign(cb)
        self.last_used.assign(last)
        return int(dead.sum())

    def get_config(self):
        cfg = super().get_config()
        cfg.update(num_levels=self.levels, codes_per_level=self.k, beta=self.beta)
        return cfg
