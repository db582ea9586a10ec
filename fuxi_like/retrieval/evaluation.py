"""Retrieval metrics from ranked candidate lists (one relevant item per query).

`exclude_seen(top_ids, seen)`: drop already-seen items from each ranked list (the
usual full-ranking protocol masks a user's history), keeping the order.
`retrieval_metrics(ranked_ids, target_ids, metrics)`: HR@k, Recall@k (equal to HR@k with
one target), NDCG@k (1/log2(rank+1)) and MRR (reciprocal rank; a bare `MRR` is MRR@100
in retrieval evaluation, `MRR@k` cuts at k) from ranked lists. A target not in the list counts as a miss; list depth must
cover the largest k, which the caller guarantees by searching deep enough.
`sampled_ranks(pos_scores, neg_scores)`: rank of the target among sampled negatives
(ties count against the target, so a constant scorer gets no credit).
"""

import numpy as np

from ..errors import ConfigError
from ..metrics import metric_label, parse_metric

RETRIEVAL_METRICS = ("hr", "recall", "ndcg", "mrr")


def check_retrieval_metrics(metrics, where="metrics"):
    parsed = []
    for m in metrics:
        base, k = parse_metric(m)
        if base not in RETRIEVAL_METRICS:
            raise ConfigError(f"{where}: metric '{m}' does not apply to a retrieval model; "
                              f"use HR@k, Recall@k, NDCG@k or MRR")
        parsed.append((base, k))
    return parsed


MRR_DEPTH = 100


def max_cutoff(metrics):
    """Search depth the metrics need: their largest k, and 100 for a bare `MRR` (= MRR@100)."""
    ks = [k if k else MRR_DEPTH for _, k in check_retrieval_metrics(metrics)]
    return max(ks)


def exclude_seen(top_ids, seen, depth, scores=None, chunk=4096):
    """top_ids [Q, K'] ranked; seen [Q, H] (0 = padding) -> [Q, depth] with seen ids removed.

    Rows with fewer than `depth` unseen candidates are padded with id -1 (score -inf).
    With `scores` ([Q, K'], aligned with top_ids) returns (ids, scores).
    """
    top_ids = np.asarray(top_ids)
    out = np.full((len(top_ids), depth), -1, dtype=np.int64)
    out_s = np.full((len(top_ids), depth), -np.inf, dtype=np.float32)
    for s in range(0, len(top_ids), chunk):
        t = top_ids[s:s + chunk]
        h = np.asarray(seen[s:s + chunk])
        hit = (t[:, :, None] == h[:, None, :]).any(-1) | (t < 0)
        # stable: unseen candidates first, in their original order
        order = np.argsort(hit, axis=1, kind="stable")[:, :depth]
        picked = np.take_along_axis(t, order, axis=1)
        ok = ~np.take_along_axis(hit, order, axis=1)
        out[s:s + chunk, :picked.shape[1]] = np.where(ok, picked, -1)
        if scores is not None:
            sc = np.take_along_axis(np.asarray(scores[s:s + chunk]), order, axis=1)
            out_s[s:s + chunk, :picked.shape[1]] = np.where(ok, sc, -np.inf)
    return (out, out_s) if scores is not None else out


def target_ranks(ranked_ids, target_ids):
    """1-based rank of each target in its list, 0 when absent."""
    ranked_ids = np.asarray(ranked_ids)
    eq = ranked_ids == np.asarray(target_ids).reshape(-1, 1)
    found = eq.any(1)
    return np.where(found, eq.argmax(1) + 1, 0)


def metrics_from_ranks(ranks, metrics, depth=None):
    """ranks: 1-based rank of the target (0 = not retrieved within `depth`)."""
    ranks = np.asarray(ranks)
    out = {}
    for name in metrics:
        base, k = parse_metric(name)
        label = metric_label(name)
        hit_at = (ranks > 0) & (ranks <= k) if k else ranks > 0
        if base in ("hr", "recall"):
            out[label] = float(hit_at.mean())
        elif base == "ndcg":
            out[label] = float(np.where(hit_at, 1.0 / np.log2(np.maximum(ranks, 1) + 1), 0.0).mean())
        elif base == "mrr":
            out[label] = float(np.where(hit_at, 1.0 / np.maximum(ranks, 1), 0.0).mean())
        else:
            raise ConfigError(f"metric '{name}' does not apply to a retrieval model")
    return out


def retrieval_metrics(ranked_ids, target_ids, metrics):
    return metrics_from_ranks(target_ranks(ranked_ids, target_ids), metrics)


def sampled_ranks(pos_scores, neg_scores):
    """pos [Q], neg [Q, S] -> 1-based rank of the positive among 1 + S candidates."""
    pos = np.asarray(pos_scores).reshape(-1, 1)
    return 1 + (np.asarray(neg_scores) >= pos).sum(1)
