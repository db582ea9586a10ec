"""Energy/carbon accounting (fuxi_like.training.green): codecarbon's readings in the results row and per
epoch, a row without them when tracking is off, older results files widened, GreenRec's ApC, the extra."""

import csv
import importlib.util
import json
import sys

import pytest

import fuxi_like
from fuxi_like.errors import ConfigError
from fuxi_like.results import COLUMNS, append_result, read_results
from fuxi_like.training import green
from helpers import make_model_folder, synthetic_dataset, zoo_module

needs_codecarbon = pytest.mark.skipif(importlib.util.find_spec("codecarbon") is None,
                                      reason='codecarbon is not installed (pip install -e ".[green]")')


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("green")
    ds = synthetic_dataset(tmp, n_rows=3000, seed=5)
    exp = {"model": "DeepFM", "dataset_id": "syn", "embedding_dim": 4, "hidden_units": [16], "batch_size": 256,
           "epochs": 2, "learning_rate": 3e-3, "early_stop_patience": 5}
    exps = {"Off": exp, "On": dict(exp, energy_tracking=True, carbon_country="FRA")}
    return make_model_folder(tmp, {"syn": ds}, exps)


def _no_codecarbon(monkeypatch):
    for name in [m for m in sys.modules if m == "codecarbon" or m.startswith("codecarbon.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "codecarbon", None)  # `import codecarbon` raises ImportError


@needs_codecarbon
def test_tracking_off_then_on_same_results_file(folder, tmp_path, monkeypatch):
    res = tmp_path / "results.csv"
    with monkeypatch.context() as m:  # tracking off needs no codecarbon and writes the row as before
        _no_codecarbon(m)
        off = fuxi_like.run_expid(folder, "Off", results_file=str(res), model_modules=[zoo_module("DeepFM")])
    assert off["energy"] is None
    with open(res, newline="") as f:
        assert next(csv.reader(f)) == COLUMNS
    old_row = read_results(res)[0]
    assert list(old_row) == COLUMNS

    on = fuxi_like.run_expid(folder, "On", results_file=str(res), model_modules=[zoo_module("DeepFM")])
    rep = on["energy"]
    assert on["run_hash"] == off["run_hash"]  # the accounting keys are not in the run's hash
    rows = read_results(res)
    assert list(rows[0]) == COLUMNS + green.ENERGY_COLUMNS  # the older file's header was widened
    assert {k: rows[0][k] for k in COLUMNS} == old_row and all(rows[0][c] == "" for c in green.ENERGY_COLUMNS)
    row = rows[1]
    assert row["expid"] == "On" and row["params_hash"] == old_row["params_hash"]
    assert float(row["energy_kwh"]) > 0 and float(row["co2e_kg"]) > 0
    assert float(row["energy_kwh"]) == pytest.approx(rep["energy_kwh"])
    parts = sum(float(row[c]) for c in ("energy_cpu_kwh", "energy_ram_kwh", "energy_gpu_kwh"))
    assert parts == pytest.approx(float(row["energy_kwh"]), rel=1e-6)
    assert float(row["energy_gpu_kwh"]) == 0  # a CPU run leaves the machine's GPUs out
    assert row["energy_method"] in green.CPU_METHODS and row["energy_method"] != "unknown"
    assert row["carbon_country"] == "FRA" and row["energy_tracking_mode"] == "machine"
    # FRA's intensity in codecarbon's energy-mix table, applied as co2e = energy x intensity
    fra = green._energy_mix()["FRA"]["carbon_intensity"]
    assert float(row["carbon_intensity_g_per_kwh"]) == pytest.approx(fra, rel=1e-6)
    assert float(row["co2e_kg"]) == pytest.approx(float(row["energy_kwh"]) * fra / 1000, rel=1e-6)
    auc = on["test"]["AUC"]
    assert float(row["apc"]) == pytest.approx(green.apc(auc, float(row["co2e_kg"])), rel=1e-6)
    assert float(row["cpu_seconds"]) > 0 and float(row["tracked_seconds"]) > 0
    trainable, total = int(row["params_trainable"]), int(row["params_total"])
    assert trainable == on["model"].count_parameters() and total >= trainable > 0

    # per epoch: one cumulative reading per epoch, monotone, below the total (evaluation comes after)
    epochs = rep["epochs"]
    assert [e["epoch"] for e in epochs] == [h["epoch"] for h in on["state"]["history"]] == [1, 2]
    cum = [e["energy_kwh"] for e in epochs]
    assert 0 < cum[0] < cum[1] <= rep["energy_kwh"]
    assert all(e["co2e_kg"] > 0 for e in epochs)
    per_epoch = json.loads(row["energy_per_epoch_kwh"])
    assert per_epoch == pytest.approx([cum[0], cum[1] - cum[0]]) and all(x > 0 for x in per_epoch)
    details = json.loads(row["energy_details"])
    assert details["codecarbon_version"] and details["ram_method"] == "model" and len(details["epochs"]) == 2

    # a later run without tracking still appends to the widened file (its trailing cells read as None)
    append_result(res, {"expid": "later", "params": {}})
    last = read_results(res)[-1]
    assert last["expid"] == "later" and last["energy_kwh"] is None
    assert not list(tmp_path.glob("**/emissions*.csv")) and not list(folder.parent.glob("**/emissions*.csv"))


def test_append_row_to_new_and_current_files(tmp_path):
    res = tmp_path / "r.csv"
    row = {"expid": "a", "valid": {"AUC": 0.7}, "params": {"x": [1, 2]}, "energy_kwh": 1e-5,
           "energy_per_epoch_kwh": [5e-6, 5e-6], "energy_details": {"k": "v,w"}}
    green.append_row(res, row)
    green.append_row(res, dict(row, expid="b"))
    rows = read_results(res)
    assert [r["expid"] for r in rows] == ["a", "b"] and list(rows[0]) == COLUMNS + green.ENERGY_COLUMNS
    assert rows[1]["valid"] == "AUC: 0.700000" and json.loads(rows[1]["params"]) == {"x": [1, 2]}
    assert float(rows[1]["energy_kwh"]) == 1e-5 and json.loads(rows[1]["energy_details"]) == {"k": "v,w"}
    assert rows[1]["co2e_kg"] == "" and json.loads(rows[0]["energy_per_epoch_kwh"]) == [5e-6, 5e-6]


def test_apc_on_hand_computed_numbers():
    # GreenRec: ApC = (AUC% - 50) / CO2e x 100
    assert green.apc(0.75, 0.002, unit="kg") == pytest.approx((75 - 50) / 0.002 * 100) == pytest.approx(1_250_000)
    assert green.apc(0.75, 2.0, unit="g") == pytest.approx(1250)
    assert green.apc(0.6812, 0.5) == pytest.approx(3624)
    assert green.apc(0.5, 1.0) == 0
    with pytest.raises(ValueError, match=r"fraction in \[0, 1\]"):
        green.apc(75, 0.002)
    with pytest.raises(ValueError, match="unit"):
        green.apc(0.75, 0.002, unit="t")
    with pytest.raises(ValueError, match="> 0"):
        green.apc(0.75, 0.0)


def test_missing_codecarbon_names_the_extra(folder, tmp_path, monkeypatch):
    from fuxi_like.pretrained.text import MissingExtraError

    _no_codecarbon(monkeypatch)
    with pytest.raises(MissingExtraError, match=r'pip install "fuxi_like\[green\]"'):
        green.EnergyTracker()
    # the runner fails before building any data or training
    with pytest.raises(MissingExtraError, match=r"energy_tracking needs codecarbon"):
        fuxi_like.run_expid(folder, "On", results_file=str(tmp_path / "r.csv"), model_modules=[zoo_module("DeepFM")])
    assert not (tmp_path / "r.csv").exists()


@needs_codecarbon
def test_bad_accounting_keys_are_config_errors():
    with pytest.raises(ConfigError, match=r"carbon_country 'FRANCE' .*did you mean 'FRA'"):
        green.EnergyTracker(country="FRANCE")
    with pytest.raises(ConfigError, match="energy_tracking_mode must be one of machine, process"):
        green.EnergyTracker(tracking_mode="node")
    with pytest.raises(ConfigError, match="carbon_intensity"):
        green.EnergyTracker(intensity=-3)


@needs_codecarbon
def test_world_default_and_forced_intensity_and_process_mode():
    """A tracker used directly: WORLD is codecarbon's world average; a forced intensity wins; process mode."""
    import time

    t = green.EnergyTracker(intensity=100.0, tracking_mode="process").start()
    t0 = time.process_time()
    while time.process_time() - t0 < 0.3:
        pass
    t.epoch_end(1)
    rep = t.stop()
    assert rep["energy_kwh"] > 0 and rep["co2e_kg"] == pytest.approx(rep["energy_kwh"] * 0.1, rel=1e-6)
    assert rep["carbon_intensity_g_per_kwh"] == pytest.approx(100.0) and rep["energy_tracking_mode"] == "process"
    assert t.stop() is rep and len(rep["epochs"]) == 1 and rep["cpu_seconds"] >= 0.3
    assert green.world_intensity() == pytest.approx(475)
    assert green.EnergyTracker().intensity == pytest.approx(475)
