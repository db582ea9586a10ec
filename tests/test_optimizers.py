"""`lazyadam`: Adam whose embedding-row gradients update only the rows in the batch."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fuxi_like.errors import ConfigError
from fuxi_like.training.optimizers import LazyAdam, get_optimizer


def _step(opt, emb, dense, ids, densify=False):
    with tf.GradientTape() as tape:
        rows = tf.gather(emb, ids)
        loss = tf.reduce_sum(tf.square(rows - 1.0) * tf.range(1.0, 4.0)) + tf.reduce_sum(dense * dense)
    grads = tape.gradient(loss, [emb, dense])
    assert isinstance(grads[0], tf.IndexedSlices)
    if densify:  # the reference: Adam on the summed dense gradient (Keras's Adam given the slices
        grads[0] = tf.convert_to_tensor(grads[0])  # squares duplicate rows one by one)
    opt.apply(grads, [emb, dense])


def test_lazyadam_equals_adam_on_touched_rows_and_leaves_the_rest():
    init = np.random.default_rng(0).normal(size=(10, 3)).astype("float32")
    vars_ = {}
    for name, opt in (("adam", keras.optimizers.Adam(0.1)), ("lazy", LazyAdam(0.1))):
        emb, dense = keras.Variable(init), keras.Variable(np.ones(4, "float32"))
        _step(opt, emb, dense, tf.constant([1, 4, 4, 7]), name == "adam")  # id 4 twice: gradients add up
        after1 = emb.numpy().copy()
        _step(opt, emb, dense, tf.constant([1, 2]), name == "adam")
        vars_[name] = (after1, emb.numpy(), dense.numpy())
    (a1, a2, ad), (l1, l2, ld) = vars_["adam"], vars_["lazy"]
    np.testing.assert_allclose(l1, a1, rtol=1e-5, atol=1e-5)  # step 1: zero moments elsewhere -> identical
    np.testing.assert_allclose(ld, ad, rtol=1e-5)  # dense weights: plain Adam (fused kernel: float32 rounding)
    np.testing.assert_allclose(l2[[1, 2]], a2[[1, 2]], rtol=1e-5, atol=1e-5)  # rows with a gradient now
    np.testing.assert_array_equal(l2[[4, 7]], l1[[4, 7]])  # lazily untouched in step 2 ...
    assert np.abs(a2[[4, 7]] - a1[[4, 7]]).max() > 1e-3  # ... where Adam's momentum keeps moving them
    np.testing.assert_array_equal(l2[[0, 3, 5, 6, 8, 9]], init[[0, 3, 5, 6, 8, 9]])


def test_optimizer_names_are_checked():
    assert isinstance(get_optimizer("LazyAdam", 1e-3), LazyAdam)
    with pytest.raises(ConfigError, match="unknown optimizer 'adamm'.*'optimizer'"):
        get_optimizer("adamm", 1e-3)


def test_lazyadam_global_clipnorm_keeps_row_gradients_sparse_and_scales_like_keras():
    grads = [tf.IndexedSlices(tf.constant([[3.0, 0.0], [1.0, 2.0], [1.0, 2.0]]), tf.constant([2, 5, 5]),
                              tf.constant([8, 2])), tf.constant([4.0, -4.0])]
    opt = LazyAdam(1e-3, global_clipnorm=1.5)
    clipped = opt._clip_gradients(grads)
    assert isinstance(clipped[0], tf.IndexedSlices)  # sparse: only the batch's rows get updated
    ref = keras.optimizers.Adam(1e-3, global_clipnorm=1.5)._clip_gradients(
        [tf.convert_to_tensor(grads[0]), grads[1]])  # Keras on the summed dense gradient
    np.testing.assert_allclose(tf.convert_to_tensor(clipped[0]).numpy(), ref[0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(clipped[1].numpy(), ref[1].numpy(), rtol=1e-6)


def _compiled_apply(opt, v):
    @tf.function
    def step(g):
        opt.apply([g], [v])

    return step


def test_adam_fused_update_equals_keras_adam():
    """`adam` applies dense gradients with TF's fused ResourceApplyAdam: the same weights and
    moments as Keras's Adam step by step (with a decaying learning rate and global-norm
    clipping), the same variables (a checkpoint moves between the two), and Keras's path for
    row slices and inside a tf.distribute strategy."""
    from fuxi_like.training.optimizers import Adam

    rng = np.random.default_rng(0)
    init = rng.normal(size=(50, 8)).astype("float32")
    grads = [rng.normal(size=(50, 8)).astype("float32") * 3 for _ in range(6)]
    sched = keras.optimizers.schedules.ExponentialDecay(0.05, 2, 0.5)
    out = {}
    for name, cls in (("keras", keras.optimizers.Adam), ("fused", Adam)):
        v = keras.Variable(init)
        opt = cls(learning_rate=sched, global_clipnorm=20.0)
        opt.build([v])
        step = _compiled_apply(opt, v)
        for g in grads:
            step(tf.constant(g))
        out[name] = (v.numpy(), [w.numpy() for w in opt.variables])
        assert int(opt.iterations.numpy()) == len(grads)
    np.testing.assert_allclose(out["fused"][0], out["keras"][0], rtol=1e-5, atol=1e-6)
    assert [w.shape for w in out["fused"][1]] == [w.shape for w in out["keras"][1]]
    for a, b in zip(out["fused"][1], out["keras"][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    opt = Adam(0.1)
    assert opt._fused(tf.constant(grads[0])) and not opt._fused(tf.IndexedSlices(tf.constant(grads[0][:2]),
                                                                                tf.constant([0, 1])))
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        assert not opt._fused(tf.constant(grads[0]))
    assert isinstance(get_optimizer("adam", 1e-3), Adam)


def test_adam_row_slices_are_adam_on_the_summed_dense_gradient():
    """`adam` given an embedding lookup's row slices (an id twice in the batch) with global-norm
    clipping: clipped as slices (no whole-table scaling), densified once and applied by the fused
    kernel, giving Keras's Adam on the summed dense gradient step by step."""
    from fuxi_like.training.optimizers import Adam

    init = np.random.default_rng(1).normal(size=(10, 3)).astype("float32")
    out = {}
    for name, opt in (("keras dense", keras.optimizers.Adam(0.1, global_clipnorm=2.0)),
                      ("fused slices", Adam(0.1, global_clipnorm=2.0))):
        emb, dense = keras.Variable(init), keras.Variable(np.ones(4, "float32"))
        for ids in ([1, 4, 4, 7], [1, 2], [9, 9, 9]):
            _step(opt, emb, dense, tf.constant(ids), densify=name == "keras dense")
        out[name] = (emb.numpy(), dense.numpy(), [w.numpy() for w in opt.variables])
    (e1, d1, w1), (e2, d2, w2) = out["keras dense"], out["fused slices"]
    np.testing.assert_allclose(e2, e1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d2, d1, rtol=1e-5, atol=1e-6)
    for a, b in zip(w2, w1):  # same moments: checkpoints stay interchangeable
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert np.abs(e1[0] - init[0]).max() == 0 and np.abs(e1[4] - init[4]).max() > 1e-3  # row 0 never in a batch
    slices = [tf.IndexedSlices(tf.ones((3, 3)), tf.constant([1, 1, 2]), tf.constant([10, 3]))]
    clipped = Adam(0.1, global_clipnorm=2.0)._clip_gradients(slices)
    assert not isinstance(clipped[0], tf.IndexedSlices)  # densified once for the fused kernel
    np.testing.assert_allclose(clipped[0].numpy(), keras.optimizers.Adam(0.1, global_clipnorm=2.0)._clip_gradients(
        [tf.convert_to_tensor(slices[0])])[0].numpy(), rtol=1e-6)


def test_row_slices_summed_by_sparse_matmul_equal_segment_sums():
    """`_densify` / `_dedupe` (sparse-dense matmul) equal TF's unsorted segment sums, duplicates
    included, for 2-D and 3-D row values, inside and outside tf.function."""
    from fuxi_like.training.optimizers import _dedupe, _densify

    rng = np.random.default_rng(0)
    for shape in ((50, 4), (50, 2, 3)):
        ids = tf.constant(rng.integers(0, 20, 50).astype("int32"))
        g = tf.IndexedSlices(tf.constant(rng.normal(size=shape).astype("float32")), ids, tf.constant((30,) + shape[1:]))
        ref = tf.convert_to_tensor(g).numpy()
        for fn in (_densify, tf.function(_densify)):
            np.testing.assert_allclose(fn(g).numpy(), ref, rtol=1e-5, atol=1e-6)
        d = _dedupe(g)
        assert len(set(d.indices.numpy().tolist())) == len(d.indices) == len(set(ids.numpy().tolist()))
        np.testing.assert_allclose(tf.convert_to_tensor(d).numpy(), ref, rtol=1e-5, atol=1e-6)


def test_adam_global_norm_clipping_equals_keras_below_and_above_the_clip():
    """`adam`'s clipping (fused norm kernel, scaling skipped within the clip) gives Keras's result for
    norms below and above the clip, for LazyAdam's row slices too, and NaN gradients for a NaN norm."""
    from fuxi_like.training.optimizers import Adam, LazyAdam

    rng = np.random.default_rng(3)
    for size in (0.1, 10.0):
        dense = [tf.constant(rng.normal(size=(6, 3)).astype("float32") * size), tf.constant(rng.normal(size=4).astype("float32"))]
        ref = keras.optimizers.Adam(1e-3, global_clipnorm=2.0)._clip_gradients(dense)
        for got in (Adam(1e-3, global_clipnorm=2.0)._clip_gradients(dense),
                    tf.function(Adam(1e-3, global_clipnorm=2.0)._clip_gradients)(dense)):
            for a, b in zip(got, ref):
                np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
        rows = [tf.IndexedSlices(dense[0], tf.constant([0, 3, 3, 1, 2, 0]), tf.constant([5, 3])), dense[1]]
        lazy = LazyAdam(1e-3, global_clipnorm=2.0)._clip_gradients(rows)
        assert isinstance(lazy[0], tf.IndexedSlices)
        ref = keras.optimizers.Adam(1e-3, global_clipnorm=2.0)._clip_gradients([tf.convert_to_tensor(rows[0]), rows[1]])
        np.testing.assert_allclose(tf.convert_to_tensor(lazy[0]).numpy(), ref[0].numpy(), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(lazy[1].numpy(), ref[1].numpy(), rtol=1e-6)
    bad = Adam(1e-3, global_clipnorm=2.0)._clip_gradients([tf.constant([1.0, np.nan]), tf.ones(3)])
    assert np.isnan(bad[1].numpy()).all()  # as Keras: a NaN norm poisons every gradient
