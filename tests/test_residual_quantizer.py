"""The core's ResidualQuantizer (UIST's semantic tokens): exact residual coding, per-level offsets, the straight-through
estimator, k-means initialisation, and dead-code replacement that touches only unused codes."""

import keras
import numpy as np
import tensorflow as tf

from fuxi_like.layers import ResidualQuantizer


def _rq(levels=3, k=8, dim=4, seed=0):
    keras.utils.set_random_seed(seed)
    rq = ResidualQuantizer(levels, k)
    rq.build((None, dim))
    return rq


def test_codes_are_the_residual_argmins_and_decode_sums_their_codewords():
    rq = _rq()
    x = np.random.default_rng(1).normal(size=(50, 4)).astype(np.float32)
    codes, qs, last = (np.asarray(a) for a in rq.residual_quantize(x))
    cb = np.asarray(rq.codebooks)
    # a NumPy residual loop over the per-level blocks of the one table
    r = x.copy()
    for level in range(3):
        block = cb[level * 8:(level + 1) * 8]
        want = ((r[:, None, :] - block[None]) ** 2).sum(-1).argmin(1)
        np.testing.assert_array_equal(codes[:, level], want)
        np.testing.assert_allclose(qs[:, level], block[want], rtol=0, atol=0)
        r = r - block[want]
    np.testing.assert_allclose(last, r, atol=1e-6)
    # decode = the sum of the chosen codewords; depth d = the first d levels only
    np.testing.assert_allclose(np.asarray(rq.decode(codes)), qs.sum(1), atol=1e-6)
    np.testing.assert_allclose(np.asarray(rq.decode(codes, 1)), qs[:, 0], atol=1e-6)
    np.testing.assert_allclose(np.asarray(rq.decode(codes)) + last, x, atol=1e-5)  # x = sum of codewords + residual


def test_level_offsets_map_each_code_to_its_own_levels_rows():
    rq = _rq(levels=3, k=8)
    codes = np.array([[0, 0, 0], [7, 7, 7], [3, 1, 5]])
    rows = np.asarray(rq.global_codes(codes))
    np.testing.assert_array_equal(rows, [[0, 8, 16], [7, 15, 23], [3, 9, 21]])
    np.testing.assert_array_equal(rq.offsets, [0, 8, 16])
    cb = np.asarray(rq.codebooks)
    for level in range(3):  # the same code at two levels is two different rows
        np.testing.assert_array_equal(cb[rows[:, level]], np.asarray(rq.level_codebook(level))[codes[:, level]])


def test_straight_through_estimator_passes_gradients_to_the_encoder():
    rq = _rq()
    enc = keras.layers.Dense(4)
    x = tf.constant(np.random.default_rng(2).normal(size=(16, 6)).astype(np.float32))
    w = tf.constant(np.random.default_rng(3).normal(size=(16, 4)).astype(np.float32))
    with tf.GradientTape() as tape:
        z = enc(x)
        out, _, _ = rq(z, training=True, return_loss=True)
        loss = tf.reduce_sum(out * w)
    grads = tape.gradient(loss, enc.trainable_variables)
    # forward is the quantized vector, backward is the identity: d loss / d z = w exactly
    with tf.GradientTape() as tape2:
        z2 = enc(x)
        loss2 = tf.reduce_sum(z2 * w)
    want = tape2.gradient(loss2, enc.trainable_variables)
    for g, h in zip(grads, want):
        assert float(tf.reduce_max(tf.abs(g))) > 0
        np.testing.assert_allclose(np.asarray(g), np.asarray(h), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out), np.asarray(rq.decode(rq.residual_quantize(z)[0])), atol=1e-5)


def test_commitment_and_codebook_losses_by_hand():
    rq = ResidualQuantizer(2, 4, beta=0.25)
    rq.build((None, 3))
    x = np.random.default_rng(4).normal(size=(10, 3)).astype(np.float32)
    _, _, loss = rq(x, training=True, return_loss=True)
    _, qs, _ = (np.asarray(a) for a in rq.residual_quantize(x))
    r0, r1 = x, x - qs[:, 0]
    per_level = [((r - q) ** 2).sum(1).mean() for r, q in ((r0, qs[:, 0]), (r1, qs[:, 1]))]
    np.testing.assert_allclose(float(loss), 1.25 * np.mean(per_level), rtol=1e-5)


def test_kmeans_init_beats_random_codebooks():
    rng = np.random.default_rng(5)
    centres = rng.normal(scale=3, size=(8, 4))
    x = (centres[rng.integers(8, size=2000)] + rng.normal(scale=0.1, size=(2000, 4))).astype(np.float32)
    rq = _rq(levels=2, k=8)
    before = float(np.mean(np.asarray(rq.residual_quantize(x)[2]) ** 2))
    rq.init_from(x, seed=0)
    after = float(np.mean(np.asarray(rq.residual_quantize(x)[2]) ** 2))
    assert after < 0.05 * before, (before, after)


def test_dead_code_reset_reseeds_only_codes_idle_for_n_steps():
    rq = _rq(levels=2, k=8, dim=2)
    # two clusters: level 0 will use only the two codewords placed on them
    cb = np.full((16, 2), 50.0, np.float32)
    cb[0], cb[1] = [0, 0], [10, 10]
    cb[8:] = np.random.default_rng(6).normal(scale=0.01, size=(8, 2))
    rq.codebooks.assign(cb)
    x = np.concatenate([np.zeros((20, 2)), np.full((20, 2), 10.0)]).astype(np.float32)
    for _ in range(5):
        rq(x, training=True)
    used = np.zeros(16, bool)
    used[np.unique(np.asarray(rq.global_codes(rq.residual_quantize(x)[0])))] = True
    assert used[0] and used[1] and not used[2:8].any()
    before = np.asarray(rq.codebooks).copy()
    assert rq.reset_dead(x, min_idle_steps=10) == 0  # idle 5 steps < 10: nothing yet
    np.testing.assert_array_equal(np.asarray(rq.codebooks), before)
    for _ in range(5):
        rq(x, training=True)
    n = rq.reset_dead(x, min_idle_steps=5)
    after = np.asarray(rq.codebooks)
    assert n == int((~used).sum())
    np.testing.assert_array_equal(after[used], before[used])  # used codes untouched
    assert not np.allclose(after[~used & (np.arange(16) < 8)], 50.0)  # dead level-0 codes moved onto the data
    level0 = after[2:8]
    assert np.all(np.min(((level0[:, None] - x[None]) ** 2).sum(-1), 1) < 1e-8)  # each is a level-0 residual (= x)
