"""Optimizers by config name, including `lazyadam` (row-sparse Adam for embedding tables).

`adam` is Keras's Adam with one change on the TensorFlow backend: a dense gradient is
applied by TF's fused `ResourceApplyAdam` kernel (one pass over the weight and its two
moments) instead of Keras's five separate element-wise updates. Same formula, same
variables (checkpoints and resume snapshots are interchangeable with Keras's Adam);
on a 5.6M-float embedding table the update is ~7x cheaper
(`python benchmark/micro_ab.py adam-table`; `adam-deepfm` for a whole DeepFM step). A row-slice
gradient (an embedding lookup's) is densified once, duplicates summed by a sparse-dense matmul,
before global-norm clipping: Adam on the dense gradient, as PyTorch's Adam on a dense
embedding gradient (Keras's Adam squares duplicate rows separately for the second moment).
Under a `tf.distribute` strategy and with amsgrad, Keras's Adam update applies the densified
gradient (no fused kernel); on other backends it is Keras's Adam unchanged.

`LazyAdam` is Adam, except that a gradient arriving as row slices (an embedding
lookup's gradient on the TensorFlow backend, when the table has no regularizer)
updates the first/second moments and the weights of the rows in the batch only, as
TF1's `LazyAdamOptimizer` and `torch.optim.SparseAdam` do. Rows not in the batch keep
their moments unchanged instead of decaying them, so results differ slightly from
Adam; per step it touches `batch x fields` rows instead of the whole table. Dense
gradients (every other weight, or regularised tables) get the ordinary Adam update.
Duplicate ids in a batch are summed before the moments are updated, so touched rows
follow Adam on the summed gradient exactly (Keras's `Adam` given row slices squares
each duplicate separately for the second moment, which is not quite Adam).
"""

import keras
import tensorflow as tf
from keras import ops

from ..errors import ConfigError


def _slices_matrix(g, cols, num_cols):
    """The [rows, num_cols] 0/1 sparse matrix with a one at (i, cols[i]) for each slice row i."""

    n = tf.shape(g.indices, out_type=tf.int64)[0]
    at = tf.stack([tf.range(n), tf.cast(cols, tf.int64)], axis=1)
    return tf.SparseTensor(at, tf.ones([n], g.values.dtype), tf.stack([n, tf.cast(num_cols, tf.int64)]))


def _sum_rows(g, cols, num_cols):
    """values[i] summed into row cols[i] of a [num_cols, ...] tensor. A sparse-dense matmul
    (S^T @ values): TF's CPU UnsortedSegmentSum, which IndexedSlices -> dense uses, costs ~60 ns
    per row and is ~2.8x slower on a batch's 260k embedding rows (`micro_ab.py densify`)."""

    vals = g.values
    if vals.dtype not in (tf.float32, tf.float64):
        return tf.math.unsorted_segment_sum(vals, cols, num_cols)
    flat = tf.reshape(vals, tf.stack([tf.shape(vals)[0], -1]))
    out = tf.sparse.sparse_dense_matmul(_slices_matrix(g, cols, num_cols), flat, adjoint_a=True)
    return tf.reshape(out, tf.concat([tf.reshape(tf.cast(num_cols, tf.int32), [1]), tf.shape(vals)[1:]], 0))


def _densify(g):
    """Row slices -> the dense gradient, duplicate rows summed."""

    if g.dense_shape is None:
        return tf.convert_to_tensor(g)
    return _sum_rows(g, g.indices, tf.cast(g.dense_shape[0], tf.int32))


def _dedupe(g):
    """IndexedSlices with each row once (duplicates summed); a no-op if already deduplicated."""

    if getattr(g, "_fuxi_unique", False):
        return g
    rows, pos = tf.unique(g.indices)
    out = tf.IndexedSlices(_sum_rows(g, pos, tf.shape(rows)[0]), rows, g.dense_shape)
    out._fuxi_unique = True
    return out


def _global_norm(tensors):
    """sqrt(sum of squares) over tensors, each tensor's sum from one fused kernel (`tf.nn.l2_loss`:
    1.4 ms on a 4.8M-float table gradient against 9.1 ms for square then sum, `micro_ab.py clip-norm`)."""

    return tf.sqrt(tf.add_n([2.0 * tf.nn.l2_loss(tf.cast(t, tf.float32)) for t in tensors]))


def _clip_scaled(grads, norm, clip):
    """Keras's global-norm scaling (NaN/inf norms give NaN gradients), skipped when the norm is
    within the clip (no pass over the tables then). Row slices are scaled as slices."""

    scale = clip * tf.minimum(1.0 / norm, 1.0 / clip) + (norm - norm)

    def scaled():
        return [None if g is None else
                tf.IndexedSlices(g.values * tf.cast(scale, g.values.dtype), g.indices, g.dense_shape)
                if isinstance(g, tf.IndexedSlices) else g * tf.cast(scale, g.dtype) for g in grads]

    present = [i for i, g in enumerate(grads) if g is not None]
    kept = tf.cond(scale >= 1.0, lambda: [grads[i] for i in present], lambda: [scaled()[i] for i in present])
    res = list(grads)
    for i, g in zip(present, kept):
        res[i] = g
    return res


def _handle(variable):
    """The resource handle of a Keras variable (or of the tf.Variable the TF backend passes)."""
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle


@keras.saving.register_keras_serializable(package="fuxi_like")
class Adam(keras.optimizers.Adam):
    def _fusable(self):
        """Whether dense gradients go through the fused kernel (TF backend, no amsgrad, no strategy)."""
        if keras.backend.backend() != "tensorflow" or self.amsgrad:
            return False

        return not tf.distribute.has_strategy()

    def _dense_rows(self):
        """Whether row-slice gradients are densified before clipping (the fused kernel takes them dense)."""
        return self._fusable()

    def _fused(self, gradient):
        return self._fusable() and not isinstance(gradient, tf.IndexedSlices)

    def _clip_gradients(self, grads):
        """Global-norm clipping without Keras's double densification of row-slice gradients
        (its `clip_by_global_norm` densifies them once for the norm and again for the scaling).
        The fused Adam densifies them once and clips dense tensors; otherwise (LazyAdam,
        tf.distribute, amsgrad) they stay slices: the norm comes from the deduplicated rows and
        only those rows are scaled."""
        if keras.backend.backend() != "tensorflow" or not (self.global_clipnorm and self.global_clipnorm > 0) \
                or self.clipnorm or self.clipvalue:
            return super()._clip_gradients(grads)

        if self._dense_rows() or not any(isinstance(g, tf.IndexedSlices) for g in grads):
            # row slices densified once here (the fused kernel takes them dense), then Keras's formula
            grads = [_densify(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
            return _clip_scaled(grads, _global_norm([g for g in grads if g is not None]), self.global_clipnorm)
        grads = [_dedupe(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
        norm = _global_norm([g.values if isinstance(g, tf.IndexedSlices) else g for g in grads if g is not None])
        out = _clip_scaled(grads, norm, self.global_clipnorm)
        for g in out:
            if isinstance(g, tf.IndexedSlices):
                g._fuxi_unique = True
        return out

    def update_step(self, gradient, variable, learning_rate):
        if keras.backend.backend() != "tensorflow":
            return super().update_step(gradient, variable, learning_rate)

        if isinstance(gradient, tf.IndexedSlices):
            # row slices (an embedding lookup's gradient): Adam on the summed dense gradient, densified
            # once (duplicate ids summed; under tf.distribute the replicas' slices repeat rows too, which
            # Keras's Adam would square one by one)
            gradient = _densify(gradient)
        if not self._fusable():
            return super().update_step(gradient, variable, learning_rate)

        dtype = variable.dtype
        step = ops.cast(self.iterations + 1, dtype)
        i = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(self._momentums[i]), v=_handle(self._velocities[i]),
            beta1_power=ops.power(ops.cast(self.beta_1, dtype), step),
            beta2_power=ops.power(ops.cast(self.beta_2, dtype), step),
            lr=ops.cast(learning_rate, dtype), beta1=ops.cast(self.beta_1, dtype), beta2=ops.cast(self.beta_2, dtype),
            epsilon=ops.cast(self.epsilon, dtype), grad=ops.cast(gradient, dtype))


@keras.saving.register_keras_serializable(package="fuxi_like")
class LazyAdam(Adam):
    def _dense_rows(self):
        return False

    def __init__(self, *args, **kwargs):
        if kwargs.get("amsgrad"):
            raise ConfigError("optimizer lazyadam does not support amsgrad")
        super().__init__(*args, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        if keras.backend.backend() != "tensorflow":
            return super().update_step(gradient, variable, learning_rate)

        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        gradient = _dedupe(gradient)  # sum duplicate rows first (the same id several times in one batch)
        rows, g = gradient.indices, ops.cast(gradient.values, dtype)
        lr = ops.cast(learning_rate, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        b1, b2 = ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype)
        alpha = lr * ops.sqrt(1 - ops.power(b2, step)) / (1 - ops.power(b1, step))
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        # tf.gather on the variables (ResourceGather): ops.take would read whole tables first
        m_rows = b1 * tf.gather(m.value, rows) + (1 - b1) * g
        v_rows = b2 * tf.gather(v.value, rows) + (1 - b2) * ops.square(g)
        self.assign(m, tf.IndexedSlices(m_rows, rows))
        self.assign(v, tf.IndexedSlices(v_rows, rows))
        self.assign_sub(variable, tf.IndexedSlices(alpha * m_rows / (ops.sqrt(v_rows) + self.epsilon), rows))


OPTIMIZERS = {"adam": Adam, "lazyadam": LazyAdam, "adamw": keras.optimizers.AdamW,
              "sgd": keras.optimizers.SGD, "adagrad": keras.optimizers.Adagrad,
              "rmsprop": keras.optimizers.RMSprop}


def get_optimizer(name, learning_rate, clipnorm=None):
    key = str(name).lower()
    if key not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer '{name}' (config key 'optimizer'); known: {', '.join(OPTIMIZERS)}")
    kwargs = {"global_clipnorm": float(clipnorm)} if clipnorm else {}
    return OPTIMIZERS[key](learning_rate=float(learning_rate), **kwargs)
