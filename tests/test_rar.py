"""RAR and its cross-stage data: nothing of a request's inputs comes from its own time or later,
SimHash selection, the auxiliary labels are never an input, and RAR beats its base where the
label depends on what similar users clicked."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import ROOT, make_model_folder, zoo_module

rar_seq = zoo_module("RAR").rar_seq  # RAR's recipe and cross-stage builder live in its folder
synthetic_impressions = rar_seq.synthetic_impressions
build_cross_stage, codes = rar_seq.build_cross_stage, rar_seq.codes

SHARED = ROOT.parent / "shared" / "data"


def rar_synthetic_data(tmp_path, users, items, groups, per_user, history, pool, la_size, la_hist, recall,
                       gauc=False):
    """A dataset config entry for the `rar_seq` synthetic recipe, written under tmp_path."""
    raw = tmp_path / "raw"
    cols = [{"name": ["user_id", "item_id"], "type": "categorical"},
            {"name": "hist_items", "type": "sequence", "max_len": history, "share_embedding": "item_id"},
            {"name": "recall_items", "type": "sequence", "max_len": pool, "padding": "post",
             "share_embedding": "item_id"},
            {"name": "lookalike_items", "type": "sequence", "max_len": la_size * la_hist, "padding": "post",
             "pad_token": "__pad__", "share_embedding": "item_id"},
            {"name": "recall_labels", "type": "embedding", "pretrain_dim": pool}]
    if gauc:
        cols.append({"name": "group_user", "type": "meta", "copy_from": "user_id"})
    return {"data_root": str(tmp_path / "processed"),
            **{f"{s}_data": str(raw / f"{s}.csv") for s in ("train", "valid", "test")},
            "recipe": {"name": "rar_seq", "source": "synthetic", "cutoff": 0.6, "max_history": history,
                       "pool_size": pool, "lookalike_size": la_size, "lookalike_history": la_hist,
                       "backend": "exact", "verbose": 0, "recall": recall,
                       "synthetic": {"n_users": users, "n_items": items, "n_groups": groups,
                                     "impressions_per_user": per_user}},
            "feature_cols": cols, "label_col": {"name": "label", "dtype": "float"}}


def _log(seed=0):
    imp = synthetic_impressions(n_users=300, n_items=200, n_groups=10, impressions_per_user=30, seed=seed)
    clicks = imp[imp["label"] == 1][["user", "item", "ts"]].reset_index(drop=True)
    cutoff = float(np.quantile(imp["ts"], 0.5))
    req = imp[imp["ts"] >= cutoff].sort_values("ts", kind="stable").reset_index(drop=True)
    return clicks, req, cutoff


def test_cross_stage_inputs_use_only_data_before_the_request():
    clicks, req, cutoff = _log()
    kw = dict(pool_size=20, lookalike_size=5, lookalike_history=4, history_len=8, backend="exact", verbose=0,
              recall={"epochs": 2, "batch_size": 256})
    a = build_cross_stage(clicks, req, cutoff, **kw)
    assert a["recall_train_max_ts"] < cutoff <= req["ts"].min()  # the recall stage saw only the past

    # history = the user's clicks strictly before the request (never the request's own click)
    users, items = a["users"], a["items"]
    cu, ci, ct = codes(clicks["user"], users), codes(clicks["item"], items), clicks["ts"].to_numpy()
    qu = codes(req["user"], users)
    for q in np.random.default_rng(0).choice(len(req), 150, replace=False):
        mine = (cu == qu[q]) & (ct < req["ts"][q])
        order = np.lexsort((ci[mine], ct[mine]))
        expect = ci[mine][order][-8:]
        got = a["hist"][q][a["hist"][q] > 0]
        np.testing.assert_array_equal(got, expect)
    # look-alike items are snapshot clicks (before the cutoff) of the look-alike users, never the user itself
    la_u, la_i = a["lookalike_users"], a["lookalike_items"]
    assert not np.any(la_u == qu[:, None])
    pre = set(zip(cu[ct < cutoff], ci[ct < cutoff]))
    for q in range(0, len(req), 97):
        for j in range(la_u.shape[1]):
            for it in la_i[q, j][la_i[q, j] > 0]:
                assert (la_u[q, j], it) in pre

    # changing everything at or after a time T leaves every request up to T unchanged
    rng = np.random.default_rng(1)
    for t_star in np.quantile(req["ts"], [0.2, 0.5, 0.8]):
        fut = clicks["ts"] >= t_star
        changed = clicks.copy()
        changed.loc[fut, "item"] = rng.permutation(changed.loc[fut, "item"].to_numpy())
        extra = clicks[~fut].sample(300, random_state=1).assign(ts=t_star + rng.random(300) * 0.1)
        changed = pd.concat([changed, extra], ignore_index=True)
        b = build_cross_stage(changed, req, cutoff, recall_model=a["recall_model"], vocab=(users, items), **kw)
        early = (req["ts"] <= t_star).to_numpy()
        for key in ("hist", "recall", "lookalike_users", "lookalike_items"):
            np.testing.assert_array_equal(a[key][early], b[key][early], err_msg=key)
        later = ~early
        assert any(not np.array_equal(a[k][later], b[k][later]) for k in ("hist", "recall"))  # the test can fail


def test_simhash_similarity_and_selection():
    import keras

    from helpers import zoo_module

    SimHash = zoo_module("RAR").SimHash
    rng = np.random.default_rng(0)
    d, bits = 16, 256
    sh = SimHash(bits, groups=4, seed=3)
    sh.build((None, d))
    w = np.asarray(sh.w)
    assert np.count_nonzero(w) == d * bits // 4  # block-diagonal: 4 groups hashed separately
    t = rng.standard_normal((2, d)).astype("float32")
    noise = np.array([0.0, 0.1, 0.3, 0.6, 1.0, 2.0, 4.0, 8.0], "float32")
    members = t[:, None, :] + noise[None, :, None] * rng.standard_normal((2, 8, d)).astype("float32")
    sim = np.asarray(sh(keras.ops.convert_to_tensor(t), keras.ops.convert_to_tensor(members)))
    sig = lambda x: np.sign(x @ w)  # noqa: E731
    ham = (sig(t)[:, None, :] != sig(members)).sum(-1)
    np.testing.assert_allclose(sim, bits - 2 * ham)
    assert np.all(sim[:, 0] == bits)  # identical vectors share every bit
    top3 = np.argsort(-sim, axis=1, kind="stable")[:, :3]
    assert all(set(row) <= {0, 1, 2, 3} for row in top3)  # the least perturbed members are selected


@pytest.mark.slow
def test_rar_beats_its_base_when_labels_follow_similar_users(tmp_path):
    from fuxi_like.runner import run_expid

    data = rar_synthetic_data(tmp_path, 2000, 1000, 20, 40, history=5, pool=30, la_size=10, la_hist=10,
                              recall={"epochs": 20, "batch_size": 256, "learning_rate": 3e-3}, gauc=True)
    common = {"model": "RAR", "dataset_id": "syn", "base_model": "DIN", "embedding_dim": 16,
              "dnn_hidden_units": [64, 32], "attention_units": [32], "batch_size": 256, "epochs": 12,
              "learning_rate": 1e-3, "metrics": ["AUC", "logloss", "gAUC"], "group_id": "group_user"}
    exps = {"rar": dict(common, use_rar=True, recall_top_k=10, lookalike_top_k=5, lookalike_history=10),
            "base": dict(common, use_rar=False)}
    base = {"model_root": "./ckpt/", "verbose": 0, "seed": 5, "early_stop_patience": 2}
    cfg = make_model_folder(tmp_path, {"syn": data}, exps, base=base, name="rar")
    out = {k: run_expid(cfg, k, model_dir=ROOT / "model_zoo" / "RAR") for k in exps}
    rar, plain = out["rar"]["test"]["AUC"], out["base"]["test"]["AUC"]
    assert rar > 0.8 and rar > plain + 0.03, (rar, plain)

    # the recall-item labels (future clicks) train the auxiliary head only: never an input
    from fuxi_like.data.tf_dataset import load_split

    model = out["rar"]["model"]
    cols = load_split(model.feature_map, "test", data_dir=model.feature_map.data_dir)
    x = {n: cols[n][:512] for n in model.feature_map.features}
    p1 = np.asarray(model(x, training=False))
    x["recall_labels"] = 1.0 - x["recall_labels"]
    np.testing.assert_array_equal(p1, np.asarray(model(x, training=False)))
    assert Path(model.feature_map.data_dir).exists()


@pytest.mark.skipif(not (SHARED / "taobao_userbehavior").is_dir(), reason="../shared/data/taobao_userbehavior absent")
def test_taobao_recipe_writes_time_split_requests(tmp_path):
    paths = [tmp_path / f"{s}.csv" for s in ("train", "valid", "test")]
    stats = rar_seq.make(*paths, source="taobao", source_path=SHARED / "taobao_userbehavior" / "UserBehavior_head.csv",
                         cutoff=0.5, pool_size=10, lookalike_size=3, lookalike_history=4, max_history=20,
                         backend="exact", verbose=0, recall={"epochs": 2, "batch_size": 128})
    parts = [pd.read_csv(p, dtype=str) for p in paths]
    assert all(len(p) for p in parts) and sum(map(len, parts)) == stats["requests"]
    ts = [p["ts"].astype(float) for p in parts]
    assert ts[0].max() <= ts[1].min() and ts[1].max() <= ts[2].min()  # split by time
    la = parts[2]["lookalike_items"].str.split("^")
    assert (la.map(len) == 12).all()  # fixed slots: 3 users x 4 items
    assert set(parts[0]["label"]) == {"0", "1"} and parts[0]["item_cate"].notna().all()


@pytest.mark.slow
@pytest.mark.parametrize("base", ["DCNv2", "DNN"])
def test_other_bases_train_with_and_without_rar(tmp_path, base):
    from fuxi_like.runner import run_expid

    data = rar_synthetic_data(tmp_path, 300, 200, 10, 20, history=5, pool=10, la_size=3, la_hist=4,
                              recall={"epochs": 2, "batch_size": 256})
    common = {"model": "RAR", "dataset_id": "syn", "base_model": base, "embedding_dim": 8, "dnn_hidden_units": [16],
              "batch_size": 256, "epochs": 4, "lookalike_history": 4, "recall_top_k": 5, "lookalike_top_k": 2,
              "early_stop_patience": 4}
    exps = {"rar": dict(common, use_rar=True, selection="attention"), "base": dict(common, use_rar=False)}
    cfg = make_model_folder(tmp_path, {"syn": data}, exps, base={"model_root": "./ckpt/", "verbose": 0}, name="rar")
    out = {k: run_expid(cfg, k, model_dir=ROOT / "model_zoo" / "RAR") for k in exps}
    for k in exps:
        h = out[k]["state"]["history"]
        assert np.isfinite(out[k]["test"]["logloss"]) and h[-1]["loss"] < h[0]["loss"], (k, h)
    # the RAR model has the cross-stage layers, the base does not
    n = {k: out[k]["model"].count_parameters(count_embedding=False) for k in exps}
    assert n["rar"] > n["base"]


def test_random_selection_ablation_is_fixed_per_row_at_inference(tmp_path):
    """`selection: random` draws afresh while training but evaluates the same rows the same way every time
    (a per-row hash), so its metrics reproduce (issue 20.6: it used to draw a new selection each evaluation)."""
    from fuxi_like.data.tf_dataset import InputPipeline
    from fuxi_like.runner import run_expid

    data = rar_synthetic_data(tmp_path, 300, 200, 10, 20, history=5, pool=10, la_size=3, la_hist=4,
                              recall={"epochs": 1, "batch_size": 256})
    exp = {"model": "RAR", "dataset_id": "syn", "base_model": "DNN", "selection": "random", "embedding_dim": 8,
           "dnn_hidden_units": [16], "batch_size": 256, "epochs": 1, "lookalike_history": 4, "recall_top_k": 3,
           "lookalike_top_k": 1, "co_interaction": False}
    cfg = make_model_folder(tmp_path, {"syn": data}, {"r": exp}, base={"model_root": "./ckpt/", "verbose": 0},
                            name="rar")
    model = run_expid(cfg, "r", model_dir=ROOT / "model_zoo" / "RAR")["model"]
    x, _ = next(iter(InputPipeline(model.feature_map, 512).dataset("test")))
    a, b = np.asarray(model(x, training=False)), np.asarray(model(x, training=False))
    np.testing.assert_array_equal(a, b)
    ds = InputPipeline(model.feature_map, 512).dataset("test")
    assert model.evaluate_split(ds, ["AUC", "logloss"]) == model.evaluate_split(ds, ["AUC", "logloss"])
