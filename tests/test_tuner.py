"""Sweeps: grid/random expansion, parallel CPU workers, failures, resume, summary + plots."""

import shutil
import subprocess
import sys

import pytest
import yaml

from fuxi_like.errors import ConfigError
from fuxi_like.results import read_results
from fuxi_like.summarize import summarize
from fuxi_like.tuner import expand_sweep, run_sweep
from helpers import ROOT

DATA = {"syn": {"data_root": "../../data/processed/", "train_data": "../../data/raw/syn/train.csv",
                "valid_data": "../../data/raw/syn/valid.csv", "test_data": "../../data/raw/syn/test.csv",
                "recipe": {"name": "synthetic_ctr", "n_rows": 3000, "seed": 1},
                "feature_cols": [{"name": ["user_id", "item_id", "item_cate", "c1", "c2"], "type": "categorical"},
                                 {"name": "num1", "type": "numeric"}],
                "label_col": {"name": "label"}}}


@pytest.fixture()
def zoo(tmp_path):
    folder = tmp_path / "zoo" / "DeepFM"
    shutil.copytree(ROOT / "model_zoo" / "DeepFM", folder,
                    ignore=shutil.ignore_patterns("checkpoints", "results.csv", "__pycache__", ".seed_*"))
    (folder / "config" / "dataset_config.yaml").write_text(yaml.safe_dump(DATA))
    mc = {"Base": {"verbose": 0, "model_root": "./checkpoints/"},
          "DeepFM_base": {"model": "DeepFM", "dataset_id": "syn", "embedding_dim": 4, "hidden_units": [16],
                          "batch_size": 256, "epochs": 1}}
    (folder / "config" / "model_config.yaml").write_text(yaml.safe_dump(mc))
    return folder


def tuner(tmp_path, space, **extra):
    f = tmp_path / "sweeps" / "t.yaml"
    f.parent.mkdir(exist_ok=True)
    f.write_text(yaml.safe_dump({"base_config": "../zoo/DeepFM/config", "base_expid": "DeepFM_base",
                                 "tuner_space": space, **extra}))
    return f


def test_grid_and_random_expansion(zoo, tmp_path):
    f = tuner(tmp_path, {"embedding_dim": [4, 8], "net_dropout": [0.0, 0.1, 0.2], "learning_rate": 1e-3})
    sweep_dir, trials = expand_sweep(f)
    assert len(trials) == 6 and trials[0]["expid"].startswith("DeepFM_base_001_")
    assert len({t["expid"] for t in trials}) == 6
    again = [t["expid"] for t in expand_sweep(f)[1]]
    assert again == [t["expid"] for t in trials]  # stable ids
    cfg = yaml.safe_load((sweep_dir / "config" / "model_config.yaml").read_text())
    assert cfg[trials[5]["expid"]]["net_dropout"] == 0.2 and cfg[trials[5]["expid"]]["embedding_dim"] == 8
    data = yaml.safe_load((sweep_dir / "config" / "dataset_config.yaml").read_text())
    assert data["syn"]["train_data"].startswith("/")  # paths made absolute for the sweep folder
    r1 = [t["expid"] for t in expand_sweep(f, max_trials=3, search="random", seed=1)[1]]
    r2 = [t["expid"] for t in expand_sweep(f, max_trials=3, search="random", seed=1)[1]]
    assert r1 == r2 and len(r1) == 3 and set(r1) <= set(again)
    fd = tuner(tmp_path, {"min_categr_count": [1, 2]})
    _, td = expand_sweep(fd)
    assert len({t["dataset_id"] for t in td}) == 2  # dataset-level keys make dataset variants


def test_variants_change_several_keys_together(zoo, tmp_path):
    f = tuner(tmp_path, {"seed": [1, 2]}, variants={"small": {"embedding_dim": 2, "hidden_units": [8]},
                                                    "plain": {}})
    sweep_dir, trials = expand_sweep(f)
    names = [t["swept"]["variant"] for t in trials]
    assert sorted(names) == ["plain", "plain", "small", "small"] and names[0] == names[1]
    cfg = yaml.safe_load((sweep_dir / "config" / "model_config.yaml").read_text())
    by = {(t["swept"]["variant"], t["swept"]["seed"]): t["expid"] for t in trials}
    small, plain = cfg[by["small", 1]], cfg[by["plain", 1]]
    assert small["embedding_dim"] == 2 and small["hidden_units"] == [8] and small["seed"] == 1
    assert plain["embedding_dim"] == 4 and plain["hidden_units"] == [16]
    # a sweep without variants keeps its expids (the empty variant changes nothing)
    no_var = [t["expid"] for t in expand_sweep(tuner(tmp_path, {"seed": [1, 2]}))[1]]
    assert no_var[0].split("_")[-1] == by["plain", 1].split("_")[-1]
    with pytest.raises(ConfigError, match="variants"):
        expand_sweep(tuner(tmp_path, {}, variants=["a"]))
    with pytest.raises(ConfigError, match="no_such_key"):
        expand_sweep(tuner(tmp_path, {}, variants={"bad": {"no_such_key": 1}}))


def test_unknown_key_fails_before_running(zoo, tmp_path):
    f = tuner(tmp_path, {"net_dropuot": [0.1]})
    with pytest.raises(ConfigError, match=r"t\.yaml: DeepFM_base_001_\w+: unknown key 'net_dropuot' \(did you mean 'net_dropout'"):
        expand_sweep(f)
    with pytest.raises(ConfigError, match="unknown key 'tuner_spaces'"):
        expand_sweep(tuner(tmp_path, {}, tuner_spaces={}))


@pytest.mark.slow
def test_parallel_sweep_reports_failure_resumes_and_summarizes(zoo, tmp_path, capsys):
    f = tuner(tmp_path, {"hidden_activations": ["relu", "no_such_activation"], "net_dropout": [0.0, 0.1]})
    rc, status = run_sweep(f, gpus=[-1, -1], poll=0.2)
    out = capsys.readouterr().out
    assert rc == 1
    failed = [e for e, s in status.items() if s == "failed"]
    assert len(failed) == 2 and sum(s == "done" for s in status.values()) == 2
    for e in failed:
        assert f"FAILED {e}" in out and f"logs/{e}.log" in out
        assert "no_such_activation" in (f.parent / "t" / "logs" / f"{e}.log").read_text()
    assert "[sweep] done 2 | running 0 | failed 2 | left 0" in out
    rows = read_results(f.parent / "t" / "results.csv")
    assert len(rows) == 2
    # rerun: finished trials are skipped, the failed ones are tried again (and fail again)
    rc2, status2 = run_sweep(f, gpus=[-1], poll=0.2)
    out2 = capsys.readouterr().out
    assert rc2 == 1 and "2 trial(s) already finished" in out2
    assert len(read_results(f.parent / "t" / "results.csv")) == 2
    table = summarize(str(f.parent / "t" / "results.csv"))
    assert "| rank | net_dropout |" in table and table.count("\n| ") == 3
    assert (f.parent / "t" / "plots" / "AUC_vs_net_dropout.png").is_file()


@pytest.mark.slow
def test_seeds_are_averaged_in_the_summary(zoo, tmp_path):
    f = tuner(tmp_path, {"net_dropout": [0.0, 0.2], "seed": [1, 2]})
    r = subprocess.run([sys.executable, "-m", "fuxi_like.cli", "sweep", str(f), "--gpu", "-1", "-1"],
                       capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                                             "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    table = summarize(str(f.parent / "t" / "results.csv"))
    lines = [l for l in table.splitlines() if l.startswith("| 1 ") or l.startswith("| 2 ")]
    assert len(lines) == 2 and all("±" in l and l.rstrip().endswith("| 2 |") for l in lines)


def _procs_with(text):
    """pids whose command line contains `text` (the process table, /proc)."""
    from pathlib import Path

    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if text in (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    out.append(int(p.name))
            except OSError:
                pass
    return out


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_kill_9_of_a_sweep_leaves_no_orphan_and_the_rerun_writes_no_duplicate(zoo, tmp_path):
    import os
    import signal
    import time

    f = tuner(tmp_path, {"net_dropout": [0.0, 0.1]}, )
    sweep_dir = f.parent / "t"
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    sweep = subprocess.Popen([sys.executable, "-m", "fuxi_like.cli", "sweep", str(f), "--gpu", "-1"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = str(sweep_dir / "config")
    t0 = time.time()
    while not _procs_with(marker) and time.time() - t0 < 120:
        time.sleep(0.2)
    trials = _procs_with(marker)
    assert trials, "no trial started"
    time.sleep(2)
    os.kill(sweep.pid, signal.SIGKILL)  # the sweep alone, mid-trial
    sweep.wait()
    t0 = time.time()
    while any(os.path.exists(f"/proc/{p}") and "zombie" not in open(f"/proc/{p}/status").read().lower()
              for p in trials) and time.time() - t0 < 20:
        time.sleep(0.2)
    assert not [p for p in trials if os.path.exists(f"/proc/{p}")
                and "zombie" not in open(f"/proc/{p}/status").read().lower()], "an orphaned trial kept running"
    rc, status = run_sweep(f, gpus=[-1], poll=0.2)
    assert rc == 0 and all(s == "done" for s in status.values())
    rows = read_results(sweep_dir / "results.csv")
    assert sorted(r["expid"] for r in rows) == sorted(status)  # each trial once


def test_summarize_counts_a_trial_written_twice_once(tmp_path, caplog):
    import logging

    from fuxi_like.results import append_result

    res = tmp_path / "results.csv"
    for expid, h, auc in (("a", "h1", 0.7), ("b", "h2", 0.6), ("a", "h1", 0.72)):
        append_result(res, {"time": "t", "expid": expid, "model": "M", "dataset_id": "d", "params_hash": h,
                            "valid": f"AUC: {auc}", "test": f"AUC: {auc}", "best_epoch": 1, "epochs_run": 1,
                            "seconds_per_epoch": 1.0, "wall_seconds": 1.0,
                            "params": {"net_dropout": 0.1 if expid == "a" else 0.2}})
    with caplog.at_level(logging.WARNING, logger="fuxi_like"):
        table = summarize(str(res))
    assert "1 duplicate row(s) of the same (expid, params_hash)" in caplog.text
    assert table.count("\n| ") == 3 and "0.7200" in table and "0.7000" not in table  # header + 2 trials
