"""Top-k retrieval over an item-embedding matrix.

Two backends with the same API:
- `ExactIndex`: batched matmul + partial top-k (NumPy/BLAS), exact by construction;
- `ScaNNIndex`: ScaNN tree partitioning + anisotropic hashing + exact reordering.
  Parameters may be given (e.g. from YAML); unset ones get defaults chosen from
  the data size: ~sqrt(n) leaves, 1/50 of them (at least 10) searched, exact
  reordering of max(200, 4k) candidates; under 20k items it brute-forces with
  ScaNN's own scorer. (Chosen from the recall-vs-QPS curve in
  benchmark/results/retrieval.md.)

`make_index(backend="auto")` uses ScaNN where it imports (Linux) and falls back to
exact search with a warning elsewhere. Metrics: "dot" and "cosine" (cosine
normalises items and queries, then uses the dot product). `save(dir)` and
`load_index(dir)` round-trip an index next to a model; `memory_bytes()` reports
the index size (vectors, ids and ScaNN's serialized structures).
"""

import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ..errors import ConfigError, unknown_key_error
from ..io_utils import atomic_write_text, replace_dir

METRICS = ("dot", "cosine")
SCANN_KEYS = ("num_leaves", "num_leaves_to_search", "training_sample_size", "dims_per_block",
              "anisotropic_quantization_threshold", "reorder", "brute_force_below")


def _normalise(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class _Index:
    backend = None

    def __init__(self, metric="dot"):
        if metric not in METRICS:
            raise ConfigError(f"retrieval metric must be one of {METRICS}, got {metric!r}")
        self.metric = metric
        self.ids = None
        self.dim = None

    def _prep(self, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"expected a 2-D array, got shape {x.shape}")
        return _normalise(x) if self.metric == "cosine" else x

    def _set_ids(self, n, ids):
        self.ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
        if len(self.ids) != n:
            raise ValueError(f"{len(self.ids)} ids for {n} vectors")

    def _check_queries(self, q):
        q = self._prep(q)
        if q.shape[1] != self.dim:
            raise ValueError(f"queries have dim {q.shape[1]}, the index has dim {self.dim}")
        return q

    def _meta(self):
        return {"backend": self.backend, "metric": self.metric, "dim": self.dim, "size": int(len(self.ids))}

    def _save_common(self, directory):
        d = Path(directory)
        tmp = d.parent / f".{d.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        np.save(tmp / "ids.npy", self.ids)
        return d, tmp

    @staticmethod
    def _commit(d, tmp, meta):
        atomic_write_text(tmp / "index.json", json.dumps(meta, indent=1))
        replace_dir(tmp, d)


class ExactIndex(_Index):
    """Exact top-k by batched matmul and `argpartition`."""

    backend = "exact"

    def __init__(self, metric="dot", max_batch_elements=2 ** 25):
        super().__init__(metric)
        self.max_batch_elements = max_batch_elements  # score-matrix cells per query batch (memory bound)
        self.vectors = None

    def build(self, embeddings, ids=None):
        self.vectors = self._prep(embeddings)
        self.dim = self.vectors.shape[1]
        self._set_ids(len(self.vectors), ids)
        return self

    def search(self, queries, k=10):
        q = self._check_queries(queries)
        n = len(self.vectors)
        k = min(k, n)
        out_i = np.empty((len(q), k), dtype=np.int64)
        out_s = np.empty((len(q), k), dtype=np.float32)
        batch = max(1, min(1024, self.max_batch_elements // n))
        for s in range(0, len(q), batch):
            scores = q[s:s + batch] @ self.vectors.T
            part = np.argpartition(scores, n - k, axis=1)[:, n - k:]
            top = np.take_along_axis(scores, part, axis=1)
            order = np.argsort(-top, axis=1, kind="stable")
            out_i[s:s + len(part)] = self.ids[np.take_along_axis(part, order, axis=1)]
            out_s[s:s + len(part)] = np.take_along_axis(top, order, axis=1)
        return out_i, out_s

    def memory_bytes(self):
        return int(self.vectors.nbytes + self.ids.nbytes)

    def save(self, directory):
        d, tmp = self._save_common(directory)
        np.save(tmp / "vectors.npy", self.vectors)
        self._commit(d, tmp, self._meta())

    @classmethod
    def _load(cls, d, meta):
        idx = cls(meta["metric"])
        idx.vectors = np.load(d / "vectors.npy")
        idx.ids = np.load(d / "ids.npy")
        idx.dim = meta["dim"]
        return idx


class ScaNNIndex(_Index):
    """ScaNN searcher (tree + asymmetric hashing + exact reordering)."""

    backend = "scann"

    def __init__(self, metric="dot", **params):
        super().__init__(metric)
        for k in params:
            if k not in SCANN_KEYS:
                raise unknown_key_error("ScaNN index params", k, SCANN_KEYS)
        self.params = dict(params)
        self.searcher = None
        self.k_built = None

    def resolved_params(self, n, k):
        p = dict(self.params)
        p.setdefault("brute_force_below", 20_000)
        p.setdefault("num_leaves", int(max(1, round(np.sqrt(n)))))
        p.setdefault("num_leaves_to_search", int(min(p["num_leaves"], max(10, round(p["num_leaves"] / 50)))))
        p.setdefault("training_sample_size", int(min(n, 250_000)))
        p.setdefault("dims_per_block", 2)
        p.setdefault("anisotropic_quantization_threshold", 0.2)
        p.setdefault("reorder", int(max(200, 4 * k)))
        return p

    def build(self, embeddings, ids=None, k=100):
        import scann  # noqa: F401 - lazy: scann is optional (Linux x86_64 wheels only)

        x = self._prep(embeddings)
        self.dim = x.shape[1]
        self._set_ids(len(x), ids)
        p = self.resolved_params(len(x), k)
        self.resolved = p
        builder = scann.scann_ops_pybind.builder(x, k, "dot_product")
        if len(x) < p["brute_force_below"]:
            builder = builder.score_brute_force()
        else:
            builder = builder.tree(num_leaves=min(p["num_leaves"], len(x)),
                                   num_leaves_to_search=min(p["num_leaves_to_search"], p["num_leaves"]),
                                   training_sample_size=min(p["training_sample_size"], len(x)))
            builder = builder.score_ah(p["dims_per_block"],
                                       anisotropic_quantization_threshold=p["anisotropic_quantization_threshold"])
            builder = builder.reorder(min(p["reorder"], len(x)))
        self.searcher = builder.build()
        self.k_built = k
        return self

    def search(self, queries, k=10, **overrides):
        q = self._check_queries(queries)
        k = min(k, len(self.ids))
        kw = {"final_num_neighbors": k}
        if "leaves_to_search" in overrides:
            kw["leaves_to_search"] = overrides["leaves_to_search"]
        if "pre_reorder_num_neighbors" in overrides:
            kw["pre_reorder_num_neighbors"] = overrides["pre_reorder_num_neighbors"]
        pos, scores = self.searcher.search_batched(q, **kw)
        pos = np.asarray(pos, dtype=np.int64)
        return self.ids[pos], np.asarray(scores, dtype=np.float32)

    def memory_bytes(self):
        with tempfile.TemporaryDirectory() as t:
            self.searcher.serialize(t)
            return int(sum(f.stat().st_size for f in Path(t).rglob("*") if f.is_file()) + self.ids.nbytes)

    def save(self, directory):
        d, tmp = self._save_common(directory)
        (tmp / "scann").mkdir()
        self.searcher.serialize(str(tmp / "scann"))
        # ScaNN records absolute asset paths: point them at the final folder before the rename
        for f in (tmp / "scann").glob("*.pbtxt"):
            f.write_text(f.read_text().replace(str(tmp / "scann"), str(d.resolve() / "scann")))
        self._commit(d, tmp, dict(self._meta(), params=self.resolved, k=self.k_built))

    @classmethod
    def _load(cls, d, meta):
        import scann  # noqa: F401 - lazy: scann is optional (Linux x86_64 wheels only)

        idx = cls(meta["metric"])
        assets = d / "scann" / "scann_assets.pbtxt"
        if assets.is_file():  # the folder may have been moved since it was saved
            text = assets.read_text()

            for old in set(re.findall(r'asset_path: "([^"]+)/[^/"]+"', text)):
                text = text.replace(old, str(d.resolve() / "scann"))
            assets.write_text(text)
        idx.searcher = scann.scann_ops_pybind.load_searcher(str(d / "scann"))
        idx.ids = np.load(d / "ids.npy")
        idx.dim = meta["dim"]
        idx.resolved = meta.get("params", {})
        idx.k_built = meta.get("k")
        return idx


def scann_available():
    try:
        import scann  # noqa: F401 - lazy: scann is optional (Linux x86_64 wheels only)
    except ImportError:
        return False
    return True


def make_index(backend="auto", metric="dot", **params):
    """`backend`: auto (ScaNN if importable, else exact with a warning) | scann | exact."""
    if backend not in ("auto", "scann", "exact"):
        raise ConfigError(f"retrieval backend must be auto, scann or exact, got {backend!r}")
    if backend == "exact":
        return ExactIndex(metric)
    if not scann_available():
        warnings.warn("ScaNN is not available on this platform; falling back to exact search", stacklevel=2)
        return ExactIndex(metric)
    return ScaNNIndex(metric, **params)


def load_index(directory):
    d = Path(directory)
    meta_path = d / "index.json"
    if not meta_path.is_file():
        raise ConfigError(f"no retrieval index in {d} (index.json missing)")
    meta = json.loads(meta_path.read_text())
    cls = {"exact": ExactIndex, "scann": ScaNNIndex}[meta["backend"]]
    return cls._load(d, meta)
