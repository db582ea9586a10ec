"""tf.distribute on CPU: Mirrored over 2 logical CPUs, MultiWorker over 2 loopback processes."""

import json
import os
import socket
import subprocess
import sys

import pytest

from helpers import ROOT, make_model_folder, synthetic_dataset

RUN = """
import json, sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
import fuxi_like
from helpers import zoo_module
out = fuxi_like.run_expid({cfg!r}, {expid!r}, model_modules=[zoo_module("DeepFM")], results_file={res!r})
print("RESULT " + json.dumps({{"test": out["test"], "epochs": len(out["state"]["history"]),
                               "losses": [h["loss"] for h in out["state"]["history"]]}}))
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dist")
    ds = synthetic_dataset(tmp, n_rows=6000, seed=4, seq_weight=3.0, interaction=0.0, first_order=0.3)
    exp = {"model": "DeepFM", "dataset_id": "syn", "embedding_dim": 8, "hidden_units": [32], "batch_size": 256,
           "epochs": 3, "learning_rate": 3e-3, "early_stop_patience": 5, "shuffle": False}
    return make_model_folder(tmp, {"syn": ds}, {
        "single": exp,
        "mirrored": dict(exp, distribute="mirrored", logical_cpus=2, distribute_devices=["/cpu:0", "/cpu:1"]),
        "multi": dict(exp, distribute="multi_worker")})


def launch(folder, expid, env=None):
    code = RUN.format(root=str(ROOT), tests=str(ROOT / "tests"), cfg=str(folder), expid=expid,
                      res=str(folder.parent / f"results_{expid}.csv"))
    e = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", **(env or {}))
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=e)


def result(proc, timeout=600):
    out, err = proc.communicate(timeout=timeout)
    tb = err[err.find("Traceback"):] if "Traceback" in err else err
    assert proc.returncode == 0, out[-2000:] + tb[:3000] + err[-1500:]
    return json.loads([l for l in out.splitlines() if l.startswith("RESULT ")][0][7:])


@pytest.mark.slow
def test_mirrored_two_logical_cpus_matches_one_device(folder):
    single = result(launch(folder, "single"))
    mirrored = result(launch(folder, "mirrored"))
    # same global batch, gradients averaged over the 2 replicas: the same optimisation up to float order
    assert mirrored["epochs"] == single["epochs"]
    for a, b in zip(single["losses"], mirrored["losses"]):
        assert a == pytest.approx(b, rel=2e-3)
    assert mirrored["test"]["AUC"] == pytest.approx(single["test"]["AUC"], abs=3e-3)
    assert mirrored["test"]["logloss"] == pytest.approx(single["test"]["logloss"], abs=3e-3)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_multi_worker_two_processes_on_loopback(folder):
    single = result(launch(folder, "single"))
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = [launch(folder, "multi", {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker",
                                                                                               "index": i}})})
             for i in range(2)]
    outs = [result(p) for p in procs]
    # both workers hold the same model and see the whole test split: identical metrics
    assert outs[0]["test"] == pytest.approx(outs[1]["test"], abs=1e-6)
    assert outs[0]["test"]["AUC"] > 0.6
    assert abs(outs[0]["test"]["AUC"] - single["test"]["AUC"]) < 0.03
    # only the chief (worker 0) wrote a result row and a model file
    res = folder.parent / "results_multi.csv"
    assert len(res.read_text().strip().splitlines()) == 2
    assert (folder.parent / "ckpt" / "syn" / "multi.keras").is_file()
