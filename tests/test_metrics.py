"""Metrics against hand-computed values (and keras-rs where it applies)."""

import math

import numpy as np
import pytest

from fuxi_like.errors import ConfigError
from fuxi_like.metrics import auc, evaluate_metrics, logloss, monitor_value, parse_metric


def test_auc_with_ties_by_hand():
    # pairs (pos, neg): pos scores .8,.4 ; neg scores .4,.1 -> (.8>.4)1 (.8>.1)1 (.4=.4).5 (.4>.1)1 = 3.5/4
    assert auc([1, 1, 0, 0], [0.8, 0.4, 0.4, 0.1]) == pytest.approx(0.875)
    assert auc([1, 0], [0.2, 0.9]) == 0.0


def test_logloss_by_hand():
    assert logloss([1, 0], [0.9, 0.2]) == pytest.approx(-(math.log(0.9) + math.log(0.8)) / 2)


# two users: u1 has 3 rows, u2 has 2 rows, u3 all-negative (skipped everywhere)
Y = [1, 0, 0, 0, 1, 0, 0]
P = [0.2, 0.9, 0.1, 0.3, 0.6, 0.5, 0.4]
G = [1, 1, 1, 2, 2, 3, 3]


def test_gauc_and_avgauc_by_hand():
    # u1: pos .2 vs neg .9 (0), .1 (1) -> 0.5 ; u2: pos .6 vs .3 -> 1.0 ; u3 skipped
    r = evaluate_metrics(Y, P, ["gAUC", "avgAUC"], G)
    assert r["gAUC"] == pytest.approx((0.5 * 3 + 1.0 * 2) / 5)
    assert r["avgAUC"] == pytest.approx(0.75)


def test_mrr_ndcg_hr_recall_by_hand():
    # u1 ranking: .9(0) .2(1) .1(0) -> pos at rank 2 ; u2: .6(1) .3(0) -> rank 1
    r = evaluate_metrics(Y, P, ["MRR", "NDCG@2", "NDCG(k=1)", "HR@1", "Recall@2"], G)
    assert r["MRR"] == pytest.approx((1 / 2 + 1) / 2)
    assert r["NDCG@2"] == pytest.approx((1 / math.log2(3) + 1.0) / 2)
    assert r["NDCG@1"] == pytest.approx(0.5)
    assert r["HR@1"] == pytest.approx(0.5)
    assert r["Recall@2"] == pytest.approx(1.0)


def test_ndcg_mrr_match_keras_rs():
    import keras_rs

    rng = np.random.default_rng(0)
    y = (rng.random((6, 8)) < 0.3).astype("float32")
    y[:, 0] = 1.0
    p = rng.random((6, 8)).astype("float32")
    g = np.repeat(np.arange(6), 8)
    ours = evaluate_metrics(y.ravel(), p.ravel(), ["NDCG@5", "MRR"], g)
    ndcg = keras_rs.metrics.NDCG(k=5)
    ndcg.update_state(y, p)
    mrr = keras_rs.metrics.MeanReciprocalRank()
    mrr.update_state(y, p)
    assert ours["NDCG@5"] == pytest.approx(float(ndcg.result()), abs=1e-5)
    assert ours["MRR"] == pytest.approx(float(mrr.result()), abs=1e-5)


def test_monitor_weighted_sum_and_errors():
    res = {"AUC": 0.8, "logloss": 0.4}
    assert monitor_value({"AUC": 1, "logloss": -1}, res) == pytest.approx(0.4)
    with pytest.raises(ConfigError, match="monitor metric 'gAUC' is not computed"):
        monitor_value("gAUC", res)
    with pytest.raises(ConfigError, match=r"unknown metric 'AUX' \(did you mean 'AUC'\?\)"):
        parse_metric("AUX")
    with pytest.raises(ConfigError, match="needs a cutoff"):
        parse_metric("NDCG")
    with pytest.raises(ConfigError, match="needs a group_id"):
        evaluate_metrics([1, 0], [0.5, 0.2], ["gAUC"])


def test_lrap_is_sklearns_label_ranking_average_precision_per_group():
    """Hand-computed: group 1 scores [0.9, 0.8, 0.7, 0.1] labels [0, 1, 0, 1]: positives at ranks 2 and 4 ->
    (1/2 + 2/4) / 2 = 0.5; group 2 one positive at rank 1 -> 1; group 3 no positive: skipped; a tie (group 4:
    the positive tied with a negative at the top) counts both as ranked at or above it -> 1/2."""
    from fuxi_like.metrics import evaluate_metrics

    y = [0, 1, 0, 1, 1, 0, 0, 0, 1, 0]
    p = [0.9, 0.8, 0.7, 0.1, 0.6, 0.2, 0.5, 0.4, 0.3, 0.3]
    g = [1, 1, 1, 1, 2, 2, 3, 3, 4, 4]
    out = evaluate_metrics(y, p, ["LRAP", "MRR"], group_id=g)
    assert abs(out["LRAP"] - (0.5 + 1.0 + 0.5) / 3) < 1e-12
    # MRR (first positive's reciprocal rank): 1/2, 1, and 1 for the tie (stable order keeps the positive first)
    assert abs(out["MRR"] - (0.5 + 1.0 + 1.0) / 3) < 1e-12
