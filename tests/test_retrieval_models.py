"""Retrieval models: leave-one-out splits, softmax losses, full-ranking evaluation through the index,
learning on order-dependent data, serving from a fresh process, recall pools."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from fuxi_like.datasets.seq_loo import loo_frames, read_movielens, read_user_items
from fuxi_like.errors import ConfigError
from fuxi_like.retrieval.evaluation import exclude_seen, metrics_from_ranks, sampled_ranks, target_ranks
from helpers import ROOT, SHARED, make_model_folder

FEATURES = [
    {"name": "user_id", "type": "categorical", "source": "user"},
    {"name": "item_id", "type": "categorical", "source": "item"},
    {"name": "hist_items", "type": "sequence", "max_len": 20, "share_embedding": "item_id", "source": "user"},
]


def seq_dataset(tmp_path, name, train_rows="all", n_users=1500, n_items=300, negatives=0, seed=0):
    raw = tmp_path / "raw" / name
    feats = list(FEATURES)
    if negatives:
        feats.append({"name": "neg_items", "type": "sequence", "max_len": negatives, "share_embedding": "item_id"})
    return {
        "data_root": str(tmp_path / "processed"),
        "train_data": str(raw / "train.csv"), "valid_data": str(raw / "valid.csv"),
        "test_data": str(raw / "test.csv"),
        "recipe": {"name": "seq_loo", "source": "synthetic", "train_rows": train_rows, "max_history": 20,
                   "num_eval_negatives": negatives,
                   "synthetic": {"n_users": n_users, "n_items": n_items, "seed": seed}},
        "feature_cols": feats, "label_col": {"name": "label", "dtype": "float"},
    }


BASE = {"model_root": "./ckpt/", "verbose": 0, "metrics": ["NDCG@10", "HR@10", "MRR"], "monitor": "NDCG@10",
        "early_stop_patience": 5, "reduce_lr_on_plateau": False, "max_gradient_norm": None, "seed": 7}


# ------------------------------------------------------------------ recipe
def test_leave_one_out_split_is_chronological_and_leak_free(tmp_path):
    src = tmp_path / "seqs.txt"
    src.write_text("u1 a b c d e\nu2 x y\nu3 p q r\n")
    seqs = read_user_items(src)
    train, valid, test = loo_frames(seqs, max_history=3, train_rows="all")
    # u2 has 2 items: dropped; u3 has one training item: no training row, still evaluated
    assert list(valid["user_id"]) == ["u1", "u3"]
    v = valid.set_index("user_id")
    t = test.set_index("user_id")
    assert v.loc["u1", "item_id"] == "d" and v.loc["u1", "hist_items"] == "a^b^c"
    assert t.loc["u1", "item_id"] == "e" and t.loc["u1", "hist_items"] == "b^c^d"  # last 3, valid item included
    assert list(zip(train["item_id"], train["hist_items"])) == [("b", "a"), ("c", "a^b")]
    # no training row ever shows a valid/test target at or after its position
    for u, row in v.iterrows():
        tr = train[train["user_id"] == u]
        assert row["item_id"] not in set(tr["item_id"]) | {i for h in tr["hist_items"] for i in h.split("^")}
    train_last, _, _ = loo_frames(seqs, train_rows="last")
    assert list(zip(train_last["item_id"], train_last["hist_items"])) == [("c", "a^b")]


def test_movielens_sequences_follow_timestamps(tmp_path):
    p = tmp_path / "ratings.csv"
    pd.DataFrame({"userId": [1, 1, 1, 2], "movieId": [10, 20, 30, 5], "rating": [4.0, 2.0, 5.0, 3.0],
                  "timestamp": [300, 100, 200, 1]}).to_csv(p, index=False)
    assert read_movielens(p) == {"1": ["20", "30", "10"], "2": ["5"]}
    assert read_movielens(p, min_rating=4) == {"1": ["30", "10"]}
    bad = tmp_path / "bad.csv"
    bad.write_text("userId,movieId,rating,timestamp\n1,10,4.0,300\n1,20,four,100\n")
    from fuxi_like.errors import DataError

    with pytest.raises(DataError, match=r"bad.csv: column 'rating' is not numeric at data row 2"):
        read_movielens(bad)


@pytest.mark.skipif(not (SHARED / "amazon_seq" / "Beauty.txt").is_file(), reason="../shared/data/amazon_seq absent")
def test_beauty_leave_one_out_counts():
    seqs = read_user_items(SHARED / "amazon_seq" / "Beauty.txt")
    train, valid, test = loo_frames(seqs, max_history=50, train_rows="all")
    n_inter = sum(len(s) for s in seqs.values())
    assert len(valid) == len(test) == 22363
    assert len(train) == n_inter - 3 * 22363  # every training position but each user's first item
    assert (test["hist_items"].str.split("^").str[-1] == valid["item_id"]).all()


# ------------------------------------------------------------- evaluation
def test_exclude_seen_and_rank_metrics_match_a_direct_computation():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(200, 60))
    seen = np.where(rng.random((200, 8)) < 0.7, rng.integers(1, 60, (200, 8)), 0)
    target = rng.integers(1, 60, 200)
    order = np.argsort(-scores, axis=1)
    ids = order  # item id = column
    kept = exclude_seen(ids, seen, 20)
    for r in range(200):
        want = [i for i in order[r] if i not in set(seen[r])][:20]
        assert kept[r].tolist() == want
    ranks = target_ranks(kept, target)
    m = metrics_from_ranks(ranks, ["HR@10", "NDCG@10", "MRR@20"])
    hr, ndcg, mrr = [], [], []
    for r in range(200):
        lst = kept[r].tolist()
        pos = lst.index(target[r]) + 1 if target[r] in lst else None
        hr.append(pos is not None and pos <= 10)
        ndcg.append(1 / np.log2(pos + 1) if pos and pos <= 10 else 0.0)
        mrr.append(1 / pos if pos else 0.0)
    assert m["HR@10"] == pytest.approx(np.mean(hr))
    assert m["NDCG@10"] == pytest.approx(np.mean(ndcg))
    assert m["MRR@20"] == pytest.approx(np.mean(mrr))
    # a constant scorer gets no credit under the sampled protocol (ties count against the target)
    assert sampled_ranks(np.zeros(3), np.zeros((3, 99))).tolist() == [100, 100, 100]


def _train(tmp_path, model, dataset, exp, name="m", datasets=None):
    from fuxi_like.runner import run_expid

    cfg = make_model_folder(tmp_path, datasets or {dataset: seq_dataset(tmp_path, dataset, **exp.pop("_data", {}))},
                            {"exp": dict({"model": model, "dataset_id": dataset}, **exp)}, base=BASE, name=name)
    return run_expid(cfg, "exp", model_dir=ROOT / "model_zoo" / model)


def test_index_evaluation_equals_scoring_every_item(tmp_path):
    """Metrics through the index = ranks computed by scoring the whole catalogue."""
    out = _train(tmp_path, "YoutubeDNN", "syn", {"embedding_dim": 16, "query_fields": ["hist_items"],
                                                 "hidden_units": [32], "batch_size": 256, "epochs": 1,
                                                 "num_negatives": 50})
    from fuxi_like.data.tf_dataset import InputPipeline

    model = out["model"]
    ds = InputPipeline(model.feature_map, 512).dataset("test")
    via_index = model.evaluate_split(ds, ["HR@10", "NDCG@10", "MRR"])
    data = model.embed_queries(ds)
    ids, vecs = model.embed_catalogue()
    s = data["query"] @ vecs.T
    hist = data["history"]
    s[np.any(ids[None, :, None] == hist[:, None, :], axis=2)] = -np.inf
    tgt_col = data["target"].reshape(-1) - 1
    tgt = s[np.arange(len(s)), tgt_col]
    rank = 1 + (s > tgt[:, None]).sum(1)
    rank = np.where(np.isfinite(tgt), rank, 0)
    direct = metrics_from_ranks(np.where(rank <= 100, rank, 0), ["HR@10", "NDCG@10", "MRR"])
    for k in via_index:
        assert via_index[k] == pytest.approx(direct[k], abs=2e-3), k  # float ties may swap neighbours


# ---------------------------------------------------------------- losses
def test_inbatch_softmax_masks_accidental_hits_and_corrects_logq(tmp_path):
    """compute_loss equals a NumPy softmax with logQ correction and duplicate targets masked."""
    import keras

    out = _train(tmp_path, "DSSM", "syn", {"embedding_dim": 8, "query_fields": ["hist_items"],
                                           "query_hidden_units": [8], "item_hidden_units": [8], "epochs": 1,
                                           "batch_size": 512, "temperature": 0.5})
    m = out["model"]
    x = {"user_id": np.array([1, 2, 3, 4]), "item_id": np.array([5, 7, 5, 9]),
         "hist_items": np.tile(np.arange(1, 21), (4, 1)).astype("int32")}
    q = np.asarray(m(x))
    loss = float(m.compute_loss(x, None, keras.ops.convert_to_tensor(q)))
    c = np.asarray(m.item_vectors(x["item_id"]))
    logp = np.asarray(m.item_log_prob)[x["item_id"]]
    logits = q @ c.T / 0.5 - logp[None, :]
    same = x["item_id"][:, None] == x["item_id"][None, :]
    logits[same & ~np.eye(4, dtype=bool)] = -np.inf
    want = np.mean(-np.diag(logits) + np.log(np.exp(logits).sum(1)))
    assert loss == pytest.approx(want, rel=1e-4)
    # hard-negative mining keeps only the hardest negative of each row (keras-rs HardNegativeMining)
    cfg = dict(m.get_config(), num_hard_negatives=1)
    m1 = type(m).from_config(cfg)
    m1(x)
    m1.build_loss_layers(x)
    m1.set_weights(m.get_weights())
    loss1 = float(m1.compute_loss(x, None, keras.ops.convert_to_tensor(q)))
    neg = np.where(np.eye(4, dtype=bool), -np.inf, logits).max(1)
    want1 = np.mean(-np.diag(logits) + np.log(np.exp(np.diag(logits)) + np.exp(neg)))
    assert loss1 == pytest.approx(want1, rel=1e-4)


@pytest.mark.parametrize("sampler", ["uniform", "popularity"])
def test_sampled_softmax_corrects_by_the_sampler_that_drew_the_negatives(tmp_path, sampler):
    """logQ is the log probability of the sampler used: the popularity for `popularity`, none for `uniform`
    (a constant log(1/N) changes no softmax; subtracting the popularity there was a bug, issue 20)."""
    import keras

    out = _train(tmp_path, "DSSM", "syn", {"embedding_dim": 8, "query_fields": ["hist_items"], "softmax": "sampled",
                                           "negative_sampler": sampler, "num_negatives": 6, "query_hidden_units": [8],
                                           "item_hidden_units": [8], "epochs": 1, "batch_size": 512,
                                           "temperature": 0.5})
    m = out["model"]
    neg_ids = np.array([3, 5, 7, 13, 21, 34], dtype="int32")
    m._sample_negatives = lambda: keras.ops.convert_to_tensor(neg_ids)
    x = {"user_id": np.array([1, 2, 3, 4]), "item_id": np.array([5, 7, 9, 11]),
         "hist_items": np.tile(np.arange(1, 21), (4, 1)).astype("int32")}
    q = np.asarray(m(x))
    loss = float(m.compute_loss(x, None, keras.ops.convert_to_tensor(q)))
    logp = np.asarray(m.item_log_prob)
    assert np.ptp(logp[1:-1]) > 0.5  # popularity differs between items: the two samplers must differ
    corr = (lambda ids: logp[ids]) if sampler == "popularity" else (lambda ids: np.zeros(len(ids)))
    pos = np.sum(q * np.asarray(m.item_vectors(x["item_id"])), 1) / 0.5 - corr(x["item_id"])
    neg = q @ np.asarray(m.item_vectors(neg_ids)).T / 0.5 - corr(neg_ids)[None, :]
    neg[x["item_id"][:, None] == neg_ids[None, :]] = -np.inf  # accidental hits (rows 2 and 3)
    want = np.mean(np.log(np.exp(pos) + np.exp(neg).sum(1)) - pos)
    assert loss == pytest.approx(want, rel=1e-4)


def test_bad_retrieval_settings_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="AUC"):
        _train(tmp_path, "SASRec", "syn", {"metrics": ["AUC"], "monitor": "AUC", "epochs": 1})
    with pytest.raises(ConfigError, match="sequence_loss"):
        _train(tmp_path, "SASRec", "syn", {"softmax": "inbatch", "epochs": 1}, name="m2")


# --------------------------------------------------------------- learning
@pytest.mark.slow
def test_sasrec_learns_order_and_beats_mean_pooling(tmp_path):
    """Markov-chain data: the next item depends on the last one. SASRec (causal attention)
    must reach a high HR@10 and clearly beat YoutubeDNN's order-free mean pooling."""
    datasets = {"seq": seq_dataset(tmp_path, "seq", "last"), "rows": seq_dataset(tmp_path, "rows", "all")}
    sas = _train(tmp_path, "SASRec", "seq", {"embedding_dim": 32, "num_blocks": 1, "attention_dropout": 0.1,
                                             "num_negatives": 100, "batch_size": 128, "epochs": 8,
                                             "learning_rate": 3e-3}, name="a", datasets=datasets)
    ytb = _train(tmp_path, "YoutubeDNN", "rows", {"embedding_dim": 32, "query_fields": ["hist_items"],
                                                  "hidden_units": [64], "num_negatives": 100, "batch_size": 256,
                                                  "epochs": 8, "learning_rate": 3e-3}, name="b", datasets=datasets)
    # popularity baseline on the same test rows
    from fuxi_like.data.tf_dataset import load_split

    fmap = sas["model"].feature_map
    tr, te = load_split(fmap, "train"), load_split(fmap, "test")
    pop = np.argsort(-np.bincount(np.concatenate([tr["hist_items"].ravel(), tr["item_id"]]), minlength=400)[1:])[:10] + 1
    pop_hr = np.mean([t in pop for t in te["item_id"]])
    hr_s, hr_y = sas["test"]["HR@10"], ytb["test"]["HR@10"]
    assert hr_s > 0.4, sas["test"]
    assert hr_s > hr_y + 0.15 and hr_s > 3 * pop_hr, (hr_s, hr_y, pop_hr)


def test_sampled_negatives_protocol(tmp_path):
    out = _train(tmp_path, "SASRec", "neg", {"embedding_dim": 16, "num_blocks": 1, "num_negatives": 50,
                                             "batch_size": 128, "epochs": 3, "learning_rate": 3e-3,
                                             "eval_protocol": "sampled",
                                             "_data": {"train_rows": "last", "negatives": 99}})
    assert out["test"]["HR@10"] > 0.3  # chance: 10 / 100


# ------------------------------------------------------------ serving
def test_saved_retriever_returns_same_topk_in_fresh_process(tmp_path):
    from fuxi_like.data.tf_dataset import load_split
    from fuxi_like.retrieval import Retriever, save_retriever

    out = _train(tmp_path, "GRU4Rec", "syn", {"embedding_dim": 16, "hidden_units": 16, "num_negatives": 50,
                                              "batch_size": 128, "epochs": 1,
                                              "_data": {"train_rows": "last"}})
    model = out["model"]
    index = model.build_index(backend="auto")
    cols = load_split(model.feature_map, "test")
    inputs = {n: cols[n][:300] for n in model.feature_map.features}
    ids, scores = Retriever(model, index).search(inputs, k=20)
    save_retriever(model, index, tmp_path / "served")
    np.savez(tmp_path / "inputs.npz", **inputs)
    code = f"""
import json, sys, numpy as np
sys.path.insert(0, {str(ROOT)!r})
from fuxi_like.experiment import load_model_module
load_model_module({str(ROOT / 'model_zoo' / 'GRU4Rec')!r})
from fuxi_like.retrieval import load_retriever
r = load_retriever({str(tmp_path / 'served')!r})
inputs = dict(np.load({str(tmp_path / 'inputs.npz')!r}))
ids, scores = r.search(inputs, k=20)
np.savez({str(tmp_path / 'out.npz')!r}, ids=ids, scores=scores)
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, timeout=300)
    got = np.load(tmp_path / "out.npz")
    np.testing.assert_array_equal(got["ids"], ids)
    np.testing.assert_allclose(got["scores"], scores, rtol=1e-5)
    assert json.loads((tmp_path / "served" / "retriever.json").read_text())["model"] == "GRU4Rec"


def test_recall_pools_written_as_dataset(tmp_path):
    from fuxi_like.retrieval import write_recall_dataset

    out = _train(tmp_path, "SASRec", "syn", {"embedding_dim": 16, "num_blocks": 1, "num_negatives": 50,
                                             "batch_size": 128, "epochs": 2, "learning_rate": 3e-3,
                                             "_data": {"train_rows": "last"}})
    model, data_dir = out["model"], out["data_dir"]
    pool = write_recall_dataset(model, data_dir, tmp_path / "pool.csv", top_n=30, layout="pool")
    cand = write_recall_dataset(model, data_dir, tmp_path / "cand.csv", top_n=30, layout="candidates")
    raw_test = pd.read_csv(tmp_path / "raw" / "syn" / "test.csv", dtype=str)
    back = pd.read_csv(tmp_path / "pool.csv", dtype=str)
    assert list(back["user_id"]) == list(raw_test["user_id"]) and list(back["item_id"]) == list(raw_test["item_id"])
    lists = back["recall_items"].str.split("^")
    assert (lists.str.len() == 30).all()
    hist = raw_test["hist_items"].str.split("^")
    assert not any(set(a) & set(h) for a, h in zip(lists, hist))  # history removed, as in evaluation
    hit_rate = np.mean([t in lst for t, lst in zip(raw_test["item_id"], lists)])
    assert cand["label"].sum() == round(hit_rate * len(raw_test))
    # the pools agree with the model's own evaluation (Recall@30 = share of targets in the pool)
    from fuxi_like.data.tf_dataset import InputPipeline

    ev = model.evaluate_split(InputPipeline(model.feature_map, 512).dataset("test"), ["Recall@30"])
    assert ev["Recall@30"] == pytest.approx(hit_rate)
    assert len(pool) == len(raw_test)


def test_dataset_cli_runs_sequence_recipe_with_a_source_path(tmp_path):
    from fuxi_like.cli import main

    src = tmp_path / "seqs.txt"
    src.write_text("1 a b c d\n2 e f g\n")
    assert main(["dataset", "seq_loo", "--out_dir", str(tmp_path / "out"), "--param", f"source_path={src}",
                 "--param", "train_rows=last"]) == 0
    test = pd.read_csv(tmp_path / "out" / "test.csv", dtype=str)
    assert list(test["item_id"]) == ["d", "g"] and list(test["hist_items"]) == ["a^b^c", "e^f"]
