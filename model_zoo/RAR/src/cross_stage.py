"""Cross-stage data for recall-augmented ranking (RAR): per ranking request, the recall pool
the retrieval stage would have returned and the look-alike users of the profiling stage,
built only from data before the request.

Timeline. A `cutoff` time splits the click log. The *recall stage* (`HistoryTwoTower`, a
YouTubeDNN-style two-tower of the retrieval core: mean-pooled history -> MLP, in-batch
softmax with logQ correction) is trained on the clicks before the cutoff, and the
*profiling stage* takes a snapshot of every user's history before the cutoff. Ranking
requests are the rows at or after the cutoff. For a request (user u, time t):
- `hist`: u's clicks with time < t (the last `history_len`, oldest first);
- `recall`: the top `pool_size` items of the recall index (ScaNN, exact fallback) for the
  query vector of that history, the history's items removed (what the recall stage
  returns at t);
- `lookalike_users`: the `lookalike_size` users nearest to u's query vector in an index
  over the users' snapshot vectors (u itself removed), and `lookalike_items`: the last
  `lookalike_history` snapshot items of each (0 = empty slot).
Every input of a request is data before t: the model and the snapshot use clicks before
the cutoff <= t, the history clicks before t (`tests/test_rar.py` changes the future and
checks nothing moves). `future_labels` gives the auxiliary target of a recall item (did u
click it after t and before the end of the request's split); it is a training label,
never an input.

Ids: users and items are integer codes (items 1..V, 0 = padding); `encode_log` makes them.
Everything is vectorised (searchsorted over (user, time) keys, batched index search).
"""

import logging

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from fuxi_like.errors import ConfigError, DataError
from fuxi_like.features.feature_map import FeatureMap
from fuxi_like.layers import FeatureEmbedding, MLPBlock
from fuxi_like.models.retrieval_model import RetrievalModel
from fuxi_like.retrieval.index import ScaNNIndex, make_index

log = logging.getLogger("fuxi_like")


# ------------------------------------------------------------------ ids and histories
def encode_log(events, requests):
    """Integer codes for users and items over the click log and the requests.
    Returns (users: raw array indexed by code, items: raw array indexed by code with items[0] = None)."""
    for name, df in (("events", events), ("requests", requests)):
        missing = {"user", "item", "ts"} - set(df.columns)
        if missing:
            raise DataError(f"cross-stage {name}: missing column(s) {sorted(missing)}")
    users = pd.unique(pd.concat([events["user"], requests["user"]], ignore_index=True).astype(str))
    items = pd.unique(pd.concat([events["item"], requests["item"]], ignore_index=True).astype(str))
    return users, np.concatenate([[None], items]).astype(object)


def codes(values, vocab):
    """Raw values -> codes in `vocab` (users: 0-based; items: 1-based with vocab[0] = None)."""
    index = pd.Index(vocab[1:] if vocab[0] is None else vocab)
    c = index.get_indexer(pd.Series(values).astype(str))
    if (c < 0).any():
        raise DataError(f"cross-stage: value {np.asarray(values)[c < 0][0]!r} missing from the vocabulary")
    return c + (1 if vocab[0] is None else 0)


class ClickLog:
    """Clicks sorted by (user, time) with a vectorised 'last n clicks before t' lookup."""

    def __init__(self, user, item, ts):
        user, item, ts = np.asarray(user, np.int64), np.asarray(item, np.int64), np.asarray(ts, np.float64)
        order = np.lexsort((item, ts, user))  # ties in time: by item, so the order is reproducible
        self.user, self.item, self.ts = user[order], item[order], ts[order]

    def before(self, user, ts, n, strict=True):
        """[Q, n] item codes of each (user, t)'s last n clicks with time < t (<= t if not strict),
        oldest first, right-aligned, 0-padded."""
        user, ts = np.asarray(user, np.int64), np.asarray(ts, np.float64)
        # one sorted key per click, (user, rank of its time), and the same key for each query
        rank_ev, rank_q = _joint_rank(self.ts, ts)
        big = np.int64(max(rank_ev.max(initial=0), rank_q.max(initial=0)) + 2)
        end = np.searchsorted(self.user * big + rank_ev, user * big + rank_q, side="left" if strict else "right")
        start = np.maximum(np.searchsorted(self.user, user, side="left"), end - n)
        idx = end[:, None] - n + np.arange(n)[None, :]
        if not len(self.item):
            return np.zeros((len(user), n), np.int64)
        return np.where(idx >= start[:, None], self.item[np.clip(idx, 0, len(self.item) - 1)], 0).astype(np.int64)


def _joint_rank(a, b):
    """Dense ranks of two float arrays in their joint order (equal values, equal ranks)."""
    allv = np.concatenate([a, b])
    uniq = np.unique(allv)
    return np.searchsorted(uniq, a).astype(np.int64), np.searchsorted(uniq, b).astype(np.int64)


# ------------------------------------------------------------------ recall stage model
def recall_feature_map(num_items, history_len):
    """An in-memory feature map: item_id (codes 1..num_items, OOV = num_items + 1) and its history."""
    spec = {"vocab_size": num_items + 2, "padding_idx": 0, "oov_idx": num_items + 1}
    return FeatureMap("recall_stage", {
        "item_id": dict(spec, type="categorical", source="item"),
        "hist_items": dict(spec, type="sequence", source="user", max_len=history_len, padding="pre",
                           pooling="mean", share_embedding="item_id"),
    }, labels=["label"])


class HistoryTwoTower(RetrievalModel):
    """The recall stage: query = MLP(mean of the history's item embeddings) (YouTubeDNN-style,
    no user id, so it serves users it never saw); items = the id embedding table."""

    def __init__(self, feature_map, hidden_units=(64,), **kwargs):
        super().__init__(feature_map, model_id="recall_stage", **kwargs)
        self.embedding = self.make_embedding(features=["item_id", "hist_items"])
        self.embedding.build()
        self.mlp = MLPBlock(hidden_units, "relu", output_dim=self.embedding.dim("item_id"))

    def encode_query(self, inputs, training=None):
        return self.mlp(FeatureEmbedding.flatten(self.embedding(inputs), ["hist_items"]), training=training)

    def encode_items(self, item_ids, training=None):
        return self.embedding.lookup("item_id", item_ids)

    def query_vectors(self, hist, batch_size=8192):
        out = [np.asarray(self({"hist_items": hist[s:s + batch_size],
                                "item_id": np.zeros((len(hist[s:s + batch_size]), 1), np.int64)}, training=False))
               for s in range(0, len(hist), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.embedding.dim("item_id")), np.float32)


RECALL_DEFAULTS = {"embedding_dim": 32, "hidden_units": [64], "epochs": 10, "batch_size": 512,
                   "learning_rate": 3e-3, "softmax": "inbatch", "history_len": 50, "seed": 2024}


def train_recall_model(hist, target, num_items, verbose=1, **params):
    """Train `HistoryTwoTower` on (history, next item) pairs; returns the model."""
    unknown = set(params) - set(RECALL_DEFAULTS)
    if unknown:
        raise ConfigError(f"cross-stage recall: unknown key(s) {sorted(unknown)}; known: {sorted(RECALL_DEFAULTS)}")
    p = dict(RECALL_DEFAULTS, **params)
    keras.utils.set_random_seed(int(p["seed"]))
    fmap = recall_feature_map(num_items, hist.shape[1])
    model = HistoryTwoTower(fmap, hidden_units=tuple(p["hidden_units"]), embedding_dim=int(p["embedding_dim"]),
                            softmax=p["softmax"])
    model.set_item_popularity(target)
    model.compile_from_params({"learning_rate": p["learning_rate"], "max_gradient_norm": None})
    x = {"hist_items": hist.astype(np.int64), "item_id": target.reshape(-1, 1).astype(np.int64)}
    ds = (tf.data.Dataset.from_tensor_slices((x, np.ones(len(target), np.float32)))
          .shuffle(min(len(target), 200_000), seed=int(p["seed"])).batch(int(p["batch_size"])))
    model.build_loss_layers({k: v[:2] for k, v in x.items()})
    model.fit(ds, epochs=int(p["epochs"]), verbose=verbose)
    return model


# ------------------------------------------------------------------ pools
def _remove_and_take(ranked, exclude, n, batch=4096):
    """Drop from each row of `ranked` [Q, K] the ids in `exclude` [Q, H] (and -1/0), keep the first n."""
    out = np.zeros((len(ranked), n), np.int64)
    for s in range(0, len(ranked), batch):
        r, e = ranked[s:s + batch], exclude[s:s + batch]
        bad = (r <= 0) | (r[:, :, None] == e[:, None, :]).any(-1)
        keep_rank = np.cumsum(~bad, axis=1)
        ok = ~bad & (keep_rank <= n)
        rows, cols = np.nonzero(ok)
        out[s + rows, keep_rank[rows, cols] - 1] = r[rows, cols]
    return out


def build_cross_stage(events, requests, cutoff, pool_size=50, lookalike_size=10, lookalike_history=10,
                      history_len=50, recall=None, backend="auto", verbose=1, recall_model=None, vocab=None):
    """events: clicks (user, item, ts); requests: (user, item, ts) rows, ts >= cutoff.
    Returns a dict of arrays aligned with `requests` (item and user codes) plus the vocabularies:
    hist [Q, history_len], recall [Q, pool_size], lookalike_users [Q, L], lookalike_items [Q, L, H],
    `users`, `items` (raw values by code), `recall_model`, `timings` (seconds per step),
    `recall_train_max_ts` (the latest click the recall model saw).
    `recall_model` + `vocab` (= (users, items) of an earlier result) reuse a trained recall stage."""
    import time

    if (np.asarray(requests["ts"], np.float64) < cutoff).any():
        raise DataError("cross-stage: every request must be at or after the cutoff "
                        f"(earliest request at {np.min(requests['ts'])}, cutoff {cutoff})")
    t0 = time.perf_counter()
    timings = {}
    if (recall_model is None) != (vocab is None):
        raise ConfigError("cross-stage: pass recall_model and vocab together (the model's item codes)")
    users, items = vocab if vocab is not None else encode_log(events, requests)
    num_items = len(items) - 1
    ev_u, ev_i = codes(events["user"], users), codes(events["item"], items)
    ev_t = np.asarray(events["ts"], np.float64)
    q_u, q_t = codes(requests["user"], users), np.asarray(requests["ts"], np.float64)
    full_log = ClickLog(ev_u, ev_i, ev_t)
    pre = ev_t < cutoff
    pre_log = ClickLog(ev_u[pre], ev_i[pre], ev_t[pre])
    if not pre.any():
        raise DataError(f"cross-stage: no click before the cutoff {cutoff}: the recall stage has nothing to train on")

    # recall stage: (history before the click, clicked item) pairs from the clicks before the cutoff
    rparams = dict(recall or {})
    rparams.setdefault("history_len", history_len)
    h_len = int(rparams.pop("history_len"))
    tr_hist = pre_log.before(pre_log.user, pre_log.ts, h_len)
    has_hist = (tr_hist > 0).any(1)
    if recall_model is None:
        model = train_recall_model(tr_hist[has_hist], pre_log.item[has_hist], num_items, verbose=verbose, **rparams)
    else:
        model = recall_model
    timings["recall_training_s"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    catalogue = np.unique(pre_log.item)
    item_vecs = np.asarray(model.item_vectors(catalogue, training=False), np.float32)
    index = make_index(backend, metric="dot")
    _build(index, item_vecs, catalogue, pool_size + history_len)
    hist = full_log.before(q_u, q_t, history_len)
    q_hist = full_log.before(q_u, q_t, h_len) if h_len != history_len else hist
    q_vec = model.query_vectors(np.where(np.isin(q_hist, catalogue), q_hist, 0))
    ranked, _ = index.search(q_vec, k=min(len(catalogue), pool_size + q_hist.shape[1]))
    recall_ids = _remove_and_take(ranked, q_hist, pool_size)
    timings["recall_pools_s"] = time.perf_counter() - t1

    # profiling stage: users' snapshot vectors (history before the cutoff) and their nearest users
    t2 = time.perf_counter()
    snap_users = np.unique(pre_log.user)
    snap_hist = pre_log.before(snap_users, np.full(len(snap_users), np.inf), h_len, strict=False)
    snap_vec = model.query_vectors(snap_hist)
    snap_items = pre_log.before(snap_users, np.full(len(snap_users), np.inf), lookalike_history, strict=False)
    uindex = make_index(backend, metric="dot")
    _build(uindex, snap_vec, snap_users, lookalike_size + 1)
    near, _ = uindex.search(q_vec, k=min(len(snap_users), lookalike_size + 1))
    near = np.where(near == q_u[:, None], -1, near)  # the user is not its own look-alike
    la_users = _remove_and_take(near + 1, np.zeros((len(near), 1), np.int64), lookalike_size) - 1  # -1 = empty
    pos = np.searchsorted(snap_users, np.clip(la_users, 0, None))
    la_items = np.where((la_users >= 0)[:, :, None], snap_items[np.clip(pos, 0, len(snap_users) - 1)], 0)
    timings["lookalike_s"] = time.perf_counter() - t2
    timings["total_s"] = time.perf_counter() - t0
    return {"hist": hist, "recall": recall_ids, "lookalike_users": la_users, "lookalike_items": la_items,
            "users": users, "items": items, "recall_model": model, "timings": timings,
            "num_pre_clicks": int(pre.sum()), "catalogue_size": int(len(catalogue)),
            "recall_train_max_ts": float(pre_log.ts.max())}


def _build(index, vecs, ids, k):

    if isinstance(index, ScaNNIndex):
        index.build(vecs, ids=ids, k=k)
    else:
        index.build(vecs, ids=ids)


def future_labels(events, q_user, q_ts, q_horizon, cand, users, items):
    """[Q, N] 1.0 where the request's user clicked candidate item cand[q, j] at a time in
    (t, horizon) (the recall-item auxiliary target), else 0.0. Codes as in `build_cross_stage`."""
    ev = pd.DataFrame({"u": codes(events["user"], users), "i": codes(events["item"], items),
                       "ts": np.asarray(events["ts"], np.float64)})
    q, n = cand.shape
    pairs = pd.DataFrame({"row": np.repeat(np.arange(q), n), "col": np.tile(np.arange(n), q),
                          "u": np.repeat(np.asarray(q_user), n), "i": cand.reshape(-1),
                          "t": np.repeat(np.asarray(q_ts, np.float64), n),
                          "h": np.repeat(np.asarray(q_horizon, np.float64), n)})
    pairs = pairs[pairs["i"] > 0]
    m = pairs.merge(ev, on=["u", "i"], how="inner")
    m = m[(m["ts"] > m["t"]) & (m["ts"] < m["h"])]
    out = np.zeros((q, n), np.float32)
    out[m["row"].to_numpy(), m["col"].to_numpy()] = 1.0
    return out
