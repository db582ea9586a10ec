"""UIST (model_zoo/UIST): HMI equals a loop over granularity pairs, token granularities are cumulative codebook rows,
the tokenizers' exports are reused by fingerprint, and on the seeded topical set (the click follows the history's
topics, 20 % of the items never occur in training) semantic tokens learn and beat item IDs on the cold items."""

from pathlib import Path

import numpy as np
import pytest

from fuxi_like.experiment import build_experiment, load_model_module, prepare_experiment
from fuxi_like.training import fit_model

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "model_zoo" / "UIST"
CONFIG = FOLDER / "config"


def _build(**overrides):
    return build_experiment(prepare_experiment(CONFIG, "UIST_test", overrides={"verbose": 0, **overrides}))


def _train(tmp_path, **overrides):
    spec = prepare_experiment(CONFIG, "UIST_test", overrides={"verbose": 0, **overrides})
    exp = build_experiment(spec)
    p = spec.params
    fit_model(exp.model, exp.pipeline, p, tmp_path / "uist", run_hash=exp.run_hash, group_id=p["group_id"])
    return exp, exp.model.evaluate_split(exp.pipeline.dataset("test"), p["metrics"], p["group_id"])


@pytest.mark.parametrize("base_model", ["dcn", "deepfm"])
def test_hmi_equals_a_loop_over_granularity_pairs(base_model):
    model = _build(representation="id", base_model=base_model).model
    rng = np.random.default_rng(0)
    b, c, li, lu, d = 3, 2, 3, 2, model.embedding_dim
    user = rng.normal(size=(b, lu, d)).astype(np.float32)
    item = rng.normal(size=(b, c, li, d)).astype(np.float32)
    got = np.asarray(model.hmi(user, item))
    w, bias = (np.asarray(v) for v in model.mix.weights)
    want = np.zeros((b, c), np.float32)
    for bi in range(b):
        for ci in range(c):
            s = [float(np.asarray(model.base_score(user[bi:bi + 1, n], item[bi:bi + 1, ci, m]))[0, 0])
                 for m in range(li) for n in range(lu)]  # pair (item level m, user level n) at m * Lu + n
            want[bi, ci] = np.dot(s, w[:, 0]) + bias[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_losses_are_pointwise_bce_over_the_candidates():
    UIST = load_model_module(FOLDER).UIST  # the folder's src under its own module name

    logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]], np.float32)
    sig = 1 / (1 + np.exp(-logits))
    labels = np.array([1.0, 0.0, 0.0])
    want = -(labels * np.log(sig) + (1 - labels) * np.log(1 - sig)).mean(1)
    np.testing.assert_allclose(np.asarray(UIST._pointwise(None, logits)), want, rtol=1e-5)


def test_tokens_learn_beat_ids_on_cold_items_and_reuse_their_exports(tmp_path):
    pytest.importorskip("keras_hub", reason="the item text vectors are MiniLM's (the text extra, in the test extra)")
    kw = dict(epochs=8, learning_rate=3e-3, early_stop_patience=10)
    exp, tok = _train(tmp_path, representation="tokens", tokenizer_seed=7, **kw)
    _, ids = _train(tmp_path, representation="id", **kw)
    model = exp.model
    # chance: avgAUC 0.5; the click follows the history's topics, and a cold item's tokens still say its topic
    assert tok["avgAUC"] > 0.7, tok
    assert ids["cold_impressions"] == tok["cold_impressions"] > 40
    assert tok["cold_avgAUC"] > ids["cold_avgAUC"] + 0.03, (ids, tok)

    # token granularities: level m = the sum of the projected codebook rows of the first m codes (offsets applied)
    cand = np.array([[1, 2], [3, 4]], np.int32)
    codes = np.asarray(model.item_codes)[cand]
    k = model.tok_cfg["codes_per_level"]
    rows = np.asarray(model.item_token_table.embeddings)[codes + np.arange(codes.shape[-1]) * k]
    want = np.cumsum(np.asarray(model.item_proj(rows)), axis=-2)
    np.testing.assert_allclose(np.asarray(model.item_granularities(cand)), want, rtol=1e-5, atol=1e-5)

    # the rows' precomputed user codes (extra_inputs) are the codes the model computes from the history itself
    x, _ = next(iter(exp.pipeline.dataset("test")))[:2]
    assert "user_codes" in x
    raw = {k: v for k, v in x.items() if k != "user_codes"}
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(model(raw)), rtol=1e-5, atol=1e-6)
    hist = np.asarray(x["hist_items"])
    np.testing.assert_array_equal(np.asarray(x["user_codes"]), np.asarray(model.user_tokenizer.tokens(
        model.item_vectors(hist), (hist > 0).astype(np.float32))))

    # exports: int16 codes + codebooks + fingerprint; a rebuild with the same inputs reuses them, codes equal
    item_file = Path(model.tokenizer_report["item"]["file"])
    with np.load(item_file) as z:
        assert z["codes"].dtype == np.int16 and z["codes"].shape == (model.vocab_size, 2)
        np.testing.assert_array_equal(z["offsets"], [0, k])
    mtime = item_file.stat().st_mtime_ns
    again = _build(representation="tokens", tokenizer_seed=7).model
    assert item_file.stat().st_mtime_ns == mtime  # not retrained
    np.testing.assert_array_equal(np.asarray(again.item_codes), np.asarray(model.item_codes))
    np.testing.assert_array_equal(np.asarray(again.user_tokenizer.rq.codebooks),
                                  np.asarray(model.user_tokenizer.rq.codebooks))
    # the tokenizer is frozen inside the CTR model: training left it as exported
    with np.load(model.tokenizer_report["user"]["file"]) as z:
        np.testing.assert_array_equal(np.asarray(model.user_tokenizer.rq.codebooks), z["codebooks"])

    # memory: int16 codes for items and users + float32 codebooks, against float32 384-d vectors
    mem = model.representation_bytes()
    n_items, n_users = mem["items"], mem["users"]
    assert mem["item_bytes"] == n_items * 2 * 2 and mem["user_bytes"] == n_users * 2 * 2
    assert mem["codebook_bytes"] == 4 * 64 * k * (2 + 2)


def test_the_tokenizers_are_frozen_inside_the_ctr_model():
    pytest.importorskip("keras_hub", reason="the item text vectors are MiniLM's (the text extra, in the test extra)")
    model = _build(representation="tokens", tokenizer_seed=7).model
    names = [v.path for v in model.trainable_variables]
    assert names and not [n for n in names if "tokenizer" in n], names
    assert any("item_token_table" in n for n in names)  # codebook-initialised token embeddings train (a switch)
    frozen = _build(representation="tokens", tokenizer_seed=7, frozen_codebooks=True).model
    assert not [v.path for v in frozen.trainable_variables if "token_table" in v.path]


def test_the_content_arm_runs_minilm_inside_the_model_and_trains_its_top_layer():
    pytest.importorskip("keras_hub", reason="the content arm runs MiniLM (the text extra, in the test extra)")
    from fuxi_like.training.trainer import build_for_training

    exp = _build(representation="content", plm_train_layers=1)
    model = exp.model
    ds = exp.pipeline.dataset("train")
    build_for_training(model, ds)
    x, y = next(iter(ds))[:2]
    trainable = {v.path for v in model.trainable_variables}
    assert any("content_encoder" in p for p in trainable)  # the top transformer layer and the projection
    frozen = [v for v in model.content_encoder.encoder.backbone.weights if v.path not in trainable]
    assert frozen  # the lower layers stay frozen
    before = [np.asarray(v) for v in frozen]
    model.train_on_batch(x, y)
    for v, b in zip(frozen, before):
        np.testing.assert_array_equal(np.asarray(v), b)
    assert model.representation_bytes()["total_bytes"] == 0 and model.representation_bytes()["encoder_params"] > 1e6
