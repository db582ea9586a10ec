"""run_expid end to end: grouped metrics, weighted monitor, streaming, the result row."""

import json

import pytest

import fuxi_like
from fuxi_like.results import parse_metrics, read_results
from helpers import make_model_folder, synthetic_dataset, zoo_module


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runner")
    ds = synthetic_dataset(tmp, n_rows=6000, seed=9, seq_weight=3.0, interaction=0.0, first_order=0.3)
    ds["feature_cols"].append({"name": "uid", "type": "meta", "copy_from": "user_id"})
    exp = {"model": "DeepFM", "dataset_id": "syn", "embedding_dim": 8, "hidden_units": [32], "batch_size": 256,
           "epochs": 3, "learning_rate": 3e-3}
    exps = {"G": dict(exp, group_id="uid", metrics=["AUC", "logloss", "gAUC", "avgAUC", "NDCG@5", "MRR"],
                      monitor={"AUC": 1, "logloss": -1}),
            "S": dict(exp, streaming=True), "N": dict(exp)}  # N is never trained
    return make_model_folder(tmp, {"syn": ds}, exps)


def test_grouped_metrics_weighted_monitor_and_result_row(folder, tmp_path):
    res = tmp_path / "r.csv"
    out = fuxi_like.run_expid(folder, "G", results_file=str(res), model_modules=[zoo_module("DeepFM")])
    t = out["test"]
    assert set(t) == {"AUC", "logloss", "gAUC", "avgAUC", "NDCG@5", "MRR"}
    assert t["AUC"] > 0.6 and 0.5 < t["gAUC"] <= 1 and 0 < t["MRR"] <= 1
    hist = out["state"]["history"]
    best = max(hist, key=lambda h: h["val_AUC"] - h["val_logloss"])
    assert out["state"]["best_epoch"] == best["epoch"]  # monitor = AUC - logloss
    row = read_results(res)[0]
    assert row["expid"] == "G" and len(row["params_hash"]) == 16 and float(row["wall_seconds"]) > 0
    assert parse_metrics(row["test"])["gAUC"] == pytest.approx(t["gAUC"], abs=1e-6)
    assert json.loads(row["params"])["group_id"] == "uid"
    assert int(row["epochs_run"]) == len(hist) and float(row["seconds_per_epoch"]) > 0

    # load_trained: the same model and best weights, without training: the same test metrics
    from helpers import ROOT

    loaded = fuxi_like.load_trained(folder, "G", model_dir=ROOT / "model_zoo" / "DeepFM")
    again = loaded["model"].evaluate_split(loaded["pipeline"].dataset("test"), list(t), "uid")
    for k, v in t.items():
        assert again[k] == pytest.approx(v, abs=1e-5), k
    assert loaded["finished"] is None  # the row went to another results file than the folder's
    (folder.parent / "results.csv").write_text(res.read_text())
    loaded = fuxi_like.load_trained(folder, "G", model_dir=ROOT / "model_zoo" / "DeepFM")
    assert loaded["finished"]["params_hash"] == row["params_hash"] == loaded["run_hash"][:16]


def test_streaming_training_learns(folder, tmp_path):
    out = fuxi_like.run_expid(folder, "S", results_file=str(tmp_path / "r.csv"), model_modules=[zoo_module("DeepFM")])
    assert out["test"]["AUC"] > 0.6


def test_load_trained_without_weights_names_the_path(folder):
    from fuxi_like.errors import ConfigError
    from helpers import ROOT

    with pytest.raises(ConfigError, match=r"N: no trained weights at .*N\.weights\.h5 \(train first"):
        fuxi_like.load_trained(folder, "N", model_dir=ROOT / "model_zoo" / "DeepFM")


def test_group_id_must_be_a_meta_feature(folder, tmp_path):
    import yaml

    from fuxi_like.errors import ConfigError

    cfg = folder / "model_config.yaml"
    data = yaml.safe_load(cfg.read_text())
    data["B"] = dict(data["S"], group_id="user_id", streaming=False)
    cfg.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"B\.group_id: feature 'user_id' has type categorical, expected meta"):
        fuxi_like.run_expid(folder, "B", results_file=str(tmp_path / "r.csv"), model_modules=[zoo_module("DeepFM")])


def test_a_second_process_of_a_running_expid_stops_with_a_clear_error(folder, tmp_path):
    """One owner per expid: while a process holds the expid's lock (its checkpoints live beside it), another run
    of it fails at once, writing nothing; the lock is free again when the holder ends."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    from fuxi_like.config import resolve_path
    from fuxi_like.errors import ConfigError
    from fuxi_like.experiment import load_model_config

    params = load_model_config(folder, "N")
    from helpers import ROOT

    lock = Path(resolve_path(params["model_root"], folder.parent)) / params["dataset_id"] / ".N.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, %r)\n"
        "from fuxi_like.io_utils import expid_lock\n"
        "with expid_lock(%r, 'N'):\n    print('held', flush=True); time.sleep(60)") % (str(ROOT), str(lock))],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        res = tmp_path / "r.csv"
        with pytest.raises(ConfigError, match=r"model_config.yaml: N: already running \(pid \d+, lock .*\.N\.lock\)"):
            fuxi_like.run_expid(folder, "N", results_file=str(res), model_modules=[zoo_module("DeepFM")])
        assert not res.exists()
    finally:
        holder.kill()
        holder.wait()
    from fuxi_like.io_utils import expid_lock

    t0 = time.time()
    with expid_lock(lock, "N"):  # free once the holder is gone (no stale lock)
        assert time.time() - t0 < 5
