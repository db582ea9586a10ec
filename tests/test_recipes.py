"""Dataset recipes: seeded determinism, the Frappe CTR construction, results CSV safety."""

import multiprocessing as mp

import numpy as np
import pandas as pd
import pytest

from fuxi_like.datasets import frappe, synthetic_ctr
from fuxi_like.results import append_result, read_results
from helpers import SHARED


def test_synthetic_is_seeded_and_has_the_planted_sequence_signal():
    a = synthetic_ctr.generate(n_rows=4000, seed=1, seq_weight=3.0)
    b = synthetic_ctr.generate(n_rows=4000, seed=1, seq_weight=3.0)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(synthetic_ctr.generate(n_rows=4000, seed=2, seq_weight=3.0))
    in_hist = np.array([str(c) in h.split("^") for c, h in zip(a["item_cate"], a["hist_cates"])])
    assert a["label"][in_hist].mean() > a["label"][~in_hist].mean() + 0.2
    assert 0.2 < a["label"].mean() < 0.4 and a["num1"].isna().mean() > 0.02


FRAPPE = SHARED / "frappe" / "frappe.csv"


@pytest.mark.skipif(not FRAPPE.is_file(), reason="../shared/data/frappe/frappe.csv not present")
def test_frappe_recipe_builds_the_standard_set(tmp_path):
    paths = [str(tmp_path / f"{s}.csv") for s in ("train", "valid", "test")]
    frappe.make(*paths, raw_path=str(FRAPPE), seed=2024)
    parts = [pd.read_csv(p, dtype=str) for p in paths]
    n = [len(p) for p in parts]
    assert sum(n) == 288609 and abs(n[0] / sum(n) - 0.7) < 0.001 and abs(n[1] / sum(n) - 0.2) < 0.001
    df = pd.concat(parts)
    assert list(df.columns) == ["label"] + frappe.FIELDS
    assert (df["label"] == "1").sum() * 3 == len(df)
    raw = pd.read_csv(FRAPPE, sep="\t", dtype=str)
    used = set(zip(raw["user"], raw["item"]))
    neg = df[df["label"] == "0"]
    assert not any((u, i) in used for u, i in zip(neg["user"], neg["item"]))  # never an app the user used
    # negatives keep the positive's context: same multiset of contexts per user
    ctx = ["user", "daytime", "weekday", "isweekend", "homework", "weather", "country", "city"]
    pos_ctx = df[df["label"] == "1"][ctx].value_counts()
    assert (neg[ctx].value_counts().reindex(pos_ctx.index) == 2 * pos_ctx).all()
    again = [str(tmp_path / f"b{s}.csv") for s in ("train", "valid", "test")]
    frappe.make(*again, raw_path=str(FRAPPE), seed=2024)
    assert open(again[2]).read() == open(paths[2]).read()


def test_frappe_recipe_missing_raw_file_is_clear(tmp_path):
    from fuxi_like.errors import DataError

    with pytest.raises(DataError, match="Frappe raw log not found: .*nope.csv .*raw_path"):
        frappe.make(*(str(tmp_path / f"{s}.csv") for s in "abc"), raw_path=str(tmp_path / "nope.csv"))


def _writer(args):
    path, wid, n = args
    for i in range(n):
        append_result(path, {"expid": f"w{wid}_{i}", "valid": {"AUC": 0.5 + i / 1e4}, "params": {"x": "a,b\n"}})


def test_concurrent_writers_lose_no_row(tmp_path):
    path = str(tmp_path / "results.csv")
    with mp.get_context("spawn").Pool(8) as pool:
        pool.map(_writer, [(path, w, 500) for w in range(8)])
    rows = read_results(path)
    assert len(rows) == 4000 and len({r["expid"] for r in rows}) == 4000
    assert rows[0]["params"] == '{"x": "a,b\\n"}'
