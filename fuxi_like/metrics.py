"""Evaluation metrics over a whole split (numpy, vectorised).

Global: `AUC` (ties get half credit), `logloss`.
Grouped (need a `group_id` meta feature; rows of one group = one list to rank):
`gAUC` (impression-weighted AUC over groups with both classes, as in DIN),
`avgAUC` (unweighted mean over those groups, as in MIND), `MRR`, `NDCG@k`,
`HR@k` (1 if any positive in the top k), `Recall@k` (share of a group's positives
in its top k), `LRAP` (label ranking average precision per group, averaged over groups: what GreenRec's and
Legommenders' code reports under the name "MRR", sklearn's `label_ranking_average_precision_score`, ties counted
as sklearn counts them; it equals MRR only when a group has one positive and no ties).
Groups without a positive are skipped by the ranking metrics.
Names are case-insensitive; `NDCG(k=5)` (FuxiCTR style) is accepted for `NDCG@5`.
"""

import re

import numpy as np

from .errors import ConfigError, closest

GLOBAL = ("auc", "logloss")
GROUPED = ("gauc", "avgauc", "mrr", "ndcg", "hr", "recall", "lrap")
CANONICAL = {"auc": "AUC", "logloss": "logloss", "gauc": "gAUC", "avgauc": "avgAUC", "mrr": "MRR",
             "ndcg": "NDCG", "hr": "HR", "recall": "Recall", "lrap": "LRAP"}


def parse_metric(name):
    """'NDCG@10' / 'ndcg(k=10)' -> ('ndcg', 10); 'AUC' -> ('auc', None)."""
    s = str(name).strip()
    m = re.fullmatch(r"([A-Za-z_]+)\s*(?:@\s*(\d+)|\(\s*k\s*=\s*(\d+)\s*\))?", s)
    if not m:
        raise ConfigError(f"bad metric name {name!r}")
    base = m.group(1).lower().replace("binary_crossentropy", "logloss")
    k = m.group(2) or m.group(3)
    if base not in GLOBAL + GROUPED:
        hint = closest(base, CANONICAL)
        for low, canon in CANONICAL.items():
            hint = hint.replace(f"'{low}'", f"'{canon}'")
        raise ConfigError(f"unknown metric '{name}'{hint}. "
                          f"Known: AUC, logloss, gAUC, avgAUC, MRR, LRAP, NDCG@k, HR@k, Recall@k")
    if base in ("ndcg", "hr", "recall") and k is None:
        raise ConfigError(f"metric '{name}' needs a cutoff, e.g. {CANONICAL[base]}@10")
    return base, (int(k) if k else None)


def metric_label(name):
    base, k = parse_metric(name)
    return CANONICAL[base] + (f"@{k}" if k else "")


def needs_groups(metrics):
    return any(parse_metric(m)[0] in GROUPED for m in metrics)


def auc(y_true, y_pred):
    """ROC AUC via the rank-sum formula with average ranks for ties."""
    y_true = np.asarray(y_true).ravel() > 0.5
    y_pred = np.asarray(y_pred, dtype=np.float64).ravel()
    n_pos = int(y_true.sum())
    n_neg = len(y_true) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(y_pred)
    return float((ranks[y_true].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(x):
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    # boundaries of runs of equal values
    starts = np.r_[0, np.flatnonzero(np.diff(xs)) + 1]
    ends = np.r_[starts[1:], len(xs)]
    avg = (starts + ends + 1) / 2.0  # 1-based average rank of each run
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def logloss(y_true, y_pred, eps=1e-7):
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.clip(np.asarray(y_pred, dtype=np.float64).ravel(), eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _groups(group_id):
    """Sort order and [start, end) bounds of each group."""
    g = np.asarray(group_id).ravel()
    order = np.argsort(g, kind="mergesort")
    gs = g[order]
    starts = np.r_[0, np.flatnonzero(gs[1:] != gs[:-1]) + 1]
    ends = np.r_[starts[1:], len(gs)]
    return order, starts, ends


def grouped_auc(y_true, y_pred, group_id):
    """(gAUC weighted by group size, avgAUC unweighted) over groups with both classes."""
    y = np.asarray(y_true).ravel() > 0.5
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    order, starts, ends = _groups(group_id)
    total, weight, aucs = 0.0, 0.0, []
    for s, e in zip(starts, ends):
        idx = order[s:e]
        yy = y[idx]
        if yy.all() or not yy.any():
            continue
        a = auc(yy, p[idx])
        total += a * len(idx)
        weight += len(idx)
        aucs.append(a)
    if not aucs:
        return float("nan"), float("nan")
    return total / weight, float(np.mean(aucs))


def _ranked_relevance(y_true, y_pred, group_id):
    """Per group: relevance sorted by descending score (stable), for groups with a positive."""
    y = (np.asarray(y_true).ravel() > 0.5).astype(np.float64)
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    order, starts, ends = _groups(group_id)
    out = []
    for s, e in zip(starts, ends):
        idx = order[s:e]
        if y[idx].sum() == 0:
            continue
        out.append(y[idx][np.argsort(-p[idx], kind="mergesort")])
    return out


def lrap(y_true, y_pred, group_id):
    """Mean over groups with a positive of sklearn's LRAP: for each positive i, |positives scored >= s_i| /
    |items scored >= s_i|, averaged over the group's positives."""
    y = (np.asarray(y_true).ravel() > 0.5)
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    order, starts, ends = _groups(group_id)
    vals = []
    for s, e in zip(starts, ends):
        idx = order[s:e]
        yy, pp = y[idx], p[idx]
        if not yy.any():
            continue
        pos = pp[yy]
        rank = (pp[None, :] >= pos[:, None]).sum(axis=1)
        hits = (pos[None, :] >= pos[:, None]).sum(axis=1)
        vals.append(float(np.mean(hits / rank)))
    return float(np.mean(vals)) if vals else float("nan")


def ranking_metric(base, k, y_true, y_pred, group_id):
    if base == "lrap":
        return lrap(y_true, y_pred, group_id)
    rels = _ranked_relevance(y_true, y_pred, group_id)
    if not rels:
        return float("nan")
    vals = []
    for r in rels:
        if base == "mrr":
            vals.append(1.0 / (np.flatnonzero(r)[0] + 1))
        elif base == "hr":
            vals.append(float(r[:k].any()))
        elif base == "recall":
            vals.append(r[:k].sum() / r.sum())
        elif base == "ndcg":
            disc = 1.0 / np.log2(np.arange(2, len(r) + 2))
            dcg = (r[:k] * disc[:k]).sum()
            ideal = np.sort(r)[::-1]
            vals.append(dcg / (ideal[:k] * disc[:k]).sum())
    return float(np.mean(vals))


def evaluate_metrics(y_true, y_pred, metrics, group_id=None):
    """Dict of metric label -> value, in the order given."""
    out = {}
    gauc_cache = None
    for name in metrics:
        base, k = parse_metric(name)
        label = metric_label(name)
        if base in GROUPED and group_id is None:
            raise ConfigError(f"metric '{name}' needs a group_id (set `group_id:` to a meta feature)")
        if base == "auc":
            out[label] = auc(y_true, y_pred)
        elif base == "logloss":
            out[label] = logloss(y_true, y_pred)
        elif base in ("gauc", "avgauc"):
            gauc_cache = gauc_cache or grouped_auc(y_true, y_pred, group_id)
            out[label] = gauc_cache[0] if base == "gauc" else gauc_cache[1]
        else:
            out[label] = ranking_metric(base, k, y_true, y_pred, group_id)
    return out


def monitor_value(monitor, results):
    """A metric name, or a dict of weights {metric: w} summed (e.g. {AUC: 1, logloss: -1})."""
    if isinstance(monitor, str):
        monitor = {monitor: 1.0}
    total = 0.0
    for name, w in monitor.items():
        label = metric_label(name)
        if label not in results:
            raise ConfigError(f"monitor metric '{name}' is not computed; add it to `metrics` ({list(results)})")
        total += float(w) * results[label]
    return total


def monitor_metrics(monitor):
    return [monitor] if isinstance(monitor, str) else list(monitor)


def evaluate_cold(y_true, y_pred, metrics, group_id, cold):
    """The metrics over the impressions whose clicked item is cold (`cold` > 0 on its positive row: an item never
    seen in training), as `cold_<metric>`, plus `cold_impressions`; {} when there is none."""
    y = np.asarray(y_true).reshape(-1)
    g = np.asarray(group_id).reshape(-1)
    cold_groups = np.unique(g[(np.asarray(cold).reshape(-1) > 0) & (y > 0.5)])
    rows = np.isin(g, cold_groups)
    if not rows.any():
        return {}
    out = {f"cold_{k}": v for k, v in
           evaluate_metrics(y[rows], np.asarray(y_pred).reshape(-1)[rows], metrics, g[rows]).items()}
    out["cold_impressions"] = float(len(cold_groups))
    return out
