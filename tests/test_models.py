"""Every zoo model learns; DIN's attention beats pooling where the label needs it."""

import numpy as np
import pytest
from keras import ops

import fuxi_like
from fuxi_like.layers import FactorizationMachine
from helpers import ROOT, SHARED, make_model_folder, synthetic_dataset, zoo_module

MODELS = ("LR", "DNN", "DeepFM", "DCNv2", "DIN")


def test_fm_equals_explicit_pairwise_sum():
    v = np.random.default_rng(0).normal(size=(3, 5, 4)).astype("float32")
    expected = sum((v[:, i] * v[:, j]).sum(-1) for i in range(5) for j in range(i + 1, 5))
    got = ops.convert_to_numpy(FactorizationMachine()(v))[:, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.fixture(scope="module")
def learn_folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("learn")
    ds = synthetic_dataset(tmp, n_rows=10000, seed=5, seq_weight=3.0, interaction=0.0, first_order=0.3)
    common = {"dataset_id": "syn", "embedding_dim": 8, "batch_size": 256, "epochs": 4, "learning_rate": 3e-3,
              "early_stop_patience": 1, "metrics": ["AUC", "logloss"]}
    exps = {"LR": dict(common, model="LR", learning_rate=1e-2),
            "DNN": dict(common, model="DNN", hidden_units=[64, 32]),
            "DeepFM": dict(common, model="DeepFM", hidden_units=[64, 32]),
            "DCNv2": dict(common, model="DCNv2", parallel_dnn_hidden_units=[64, 32], num_cross_layers=2),
            "DIN": dict(common, model="DIN", din_target_field=["item_id", "item_cate"],
                        din_sequence_field=["hist_items", "hist_cates"], attention_units=[32],
                        dnn_hidden_units=[64, 32])}
    return make_model_folder(tmp, {"syn": ds}, exps)


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_model_learns_on_synthetic_signal(learn_folder, model):
    out = fuxi_like.run_expid(learn_folder, model, model_modules=[zoo_module(model)])
    # measured here: 0.65-0.70 on this data; 0.5 is chance
    assert out["test"]["AUC"] > 0.63, out["test"]
    assert out["test"]["logloss"] < 0.62


@pytest.mark.slow
def test_din_beats_dnn_when_label_needs_target_attention(tmp_path):
    # label = whether the target's category is among the history's (40 categories, 8 per history)
    ds = synthetic_dataset(tmp_path, n_rows=20000, seed=5, seq_weight=3.0, interaction=0.0, first_order=0.3,
                           n_cates=40, hist_cates_per_row=8)
    common = {"dataset_id": "syn", "embedding_dim": 8, "batch_size": 256, "epochs": 8, "learning_rate": 1e-2,
              "early_stop_patience": 2, "use_features": ["item_cate", "hist_cates"]}
    exps = {"DIN": dict(common, model="DIN", din_target_field="item_cate", din_sequence_field="hist_cates",
                        attention_units=[32], dnn_hidden_units=[64, 32]),
            "DNN": dict(common, model="DNN", hidden_units=[64, 32])}
    cfg = make_model_folder(tmp_path, {"syn": ds}, exps)
    mods = [zoo_module("DIN"), zoo_module("DNN")]
    din = fuxi_like.run_expid(cfg, "DIN", model_modules=mods)["test"]["AUC"]
    dnn = fuxi_like.run_expid(cfg, "DNN", model_modules=mods)["test"]["AUC"]
    # measured here: DIN 0.615, DNN 0.542
    assert din > 0.58 and din - dnn > 0.04, (din, dnn)


@pytest.mark.skipif(not (SHARED / "taobao_ad_tiny").is_dir(), reason="../shared/data/taobao_ad_tiny not present")
def test_din_on_taobao_tiny_with_shared_and_pretrained_embeddings(tmp_path):
    import shutil

    folder = tmp_path / "zoo" / "DIN"
    shutil.copytree(zoo_module("DIN").__path__[0] + "/..", folder,
                    ignore=shutil.ignore_patterns("checkpoints", "results.csv", "__pycache__"))
    # a registry beside the copy (tmp/datasets, found walking up from the folder) whose taobao_tiny
    # points at the real shared data; registry paths are relative to the folder holding datasets/
    text = (ROOT / "datasets" / "taobao_tiny.yaml").read_text()
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "taobao_tiny.yaml").write_text(text.replace("../shared/data", str(SHARED)))
    out = fuxi_like.run_expid(folder / "config", "DIN_taobao_tiny")
    model = out["model"]
    fmap = model.feature_map
    assert fmap.features["click_sequence"]["share_embedding"] == "adgroup_id"
    pre = np.load(f"{out['data_dir']}/pretrained_userid.npy")
    table = model.embedding.pretrained_tables["userid"]
    assert not table.trainable
    np.testing.assert_array_equal(table.embeddings.numpy(), pre)  # frozen: unchanged by training
    assert np.abs(pre).sum() > 0 and np.isfinite(out["test"]["AUC"])


@pytest.mark.parametrize("usage,freeze", [("init", True), ("init", False), ("sum", True), ("concat", False)])
def test_pretrained_usage_modes_train_and_freeze(tmp_path, usage, freeze):
    rng = np.random.default_rng(0)
    import pandas as pd

    n = 600
    users = rng.integers(0, 30, n)
    vecs = rng.normal(size=(30, 4)).astype("float32")
    y = (vecs[users, 0] > 0).astype(int)  # label readable from the pretrained vector
    for s, sl in (("train", slice(0, 500)), ("valid", slice(500, 600))):
        pd.DataFrame({"y": y[sl], "u": users[sl]}).to_csv(tmp_path / f"{s}.csv", index=False)
    np.savez(tmp_path / "u.npz", key=np.arange(30), value=vecs)
    ds = {"data_root": str(tmp_path / "p"), "train_data": str(tmp_path / "train.csv"),
          "valid_data": str(tmp_path / "valid.csv"), "label_col": {"name": "y"},
          "feature_cols": [{"name": "u", "type": "categorical", "pretrained_emb": str(tmp_path / "u.npz"),
                            "pretrain_usage": usage, "freeze_emb": freeze, "embedding_dim": 8}]}
    cfg = make_model_folder(tmp_path, {"d": ds}, {"E": {"model": "DNN", "dataset_id": "d", "hidden_units": [16],
                                                        "epochs": 3, "batch_size": 64, "learning_rate": 1e-2}})
    out = fuxi_like.run_expid(cfg, "E", model_modules=[zoo_module("DNN")])
    model, data_dir = out["model"], out["data_dir"]
    table = model.embedding.pretrained_tables["u"].embeddings.numpy()
    pre = np.load(f"{data_dir}/pretrained_u.npy")
    if freeze:
        np.testing.assert_array_equal(table, pre)
    else:
        assert not np.allclose(table, pre)
    assert ("u" in model.embedding.offsets) == (usage != "init")  # sum/concat add an id table
    assert out["valid"]["AUC"] > 0.9, out["valid"]
