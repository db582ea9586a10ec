"""Dataset recipes: seeded determinism, the Frappe CTR construction, results CSV safety."""

import multiprocessing as mp
from pathlib import Path

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


def _write_recbole(prefix, rows):
    for split, lines in rows.items():
        Path(f"{prefix}.{split}.inter").write_text(
            "user_id:token\titem_id_list:token_seq\titem_id:token\n" + "".join(f"{u}\t{h}\t{t}\n" for u, h, t in lines))


def test_recbole_source_rebuilds_the_published_leave_one_out_sequences(tmp_path):
    """RecBole .inter files (lists cut to a window, training rows in any order) give back each user's sequence,
    so the valid/test targets written are the files' own; a history that does not fit is an error naming the
    file and line."""
    from fuxi_like.datasets.seq_loo import read_recbole
    from fuxi_like.errors import DataError

    seq = [f"i{k}" for k in range(8)]  # window 3: histories longer than 3 are cut to their last 3 items
    train = [("u", " ".join(seq[max(0, t - 3):t]), seq[t]) for t in range(1, 6)][::-1]  # reversed file order
    rows = {"train": train + [("v", "a", "b")], "valid": [("u", " ".join(seq[3:6]), seq[6]), ("v", "a b", "c")],
            "test": [("u", " ".join(seq[4:7]), seq[7]), ("v", "b c", "d")]}
    _write_recbole(tmp_path / "X", rows)
    assert read_recbole(tmp_path / "X") == {"u": seq, "v": ["a", "b", "c", "d"]}
    rows["test"][0] = ("u", "i4 i9 i6", "i7")
    _write_recbole(tmp_path / "Y", rows)
    with pytest.raises(DataError, match=r"Y\.test\.inter: line 2: user 'u'"):
        read_recbole(tmp_path / "Y")


@pytest.mark.skipif(not (SHARED / "amazon_scientific_text").is_dir(), reason="../shared/data/amazon_scientific_text absent")
def test_recbole_source_on_unisrec_scientific():
    from fuxi_like.datasets.seq_loo import read_recbole

    seqs = read_recbole(SHARED / "amazon_scientific_text" / "Scientific")
    # UniSRec (KDD'22) Table 1, Scientific: 8,442 users, 4,385 items, 59,427 interactions
    assert len(seqs) == 8442 and len({i for s in seqs.values() for i in s}) == 4385
    assert sum(len(s) for s in seqs.values()) == 59427


def test_user_items_reads_sasrecs_one_pair_a_line_files_like_one_user_a_line(tmp_path):
    from fuxi_like.datasets.seq_loo import read_user_items
    from fuxi_like.errors import DataError

    per_user = tmp_path / "users.txt"
    per_user.write_text("u1 a b c d\nu2 b c e\n")
    pairs = tmp_path / "pairs.txt"  # SASRec's data layout: one interaction a line, chronological
    pairs.write_text("u1 a\nu1 b\nu2 b\nu1 c\nu2 c\nu1 d\nu2 e\n")
    want = {"u1": ["a", "b", "c", "d"], "u2": ["b", "c", "e"]}
    assert read_user_items(per_user) == want
    assert read_user_items(pairs) == want  # detected: two fields a line, users repeat
    assert read_user_items(pairs, layout="pair_per_line") == want
    # a user on two lines of a one-user-a-line file would lose the first line's items: an error naming both
    bad = tmp_path / "bad.txt"
    bad.write_text("u1 a b\nu2 c d e\nu1 f g\n")
    with pytest.raises(DataError, match=r"bad\.txt: user 'u1' is on line 1 and line 3"):
        read_user_items(bad)
    with pytest.raises(DataError, match=r"line 1: a one-pair-a-line file .* got 3 fields"):
        read_user_items(bad, layout="pair_per_line")
