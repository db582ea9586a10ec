"""Retrieval indexes: ScaNN equals exact search when it searches everything, high recall by default,
save/load in a fresh process, cosine, and the exact fallback without ScaNN."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

from fuxi_like.retrieval import ExactIndex, ScaNNIndex, load_index, make_index
from fuxi_like.retrieval.index import scann_available
from helpers import ROOT

needs_scann = pytest.mark.skipif(not scann_available(), reason="scann is not installed (Linux only)")


def clustered(n, d=64, clusters=200, seed=0, n_queries=500):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, d)).astype(np.float32)
    x = centers[rng.integers(0, clusters, n)] + 0.3 * rng.normal(size=(n, d)).astype(np.float32)
    q = centers[rng.integers(0, clusters, n_queries)] + 0.3 * rng.normal(size=(n_queries, d)).astype(np.float32)
    return x, q


def brute(x, q, k):
    s = q @ x.T
    return np.argsort(-s, axis=1, kind="stable")[:, :k], -np.sort(-s, axis=1)[:, :k]


def test_exact_index_matches_numpy_and_keeps_ids():
    x, q = clustered(3000, d=16, n_queries=50)
    ids = np.arange(3000) * 7 + 100
    idx = ExactIndex().build(x, ids)
    got, scores = idx.search(q, 10)
    want, want_s = brute(x, q, 10)
    np.testing.assert_array_equal(got, ids[want])
    np.testing.assert_allclose(scores, want_s, rtol=1e-5)


@needs_scann
def test_scann_with_full_search_and_reordering_equals_exact():
    x, q = clustered(30_000, d=32, n_queries=200)
    n = len(x)
    idx = ScaNNIndex(num_leaves=50, num_leaves_to_search=50, reorder=n).build(x, k=10)
    got, scores = idx.search(q, 10)
    want, want_s = brute(x, q, 10)
    np.testing.assert_allclose(scores, want_s, rtol=1e-4, atol=1e-4)
    assert np.mean(got == want) > 0.999  # equal up to exact score ties


@pytest.mark.slow
@needs_scann
def test_scann_defaults_recall_on_clustered_100k():
    x, q = clustered(100_000, d=64, n_queries=1000)
    idx = make_index("auto").build(x, k=10)
    assert isinstance(idx, ScaNNIndex)
    got, _ = idx.search(q, 10)
    want, _ = brute(x, q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want)])
    assert recall >= 0.9, recall
    # hashed codes + the float vectors kept for exact reordering (measured 1.18x the raw vectors)
    assert x.nbytes <= idx.memory_bytes() < 2 * x.nbytes


@pytest.mark.parametrize("backend", ["exact", pytest.param("scann", marks=needs_scann)])
def test_cosine_metric(backend):
    x, q = clustered(25_000, d=16, n_queries=100)
    x *= np.random.default_rng(1).uniform(0.1, 10, size=(len(x), 1)).astype(np.float32)  # norms must not matter
    idx = make_index(backend, metric="cosine", num_leaves_to_search=200, reorder=25_000) if backend == "scann" \
        else make_index(backend, metric="cosine")
    idx.build(x)
    got, _ = idx.search(q, 5)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    want, _ = brute(xn, q / np.linalg.norm(q, axis=1, keepdims=True), 5)
    assert np.mean([len(set(a) & set(b)) / 5 for a, b in zip(got, want)]) > 0.99


@pytest.mark.parametrize("backend", ["exact", pytest.param("scann", marks=needs_scann)])
def test_saved_index_gives_same_topk_in_a_fresh_process(tmp_path, backend):
    x, q = clustered(40_000, d=32, n_queries=100)
    idx = make_index(backend).build(x, ids=np.arange(len(x)) + 5)
    got, scores = idx.search(q, 20)
    idx.save(tmp_path / "index")
    (tmp_path / "index").rename(tmp_path / "moved")  # an index folder may be moved or copied with its model
    np.save(tmp_path / "q.npy", q)
    code = (f"import sys, json, numpy as np; sys.path.insert(0, {str(ROOT)!r});"
            "from fuxi_like.retrieval import load_index;"
            f"i = load_index({str(tmp_path / 'moved')!r}); ids, s = i.search(np.load({str(tmp_path / 'q.npy')!r}), 20);"
            "print(json.dumps({'ids': ids.tolist(), 's': s.tolist(), 'backend': i.backend}))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["backend"] == backend
    np.testing.assert_array_equal(np.array(out["ids"]), got)
    np.testing.assert_allclose(np.array(out["s"]), scores, rtol=1e-6)


def test_fallback_to_exact_with_a_warning(monkeypatch):
    import fuxi_like.retrieval.index as mod

    monkeypatch.setattr(mod, "scann_available", lambda: False)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        idx = mod.make_index("auto")
    assert isinstance(idx, ExactIndex) and any("falling back to exact" in str(x.message) for x in w)


def test_bad_params_are_clear():
    from fuxi_like.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown key 'num_leaf' \(did you mean 'num_leaves'\?\)"):
        ScaNNIndex(num_leaf=10)
    with pytest.raises(ConfigError, match="metric must be one of"):
        ExactIndex("l2")
    with pytest.raises(ConfigError, match="no retrieval index in"):
        load_index("/nonexistent/dir")
