"""Numeric fields by their factors (`factored_fields`): the FM and the MLP's first layer on field
embeddings give the plain path's values and gradients, and never read a replaced field's factors."""

import numpy as np
import pytest
import tensorflow as tf

from fuxi_like.features.feature_map import FeatureMap
from fuxi_like.layers import FactorizationMachine, FeatureEmbedding, MLPBlock


def fmap(c_dim=None):
    feats = {"a": {"type": "categorical", "vocab_size": 5}, "x": {"type": "numeric"},
             "b": {"type": "categorical", "vocab_size": 7}, "z": {"type": "numeric"},
             "c": {"type": "categorical", "vocab_size": 4, **({"embedding_dim": c_dim} if c_dim else {})},
             "u": {"type": "numeric"}}
    return FeatureMap("t", feats, ["y"])


def inputs(n=6):
    r = np.random.default_rng(0)
    return {"a": r.integers(0, 5, n), "b": r.integers(0, 7, n), "c": r.integers(0, 4, n),
            "x": r.normal(size=n).astype("float32"), "z": r.normal(size=n).astype("float32"),
            "u": r.normal(size=n).astype("float32")}


def _randomise(layers):
    r = np.random.default_rng(1)
    for layer in layers:
        for w in layer.weights:
            w.assign(r.normal(size=w.shape).astype("float32"))


def _both(fast, plain, variables):
    """(values, gradients) of fast() and plain() w.r.t. variables (None: a variable the fields do not use)."""
    out = []
    for fn in (fast, plain):
        with tf.GradientTape() as tape:
            y = fn()
            loss = tf.reduce_sum(y * tf.range(1.0, 1.0 + y.shape[-1]))
        out.append((y.numpy(), [None if g is None else tf.convert_to_tensor(g).numpy()
                                for g in tape.gradient(loss, variables)]))
    return out


NAMES = [None, ["x", "a", "z"], ["a", "b"], ["z", "x"], ["u", "c", "x"], ["b", "z", "a", "u"],
         ["x", "z", "u", "a", "b", "c"], ["a", "c", "b", "z", "u"]]  # the last two: numeric rows in one block


@pytest.mark.parametrize("names", NAMES)
def test_mlp_call_fields_equals_mlp_on_flattened_embeddings(names):
    emb = FeatureEmbedding(fmap(c_dim=8), 4)
    mlp = MLPBlock([5, 3], "relu", output_dim=2)
    x = inputs()
    mlp.build((None, sum(emb.dim(n) for n in (names or emb.names))))
    emb(x)
    _randomise([emb, mlp])
    variables = emb.trainable_variables + mlp.trainable_variables
    (fv, fg), (pv, pg) = _both(lambda: mlp.call_fields(emb(x), names),
                               lambda: mlp(FeatureEmbedding.flatten(emb(x), names)), variables)
    np.testing.assert_allclose(fv, pv, rtol=1e-5, atol=1e-5)
    for v, a, b in zip(variables, fg, pg):
        assert (a is None) == (b is None), v.path
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=v.path)


@pytest.mark.parametrize("names", [n for n in NAMES if n is not None] + [["x", "z", "u"]])
def test_fm_call_fields_equals_fm_on_stacked_embeddings(names):
    emb = FeatureEmbedding(fmap(), 4)
    x = inputs()
    emb(x)
    _randomise([emb])
    fm = FactorizationMachine()
    (fv, fg), (pv, pg) = _both(lambda: fm.call_fields(emb(x), names),
                               lambda: fm(FeatureEmbedding.stack(emb(x), names)), emb.trainable_variables)
    np.testing.assert_allclose(fv, pv, rtol=1e-5, atol=1e-5)
    for v, a, b in zip(emb.trainable_variables, fg, pg):
        assert (a is None) == (b is None), v.path
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=v.path)


def test_replaced_numeric_field_is_not_read_through_its_factors():
    emb = FeatureEmbedding(fmap(), 4)
    x = inputs()
    out = emb(x)
    assert out.factored("x") is not None and out.factored("a") is None
    out["x"] = out["x"] * 0.0
    out.update({"z": out["z"] * 2.0})  # dict.update bypasses __setitem__: still seen
    assert out.factored("x") is None and out.factored("z") is None and out.factored("u") is not None
    mlp, fm = MLPBlock([3], "relu", output_dim=1), FactorizationMachine()
    np.testing.assert_allclose(mlp.call_fields(out).numpy(), mlp(FeatureEmbedding.flatten(dict(out))).numpy(),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fm.call_fields(out).numpy(), fm(FeatureEmbedding.stack(dict(out))).numpy(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model", ["DeepFM", "DCNv2"])
def test_zoo_models_equal_their_plain_formula(model):
    """DeepFM and DCNv2 (parallel) give the same predictions and gradients as the same weights through
    flatten/stack (the plain formula)."""
    from pathlib import Path

    from fuxi_like.experiment import load_model_module

    cls = getattr(load_model_module(Path(__file__).resolve().parents[1] / "model_zoo" / model), model)
    m = cls(fmap(), embedding_dim=4, **({"hidden_units": [8, 8]} if model == "DeepFM" else
                                        {"parallel_dnn_hidden_units": [8, 8], "num_cross_layers": 2}))
    x = inputs()
    m(x)
    _randomise([m])
    emb = m.embedding

    def plain():
        e = dict(emb(x))  # a plain dict: no factors, the flatten/stack path
        if model == "DeepFM":
            return m.output_activation(m.lr(x) + m.fm(FeatureEmbedding.stack(e)) + m.mlp(FeatureEmbedding.flatten(e)))
        x0 = FeatureEmbedding.flatten(e)
        c = x0
        for layer in m.cross:
            c = layer(x0, c)
        return m.output_activation(m.out(tf.concat([c, m.parallel(x0)], -1)))

    (fv, fg), (pv, pg) = _both(lambda: m(x), plain, m.trainable_variables)
    np.testing.assert_allclose(fv, pv, rtol=1e-5, atol=1e-6)
    for v, a, b in zip(m.trainable_variables, fg, pg):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=v.path)


def test_call_fields_with_mixed_dims_or_unknown_fields_is_a_config_error():
    from fuxi_like.errors import ConfigError

    out = FeatureEmbedding(fmap(c_dim=8), 4)(inputs())
    with pytest.raises(ConfigError, match="must share one embedding_dim"):
        FactorizationMachine().call_fields(out)
    assert FactorizationMachine().call_fields(out, ["a", "x", "b"]).shape == (6, 1)  # one dim: fine
    for call in (lambda: FactorizationMachine().call_fields(out, ["a", "q"]),
                 lambda: MLPBlock([3]).call_fields(out, ["x", "q"])):
        with pytest.raises(ConfigError, match=r"no embedded field\(s\) \['q'\]"):
            call()
