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
