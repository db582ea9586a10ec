"""Sample retrieval for retrieval-augmented CTR models (RAT, RIM-style): for every row, the
top-K most similar training rows by IDF-weighted exact matching over categorical fields.

score(q, d) = sum_f 1[q_f == d_f] * IDF_f(q_f),  IDF_f(v) = log(N / df_f(v))  (N = pool size)

as in RAT's official retrieval ("BM25" with one value per field, so no term-frequency part).
Rows with score 0 are never returned: such slots are empty (index -1). Scores are compared at
1e-6 resolution and ties broken by a seeded random order of the pool rows (the official code
leaves ties to `torch.topk`).

Training rows query the training set split into `num_folds` contiguous folds: a row only
retrieves rows of other folds, so it never sees itself or a row whose label it could copy
from its own fold. Valid and test rows query the whole training set.

Exact and vectorised, without a loop over rows (`SampleRetriever.query`):
1. per field, an inverted index (CSR posting lists) of the pool's values;
2. for each query, candidates are the rows in the posting lists of its *rare* values
   (df <= cap); every candidate pair is scored over all fields at once;
3. a row outside the candidates can only match the query's common values, so its score is at
   most R = the sum of their IDFs; a query whose K-th candidate scores above R is exact;
4. queries where that bound does not hold are retried reading, with up to 6 fields, also the
   posting lists of value *pairs* (rows sharing two of the query's frequent values: a row
   outside them holds at most one value of each such pair, which tightens the bound), then
   with larger caps (phases (128, -), (128, pairs <= 4096), (4096, pairs <= 65536));
   queries still unproven are scored against the whole pool (dense, chunked), which is
   exact by construction.
"""

import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from fuxi_like.data.tf_dataset import load_split
from fuxi_like.errors import ConfigError
from fuxi_like.io_utils import file_lock, stable_hash

log = logging.getLogger("fuxi_like")


SCALE = 1e6  # scores are compared at 1e-6 resolution, so float summation order never reorders ties


def sort_key(score, tiebreak, n):
    """int64 key, larger = better: quantised score first, then the lower tie-break rank."""
    return np.rint(np.asarray(score) * SCALE).astype(np.int64) * (n + 1) + (n - np.asarray(tiebreak))


class SampleRetriever:
    def __init__(self, pool, fields, k=5, seed=0, caps=((128, None), (128, 4096), (4096, 65536)),
                 pair_budget=20_000_000, max_pair_fields=6):
        """caps: phases of (max df of a single value read, max df of a value pair read or None)."""
        """pool: dict field -> int array [N] of value ids (the training rows)."""
        self.fields = list(fields)
        self.k = int(k)
        self.P = np.stack([np.asarray(pool[f], dtype=np.int64) for f in self.fields], axis=1)  # [N, F]
        self.n = len(self.P)
        self.caps = tuple((int(c), None) if np.isscalar(c) else (int(c[0]), c[1] and int(c[1])) for c in caps)
        self.pair_budget = int(pair_budget)
        self.max_pair_fields = int(max_pair_fields)
        self._pairs = None
        self.mult = [int(self.P[:, j].max()) + 2 if self.n else 1 for j in range(self.P.shape[1])]
        rng = np.random.default_rng(seed)
        self.tiebreak = rng.permutation(self.n).astype(np.int64)  # lower = preferred among equal scores
        self.df, self.idf, self.starts, self.order = [], [], [], []
        for j in range(len(self.fields)):
            col = self.P[:, j]
            df = np.bincount(col)
            self.df.append(df)
            with np.errstate(divide="ignore"):
                self.idf.append(np.where(df > 0, np.log(self.n / np.maximum(df, 1)), 0.0))
            self.starts.append(np.concatenate([[0], np.cumsum(df)]))
            self.order.append(np.argsort(col, kind="stable"))
        self.stats = {"queries": 0, "pairs": 0, "dense_fallback": 0}

    # ------------------------------------------------------------------ helpers
    def _lookup(self, j, values):
        """df and idf of query values in field j (values unseen in the pool: 0, 0)."""
        df = self.df[j]
        inside = values < len(df)
        v = np.where(inside, values, 0)
        return np.where(inside, df[v], 0), np.where(inside, self.idf[j][v], 0.0)

    def _weights(self, Q):
        F = len(self.fields)
        dfs = np.empty(Q.shape, dtype=np.int64)
        w = np.empty(Q.shape, dtype=np.float64)
        for j in range(F):
            dfs[:, j], w[:, j] = self._lookup(j, Q[:, j])
        return dfs, w

    def _topk_from_pairs(self, qq, dd, s, nq):
        """Best K (score desc, tiebreak asc) per query from scored pairs -> idx, score [nq, K]."""
        k = self.k
        idx = np.full((nq, k), -1, dtype=np.int64)
        sc = np.zeros((nq, k), dtype=np.float64)
        keep = s > 0
        qq, dd, s = qq[keep], dd[keep], s[keep]
        if len(qq) == 0:
            return idx, sc
        o = np.lexsort((-sort_key(s, self.tiebreak[dd], self.n), qq))
        qq, dd, s = qq[o], dd[o], s[o]
        dup = np.zeros(len(qq), dtype=bool)
        dup[1:] = (qq[1:] == qq[:-1]) & (dd[1:] == dd[:-1])
        qq, dd, s = qq[~dup], dd[~dup], s[~dup]
        first = np.searchsorted(qq, np.arange(nq))
        rank = np.arange(len(qq)) - first[qq]
        sel = rank < k
        idx[qq[sel], rank[sel]] = dd[sel]
        sc[qq[sel], rank[sel]] = s[sel]
        return idx, sc

    def _dense(self, Q, w, q_fold, fold, chunk_cells=2 ** 24):
        """Exact scores of queries against the whole pool (used for the few unbounded queries)."""
        nq = len(Q)
        idx = np.full((nq, self.k), -1, dtype=np.int64)
        sc = np.zeros((nq, self.k), dtype=np.float64)
        step = max(1, chunk_cells // max(self.n, 1))
        for a in range(0, nq, step):
            qs = Q[a:a + step]
            s = np.zeros((len(qs), self.n))
            for j in range(len(self.fields)):
                s += (self.P[None, :, j] == qs[:, j:j + 1]) * w[a:a + step, j:j + 1]
            if fold is not None:
                s[fold[None, :] == q_fold[a:a + step, None]] = 0.0
            key = sort_key(s, self.tiebreak[None, :], self.n)
            key[s <= 0] = -1
            k = min(self.k, self.n)
            top = np.argpartition(-key, k - 1, axis=1)[:, :k]
            top = np.take_along_axis(top, np.argsort(-np.take_along_axis(key, top, 1), axis=1, kind="stable"), 1)
            ok = np.take_along_axis(key, top, 1) >= 0
            idx[a:a + len(qs), :k] = np.where(ok, top, -1)
            sc[a:a + len(qs), :k] = np.where(ok, np.take_along_axis(s, top, 1), 0.0)
        return idx, sc

    # -------------------------------------------------------------------- query
    def _pair_index(self):
        """Posting lists of value *pairs* (every two fields), built on first use."""
        if self._pairs is None:
            self._pairs = {}
            F = len(self.fields)
            for j in range(F):
                for l in range(j + 1, F):
                    key = self.P[:, j] * self.mult[l] + self.P[:, l]
                    order = np.argsort(key, kind="stable")
                    uniq, counts = np.unique(key[order], return_counts=True)
                    self._pairs[(j, l)] = (uniq, np.concatenate([[0], np.cumsum(counts)]), counts, order)
        return self._pairs

    def _sources(self, Q, dfs, cap, pair_cap):
        """Posting lists to read per query: [(df [nq] or 0, start [nq], order)], the rare mask,
        and per query the field pairs whose joint posting list is read (covered)."""
        rare = (dfs > 0) & (dfs <= cap)
        src = []
        for j in range(len(self.fields)):
            c = np.where(rare[:, j], dfs[:, j], 0)
            src.append((c, self.starts[j][np.where(c > 0, Q[:, j], 0)], self.order[j]))
        hot = (dfs > cap)
        covered = {}
        if pair_cap:
            for (j, l), (uniq, starts, counts, order) in self._pair_index().items():
                both = hot[:, j] & hot[:, l]
                key = Q[:, j] * self.mult[l] + Q[:, l]
                pos = np.minimum(np.searchsorted(uniq, key), len(uniq) - 1)
                found = both & (uniq[pos] == key)
                df = np.where(found, counts[pos], 0)
                ok = both & (df <= pair_cap)  # a pair absent from the pool is covered with 0 rows
                src.append((np.where(ok, df, 0), starts[np.where(ok, pos, 0)], order))
                covered[(j, l)] = ok
        return src, rare, hot, covered

    def _bound(self, w, hot, covered):
        """Best score of a row outside the candidates: its match set holds only hot fields and
        no covered pair."""
        if not covered:
            return (w * hot).sum(1)
        F = len(self.fields)
        masks = ((np.arange(2 ** F)[:, None] >> np.arange(F)[None, :]) & 1).astype(bool)  # [T, F]
        sums = w @ masks.T  # [nq, T]
        ok = ~(masks[None, :, :] & ~hot[:, None, :]).any(-1)
        for (j, l), cov in covered.items():
            ok &= ~((masks[:, j] & masks[:, l])[None, :] & cov[:, None])
        return np.where(ok, sums, 0.0).max(1)

    def _candidates(self, Q, dfs, w, q_fold, fold, cap, pair_cap=None):
        """Top-K among the rows read from rare postings; `unsure` = not provably exact."""
        nq = len(Q)
        src, rare, hot, covered = self._sources(Q, dfs, cap, pair_cap)
        bound = self._bound(w, hot, covered)
        idx = np.full((nq, self.k), -1, dtype=np.int64)
        sc = np.zeros((nq, self.k))
        cum = np.cumsum(sum(c for c, _, _ in src))
        a = 0
        while a < nq:
            base = cum[a - 1] if a else 0
            b = min(nq, max(a + 1, int(np.searchsorted(cum, base + self.pair_budget, side="right"))))
            qq_all, dd_all = [], []
            for counts, starts, order in src:
                c = counts[a:b]
                tot = int(c.sum())
                if tot == 0:
                    continue
                offs = np.arange(tot) - np.repeat(np.cumsum(c) - c, c)
                qq_all.append(np.repeat(np.arange(a, b), c))
                dd_all.append(order[np.repeat(starts[a:b], c) + offs])
            if qq_all:
                qq, dd = np.concatenate(qq_all), np.concatenate(dd_all)
                if fold is not None:
                    ok = fold[dd] != q_fold[qq]
                    qq, dd = qq[ok], dd[ok]
                s = np.zeros(len(qq))
                for j in range(len(self.fields)):
                    s += (self.P[dd, j] == Q[qq, j]) * w[qq, j]
                self.stats["pairs"] += len(qq)
                idx[a:b], sc[a:b] = self._topk_from_pairs(qq - a, dd, s, b - a)
            a = b
        # exact unless a row outside the candidates could reach the K-th score
        kth = np.where(idx[:, -1] >= 0, sc[:, -1], 0.0)
        return idx, sc, (bound > 0) & (kth <= bound)

    def query(self, queries, q_fold=None, fold=None):
        """queries: dict field -> [Q] ids. With folds, a query never retrieves a pool row of its own fold.

        Candidates come from ever longer posting lists (`caps`) for the queries not yet provably
        exact; the rest are scored densely. Returns (indices [Q, K] into the pool, -1 = empty slot;
        scores [Q, K])."""
        Q = np.stack([np.asarray(queries[f], dtype=np.int64) for f in self.fields], axis=1)
        nq = len(Q)
        dfs, w = self._weights(Q)
        idx = np.full((nq, self.k), -1, dtype=np.int64)
        sc = np.zeros((nq, self.k))
        todo = np.arange(nq)
        done = set()
        for cap, pair_cap in self.caps:
            if pair_cap and len(self.fields) > self.max_pair_fields:
                pair_cap = None
            if not len(todo) or cap >= self.n:
                break
            if (cap, pair_cap) in done:  # the same phase again (pairs disabled): skip
                continue
            done.add((cap, pair_cap))
            qf = None if fold is None else q_fold[todo]
            i, s, unsure = self._candidates(Q[todo], dfs[todo], w[todo], qf, fold, cap, pair_cap)
            idx[todo], sc[todo] = i, s
            todo = todo[unsure]
        if len(todo):
            i, s = self._dense(Q[todo], w[todo], None if fold is None else q_fold[todo], fold)
            idx[todo], sc[todo] = i, s
        self.stats["queries"] += nq
        self.stats["dense_fallback"] += len(todo)
        return idx, sc.astype(np.float32)

    def query_pool_kfold(self, num_folds=10):
        """Every pool row against the rows of the other folds (contiguous folds, as in RAT)."""
        fold = (np.arange(self.n) * num_folds // max(self.n, 1)).astype(np.int64)
        pool = {f: self.P[:, j] for j, f in enumerate(self.fields)}
        return self.query(pool, q_fold=fold, fold=fold)


def brute_force(pool, queries, fields, k, tiebreak, q_fold=None, fold=None):
    """Reference implementation (dense, O(Q x N)): for tests."""
    P = np.stack([np.asarray(pool[f]) for f in fields], 1)
    Q = np.stack([np.asarray(queries[f]) for f in fields], 1)
    n = len(P)
    s = np.zeros((len(Q), n))
    for j in range(len(fields)):
        df = np.bincount(P[:, j], minlength=max(P[:, j].max(), Q[:, j].max()) + 1)
        idf = np.where(df > 0, np.log(n / np.maximum(df, 1)), 0.0)
        s += (P[None, :, j] == Q[:, j:j + 1]) * idf[Q[:, j]][:, None]
    if fold is not None:
        s[fold[None, :] == q_fold[:, None]] = 0
    idx = np.full((len(Q), k), -1)
    sc = np.zeros((len(Q), k))
    for r in range(len(Q)):
        o = np.argsort(-sort_key(s[r], tiebreak, n), kind="stable")[:k]
        o = o[s[r, o] > 0]
        idx[r, :len(o)] = o
        sc[r, :len(o)] = s[r, o]
    return idx, sc


def timed_retrieval(pool, fields, k=5, num_folds=10, queries=None, seed=0, **kw):
    """Convenience for benchmarks: (train idx/scores, {split: idx/scores}, seconds, stats)."""
    t0 = time.time()
    r = SampleRetriever(pool, fields, k=k, seed=seed, **kw)
    out = {"train": r.query_pool_kfold(num_folds)}
    for name, q in (queries or {}).items():
        out[name] = r.query(q)
    return out, time.time() - t0, r.stats


FORMAT_VERSION = 2  # bump when the tie order or output format changes


def cached_neighbors(feature_map, fields, k=5, num_folds=10, seed=0, splits=("train", "valid", "test")):
    """Neighbours of every row of each split (train: K-fold against train; others: against train),
    computed once and cached beside the processed dataset in `sample_retrieval/<key>.npz`.

    Returns {split: (indices [n, K] into the training rows, -1 = empty; scores [n, K])}.
    """

    for f in fields:
        feature_map.require(f, types=("categorical",), where="sample retrieval fields")
    data_dir = Path(feature_map.data_dir)
    key = stable_hash({"v": FORMAT_VERSION, "data": feature_map.fingerprint, "fields": list(fields), "k": k,
                       "folds": num_folds, "seed": seed}, 16)
    path = data_dir / "sample_retrieval" / f"{key}.npz"
    with file_lock(str(path) + ".lock"):
        if path.is_file():
            z = np.load(path)
            return {s: (z[f"{s}_idx"], z[f"{s}_score"]) for s in splits if f"{s}_idx" in z}
        t0 = time.time()
        train = load_split(feature_map, "train")
        r = SampleRetriever({f: train[f] for f in fields}, fields, k=k, seed=seed)
        out = {"train": r.query_pool_kfold(num_folds)}
        for s in splits:
            if s != "train" and (data_dir / s).is_dir():
                cols = load_split(feature_map, s)
                out[s] = r.query({f: cols[f] for f in fields})
        if "train" not in out:
            raise ConfigError(f"{data_dir}: no training split to retrieve from")
        tmp = path.parent / f".{path.stem}.tmp-{os.getpid()}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(tmp, **{f"{s}_idx": v[0] for s, v in out.items()}, **{f"{s}_score": v[1] for s, v in out.items()})
        os.replace(tmp, path)
        (path.parent / f"{key}.json").write_text(json.dumps(
            {"fields": list(fields), "k": k, "folds": num_folds, "seed": seed, "seconds": round(time.time() - t0, 2),
             **r.stats}, indent=1))
        log.info("Sample retrieval (K=%d, %d folds, fields %s): %.1fs, %d candidate pairs, %d dense queries -> %s",
                 k, num_folds, ",".join(fields), time.time() - t0, r.stats["pairs"], r.stats["dense_fallback"], path)
        return out
