"""RAT and sample retrieval: exact top-K, no self/same-fold retrieval, masking of empty slots,
and RAT beating a non-retrieval DNN where labels are copied from near-duplicate rows."""

import numpy as np
import pandas as pd
import pytest

from helpers import ROOT, make_model_folder, write_csv, zoo_module

_retrieval = zoo_module("RAT").sample_retrieval  # RAT's own code, in its folder
SampleRetriever, brute_force, cached_neighbors = (_retrieval.SampleRetriever, _retrieval.brute_force,
                                                  _retrieval.cached_neighbors)

FIELDS = ["f0", "f1", "f2", "f3", "f4", "f5"]


def neardup_frame(n_proto=1500, per_proto=8, vocab=60, noise=0.05, seed=0):
    """Rows are prototypes with one field perturbed; label = the prototype's label (5% flipped).
    Single field values are shared by many prototypes with random labels, so the label is
    a high-order function of the fields, but near-duplicate rows share it."""
    rng = np.random.default_rng(seed)
    proto = rng.integers(1, vocab + 1, size=(n_proto, len(FIELDS)))
    plabel = rng.integers(0, 2, n_proto)
    pid = np.repeat(np.arange(n_proto), per_proto)
    x = proto[pid].copy()
    col = rng.integers(0, len(FIELDS), len(pid))
    x[np.arange(len(pid)), col] = rng.integers(1, vocab + 1, len(pid))
    y = np.where(rng.random(len(pid)) < noise, 1 - plabel[pid], plabel[pid])
    df = pd.DataFrame(x, columns=FIELDS).astype(str)
    df.insert(0, "label", y)
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def neardup_dataset(tmp_path, **kw):
    df = neardup_frame(**kw)
    n = len(df)
    raw = tmp_path / "raw"
    paths = [write_csv(raw / "train.csv", df.iloc[: int(0.7 * n)]),
             write_csv(raw / "valid.csv", df.iloc[int(0.7 * n): int(0.85 * n)]),
             write_csv(raw / "test.csv", df.iloc[int(0.85 * n):])]
    return {"data_root": str(tmp_path / "processed"), "train_data": paths[0], "valid_data": paths[1],
            "test_data": paths[2], "feature_cols": [{"name": FIELDS, "type": "categorical"}],
            "label_col": {"name": "label", "dtype": "float"}}


def test_sample_retrieval_equals_brute_force_in_every_regime():
    rng = np.random.default_rng(0)
    n = 2000
    pool = {"u": rng.integers(1, 300, n), "i": rng.zipf(1.5, n) % 400 + 1, "c": rng.integers(1, 4, n),
            "d": rng.integers(1, 8, n)}
    q = {k: np.concatenate([v[:150], rng.integers(1, 600, 30)]) for k, v in pool.items()}
    fold = np.arange(n) * 10 // n
    for caps in ((3,), (40,), (10_000,), (3, (3, 40), (40, 400))):  # dense, mixed, candidates, pairs
        r = SampleRetriever(pool, list(pool), k=5, seed=1, caps=caps)
        idx, sc = r.query(q)
        bi, bs = brute_force(pool, q, list(pool), 5, r.tiebreak)
        np.testing.assert_array_equal(idx, bi)
        np.testing.assert_allclose(sc, bs, rtol=1e-6)
        idx, sc = r.query_pool_kfold(10)
        bi, bs = brute_force(pool, pool, list(pool), 5, r.tiebreak, fold, fold)
        np.testing.assert_array_equal(idx, bi)
        # training rows never retrieve themselves or a row of their own fold
        rows = np.repeat(np.arange(n), 5).reshape(n, 5)
        assert not np.any((idx >= 0) & (idx == rows))
        assert not np.any((idx >= 0) & (fold[np.maximum(idx, 0)] == fold[rows]))


def _run(tmp_path, exps, data):
    from fuxi_like.runner import run_expid

    base = {"model_root": "./ckpt/", "verbose": 0, "seed": 5, "early_stop_patience": 2}
    cfg = make_model_folder(tmp_path, {"nd": data}, {k: dict(v, dataset_id="nd") for k, v in exps.items()},
                            base=base, name="rat")
    return {k: run_expid(cfg, k, model_dir=ROOT / "model_zoo" / v["model"]) for k, v in exps.items()}


@pytest.mark.slow
def test_rat_copies_labels_from_near_duplicates_and_masking_is_local(tmp_path):
    data = neardup_dataset(tmp_path)
    small = {"embedding_dim": 8, "batch_size": 256, "epochs": 6, "learning_rate": 2e-3}
    out = _run(tmp_path, {
        "rat": dict(small, model="RAT", topk=5, depth=1, num_heads=2, dim_head=8, scale_dim=2,
                    dnn_hidden_units=[64, 32]),
        "dnn": dict(small, model="DNN", hidden_units=[128, 64]),
    }, data)
    rat, dnn = out["rat"]["test"]["AUC"], out["dnn"]["test"]["AUC"]
    assert rat > 0.8 and rat > dnn + 0.1, (rat, dnn)

    # the cached neighbours: no training row retrieved itself or its own fold
    model = out["rat"]["model"]
    nb = cached_neighbors(model.feature_map, FIELDS, k=5, num_folds=10)
    idx = nb["train"][0]
    n = len(idx)
    fold = np.arange(n) * 10 // n
    rows = np.arange(n)[:, None]
    assert not np.any((idx >= 0) & ((idx == rows) | (fold[np.maximum(idx, 0)] == fold[rows])))

    # masking empty slots changes the output only for rows that have empty slots
    from fuxi_like.data.tf_dataset import InputPipeline

    pipe = InputPipeline(model.feature_map, 4096, augment=model.extra_inputs())
    x, _ = next(iter(pipe.dataset("test")))
    x = {k: np.asarray(v) for k, v in x.items()}
    m = x["ret_mask"].copy()
    m[::3, 3:] = 0.0  # empty the last two slots of every third row
    masked = np.asarray(model(dict(x, ret_mask=m), training=False)).ravel()
    full = np.asarray(model(dict(x, ret_mask=np.ones_like(m)), training=False)).ravel()
    has_empty = (m == 0).any(1)
    np.testing.assert_allclose(masked[~has_empty], full[~has_empty], rtol=1e-5, atol=1e-6)
    assert np.abs(masked[has_empty] - full[has_empty]).max() > 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["joint", "encoders", "parallel"])
def test_rat_variants_train(tmp_path, variant):
    data = neardup_dataset(tmp_path, n_proto=300)
    out = _run(tmp_path, {"v": {"model": "RAT", "variant": variant, "embedding_dim": 8, "topk": 3, "depth": 1,
                                "num_heads": 2, "dim_head": 8, "scale_dim": 2, "dnn_hidden_units": [32],
                                "batch_size": 256, "epochs": 3, "learning_rate": 3e-3}}, data)
    assert out["v"]["test"]["AUC"] > 0.6
