"""FeatureEmbedding: fused tables with offsets, shared tables, masked pooling, numeric."""

import numpy as np
import pytest
from keras import ops

from fuxi_like.errors import ConfigError
from fuxi_like.features.feature_map import FeatureMap
from fuxi_like.layers import FeatureEmbedding, MLPBlock, masked_pool


def fmap():
    feats = {
        "a": {"type": "categorical", "vocab_size": 5},
        "b": {"type": "categorical", "vocab_size": 7},
        "c": {"type": "categorical", "vocab_size": 4, "embedding_dim": 8},
        "s": {"type": "sequence", "vocab_size": 7, "max_len": 3, "share_embedding": "b", "pooling": "mean"},
        "x": {"type": "numeric"},
        "g": {"type": "meta"},
    }
    return FeatureMap("t", feats, ["y"])


def inputs():
    return {"a": np.array([1, 2]), "b": np.array([1, 3]), "c": np.array([1, 0]),
            "s": np.array([[0, 1, 3], [0, 0, 0]]), "x": np.array([2.0, -1.0], "float32"), "g": np.array([5, 6])}


def test_equal_dims_are_fused_into_one_table_with_offsets():
    emb = FeatureEmbedding(fmap(), 4)
    out = emb(inputs())
    assert sorted(emb.tables) == [4, 8]  # a, b (and s through b) in one table; c alone
    assert emb.tables[4].input_dim == 5 + 7 and emb.offsets["b"] == (4, 5)
    table = emb.tables[4].embeddings.numpy()
    np.testing.assert_allclose(out["a"].numpy()[0], table[1])
    np.testing.assert_allclose(out["b"].numpy()[0], table[5 + 1])  # b's id 1 is row 5+1, not a's row
    assert out["c"].shape == (2, 8) and "g" not in out  # meta is never embedded


def test_shared_table_and_masked_mean_pooling():
    emb = FeatureEmbedding(fmap(), 4)
    out = emb(inputs())
    table = emb.tables[4].embeddings.numpy()
    np.testing.assert_allclose(out["s"].numpy()[0], (table[5 + 1] + table[5 + 3]) / 2, rtol=1e-6)
    np.testing.assert_allclose(out["s"].numpy()[1], 0.0)  # empty history -> zeros, no NaN
    raw = emb(inputs(), pool=False)["s"]
    assert raw.shape == (2, 3, 4)
    mask = FeatureEmbedding.sequence_mask(inputs()["s"])
    np.testing.assert_allclose(ops.convert_to_numpy(masked_pool(raw, mask, "sum"))[0], table[6] + table[8], rtol=1e-6)


def test_numeric_is_value_times_vector():
    emb = FeatureEmbedding(fmap(), 4)
    out = emb(inputs())
    w = emb.numeric_w["x"].numpy()
    np.testing.assert_allclose(out["x"].numpy(), np.outer([2.0, -1.0], w), rtol=1e-6)


def test_stack_requires_equal_dims():
    out = FeatureEmbedding(fmap(), 4)(inputs())
    assert FeatureEmbedding.stack(out, ["a", "b", "s", "x"]).shape == (2, 4, 4)
    with pytest.raises(ConfigError, match="must share one embedding_dim"):
        FeatureEmbedding.stack(out)
    assert FeatureEmbedding.flatten(out).shape == (2, 4 * 4 + 8)


def test_embedding_regularizer_is_half_l2_of_tables():
    emb = FeatureEmbedding(fmap(), 4, embedding_regularizer=0.5)
    emb(inputs())
    expected = 0.25 * sum(float((t.embeddings.numpy() ** 2).sum()) for t in emb.tables.values())
    expected += 0.25 * float((emb.numeric_w["x"].numpy() ** 2).sum())
    assert float(sum(emb.losses)) == pytest.approx(expected, rel=1e-5)


def test_regularizers_equal_keras_values_gradients_and_serialise():
    """The L2 term by `tf.nn.l2_loss` (and L1 beside it) equals Keras's L1L2 in value and gradient,
    and survives get_config / Keras deserialisation (saved .keras models name it)."""
    import keras
    import tensorflow as tf

    from fuxi_like.layers.regularizers import L1L2, get_regularizer

    w = tf.Variable(np.random.default_rng(0).normal(size=(50, 4)).astype("float32"))
    for spec, ref in ((0.3, keras.regularizers.L1L2(l2=0.15)), ("l1_l2(0.01, 0.2)", keras.regularizers.L1L2(0.01, 0.2)),
                      ("l1(0.02)", keras.regularizers.L1L2(l1=0.02))):
        reg = get_regularizer(spec, half=isinstance(spec, float))
        assert isinstance(reg, L1L2)
        vals = []
        for r in (reg, ref):
            with tf.GradientTape() as tape:
                loss = r(w)
            vals.append((float(loss), tape.gradient(loss, w).numpy()))
        assert vals[0][0] == pytest.approx(vals[1][0], rel=1e-6)
        np.testing.assert_allclose(vals[0][1], vals[1][1], rtol=1e-5, atol=1e-7)
        back = keras.regularizers.deserialize(keras.regularizers.serialize(reg))
        assert type(back) is L1L2 and back.get_config() == reg.get_config()


def test_mlp_dropout_only_in_training():
    mlp = MLPBlock([16], "relu", output_dim=1, dropout_rates=0.5)
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    a, b = mlp(x, training=False), mlp(x, training=False)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.allclose(mlp(x, training=True).numpy(), a.numpy())


def test_fused_stack_and_flatten_equal_plain_restacking():
    from fuxi_like.layers.embedding import FieldEmbeddings

    emb = FeatureEmbedding(fmap(), 4)
    out = emb(inputs())
    assert isinstance(out, FieldEmbeddings)
    plain = dict(out)  # a plain dict takes the slow path: restack field by field
    for names in (["a", "b", "x"], ["b", "a"], ["x", "s", "a", "b"], ["b"]):
        np.testing.assert_allclose(ops.convert_to_numpy(FeatureEmbedding.stack(out, names)),
                                   ops.convert_to_numpy(FeatureEmbedding.stack(plain, names)))
        np.testing.assert_allclose(ops.convert_to_numpy(FeatureEmbedding.flatten(out, names)),
                                   ops.convert_to_numpy(FeatureEmbedding.flatten(plain, names)))
    FeatureEmbedding.stack(out, ["a", "b"])  # cached ...
    out["a"] = out["a"] * 0.0  # ... but a replaced value is used, never the stale fused group or cache
    np.testing.assert_allclose(ops.convert_to_numpy(FeatureEmbedding.stack(out, ["a", "b"]))[:, 0], 0.0)
    out.update({"b": out["b"] * 0.0})  # dict.update bypasses __setitem__: still seen
    np.testing.assert_allclose(ops.convert_to_numpy(FeatureEmbedding.flatten(out, ["a", "b"])), 0.0)


def test_factorization_machine_value_and_gradient_match_autodiff():
    import tensorflow as tf

    from fuxi_like.layers import FactorizationMachine

    v = tf.Variable(np.random.default_rng(0).normal(size=(5, 4, 3)).astype("float32"))
    w = tf.constant(np.random.default_rng(1).normal(size=(5, 1)).astype("float32"))
    with tf.GradientTape(persistent=True) as tape:
        fast = FactorizationMachine()(v)
        pairs = sum(tf.reduce_sum(v[:, i] * v[:, j], axis=-1, keepdims=True)
                    for i in range(4) for j in range(i + 1, 4))  # the definition: sum over field pairs
        lf, lp = tf.reduce_sum(fast * w), tf.reduce_sum(pairs * w)
    np.testing.assert_allclose(fast.numpy(), pairs.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tape.gradient(lf, v).numpy(), tape.gradient(lp, v).numpy(), rtol=1e-5, atol=1e-5)
