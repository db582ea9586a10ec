"""benchmark/tables.py: every committed results table is what its runs CSV + spec generate (CI runs --check
through this test), a hand edit is caught, and a changed run changes the table with a ddof=1 std."""

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TABLES = ROOT / "benchmark" / "tables.py"


def run(*args):
    return subprocess.run([sys.executable, str(TABLES), *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def copy_results(tmp_path):
    dst = tmp_path / "results"
    shutil.copytree(ROOT / "benchmark" / "results", dst, ignore=shutil.ignore_patterns("*.png", "*_plots"))
    return dst


def test_committed_tables_match_their_runs_csvs():
    r = run("--check")
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_table_names_its_generator_and_raw_command():
    for md in sorted((ROOT / "benchmark" / "results").glob("*.md")):
        first = md.read_text().splitlines()[0]
        assert "`python benchmark/tables.py`" in first and "raw rows from: `" in first, md.name


def test_a_hand_edited_table_fails_the_check_naming_it(tmp_path):
    res = copy_results(tmp_path)
    p = res / "rar_ml.md"
    p.write_text(p.read_text().replace("| DIN | base alone |", "| DIN | base alone (edited) |"))
    r = run("--check", "--results-dir", str(res))
    assert r.returncode == 1
    assert "rar_ml.md" in r.stderr and "generated/rar_ml.md" in r.stdout
    assert "frappe.md" not in r.stderr  # only the edited table differs


def test_a_changed_run_changes_the_mean_and_the_std_is_ddof1(tmp_path):
    res = copy_results(tmp_path)
    runs = res / "runs" / "media_cnn.csv"
    rows = list(csv.DictReader(open(runs)))
    rows[2]["test accuracy"] = "0.55"
    with open(runs, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    assert run("--check", "--results-dir", str(res)).returncode == 1
    assert run("media.md", "--results-dir", str(res)).returncode == 0
    vals = np.array([float(r["test accuracy"]) for r in rows])
    line = [l for l in (res / "media.md").read_text().splitlines() if l.startswith("| mean")][0]
    assert f"**{vals.mean():.2f} ± {vals.std(ddof=1):.2f}**" in line and "(n=3)" in line
    assert vals.std(ddof=1) != vals.std(ddof=0)


def test_frappe_table_is_mean_and_sample_std_of_the_raw_results_rows(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmark"))
    import tables

    rows = tables.read_rows(ROOT / "benchmark" / "results" / "runs" / "frappe.csv")
    latest = {}
    for r in rows:
        latest[(r["expid"], json.loads(r["params"])["seed"])] = r  # the latest run of each (expid, seed)
    auc = np.array([tables.parse_metrics(r["test"])["AUC"] for (e, _), r in latest.items() if e == "DeepFM_frappe"])
    assert len(auc) == 3
    text = (ROOT / "benchmark" / "results" / "frappe.md").read_text()
    m = re.search(r"\| DeepFM \| ([\d.]+) ± ([\d.]+) \|", text)
    assert m.group(1) == f"{auc.mean():.4f}" and m.group(2) == f"{auc.std(ddof=1):.4f}"


def tables_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_rat_compare_writer_appends_runs_and_the_table_shows_their_ddof1_std(tmp_path):
    """A converted benchmark script's output path: rat_compare's per-seed rows go to runs/rat_mltag.csv of a
    results dir and the regenerated table shows mean ± sample std of that run's seeds (the earlier aggregate
    row of the same model stays in the CSV, no longer shown); the other models' rows are untouched."""
    import importlib.util

    import pandas as pd

    spec = importlib.util.spec_from_file_location("rat_compare", ROOT / "benchmark" / "rat_compare.py")
    rat_compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rat_compare)
    res = copy_results(tmp_path)
    before = tables_rows(res / "runs" / "rat_mltag.csv")
    auc, ll = [0.51, 0.53, 0.56], [0.70, 0.66, 0.65]
    best = pd.DataFrame({"params_d": [{"seed": 2021 + i, "embedding_regularizer": 0.1} for i in range(3)],
                         "test_AUC": auc, "test_logloss": ll, "valid_AUC": [0.55, 0.56, 0.57],
                         "seconds_per_epoch": [10.0, 11.0, 12.0]})
    tail = [{"all": a, "rare item_id limit": 5.0, "rare item_id": a - 0.1, "rare item_id share": 0.4,
             "rare tag_id limit": 5.0, "rare tag_id": a - 0.2, "rare tag_id share": 0.6} for a in auc]
    source = "python benchmark/rat_compare.py --dataset mltag (test) on 2099-01-01 00:00:00 UTC"
    rows = rat_compare.run_rows("main", "RAT", best, source) + rat_compare.run_rows("tail", "RAT", best, source, tail)
    path = rat_compare.write_results("mltag", rows, res)

    after = tables_rows(res / "runs" / "rat_mltag.csv")
    assert after[:len(before)] == before and len(after) == len(before) + 6
    assert {r["seed"] for r in after[len(before):]} == {"2021", "2022", "2023"}
    text = path.read_text()
    a, l = np.array(auc), np.array(ll)
    line = next(x for x in text.splitlines() if x.startswith("| RAT (cascade) | 0.1 |"))
    assert f"| {a.mean():.4f} ± {a.std(ddof=1):.4f} | {l.mean():.4f} ± {l.std(ddof=1):.4f} |" in line
    assert line.endswith("| 3 |")  # n of the new run, not the aggregate's 3†
    assert f"{a.std(ddof=1):.4f}" != f"{a.std(ddof=0):.4f}"
    tail_line = next(x for x in text.split("## Long tail")[1].splitlines() if x.startswith("| RAT (cascade) |"))
    assert f"| {a.mean():.4f} ± {a.std(ddof=1):.4f} | {a.mean() - 0.1:.4f} ± {a.std(ddof=1):.4f} |" in tail_line
    committed = (ROOT / "benchmark" / "results" / "rat_mltag.md").read_text()
    dcn = [x for x in committed.splitlines() if x.startswith("| DCNv2 |")]
    assert all(x in text for x in dcn)  # models of no new run keep their rows
    r = run("--check", "--results-dir", str(res))
    assert r.returncode == 0, r.stdout + r.stderr  # the written table is what the CSV + spec generate


def test_results_seeds_averages_the_current_config_and_counts_older_runs():
    import tables

    def row(expid, seed, ndcg, lr, **extra):
        params = {"seed": seed, "learning_rate": lr, **extra}
        return {"expid": expid, "model": expid.split("_")[0], "test": f"NDCG@10: {ndcg}", "params": json.dumps(params),
                "best_epoch": "3", "seconds_per_epoch": "2.0"}

    rows = [row("A_x", 1, 0.5, 0.1),                      # an older config of A (another learning rate)
            row("A_x", 1, 0.2, 0.01, new_key=True),       # the current config; a key the older rows lack is no
            row("A_x", 2, 0.4, 0.01),                     # difference
            row("B_x", 1, 0.3, 0.01)]
    text = tables.d_results_seeds({"rows": rows}, ["NDCG@10"], sort_by="NDCG@10")
    lines = text.splitlines()[2:]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    assert cells[0][0] == "A" and cells[0][1] == f"0.3000 ± {np.std([0.2, 0.4], ddof=1):.4f}"
    assert cells[0][-2:] == ["2", "1"] and cells[0][2] == "1, 2"  # n = 2 current-config runs, 1 older
    assert cells[1][0] == "B" and cells[1][1] == "0.3000" and cells[1][-2:] == ["1", "0"]
