"""Saving and resuming: `.keras` round trip and crash-resume equal to a clean run."""

import keras
import numpy as np
import pytest

import fuxi_like
from fuxi_like.config import load_dataset_config
from fuxi_like.experiment import load_model_config, validate_model_params
from fuxi_like.data.build_dataset import build_dataset, load_feature_map
from fuxi_like.data.tf_dataset import InputPipeline
from fuxi_like.training import fit_model
from fuxi_like.utils import seed_everything
from helpers import make_model_folder, synthetic_dataset, zoo_module


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ckpt")
    ds = synthetic_dataset(tmp, n_rows=3000)
    exp = {"model": "DNN", "dataset_id": "syn", "embedding_dim": 4, "hidden_units": [16, 8], "net_dropout": 0.2,
           "batch_norm": True, "batch_size": 256, "epochs": 4, "early_stop_patience": 10, "seed": 11,
           "embedding_regularizer": 1e-4}
    return make_model_folder(tmp, {"syn": ds}, {"E": exp, "DFM": dict(exp, model="DeepFM", epochs=1)})


def test_keras_file_round_trip_gives_identical_predictions(folder):
    mod = zoo_module("DeepFM")
    out = fuxi_like.run_expid(folder, "DFM", model_modules=[mod])
    model = out["model"]
    pipe = InputPipeline(model.feature_map, 512)
    x, _ = next(iter(pipe.dataset("test")))
    before = model.predict_on_batch(x)
    loaded = keras.saving.load_model(out["model_path"])
    assert type(loaded).__name__ == "DeepFM"
    np.testing.assert_array_equal(np.asarray(loaded.predict_on_batch(x)), np.asarray(before))
    assert loaded.get_config()["hidden_units"] == [16, 8]


class Crash(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt("simulated crash after epoch 2")


def train(folder, prefix, callbacks=()):
    mod = zoo_module("DNN")
    params = validate_model_params(load_model_config(folder, "E"), mod.DNN)
    fmap = load_feature_map(build_dataset(load_dataset_config(folder, "syn")))
    seed_everything(params["seed"])
    model = mod.DNN(fmap, embedding_dim=4, hidden_units=[16, 8], net_dropout=0.2, batch_norm=True,
                    embedding_regularizer=1e-4)
    model.compile_from_params(params)
    pipe = InputPipeline(fmap, params["batch_size"], seed=params["seed"])
    state = fit_model(model, pipe, params, prefix, run_hash="h", callbacks=callbacks)
    return model, state


def test_resume_after_crash_equals_uninterrupted(folder, tmp_path):
    clean_model, clean_state = train(folder, tmp_path / "clean")
    with pytest.raises(KeyboardInterrupt):
        train(folder, tmp_path / "crashy", callbacks=[Crash()])
    assert (tmp_path / "crashy.resume" / "state.json").exists()
    resumed_model, resumed_state = train(folder, tmp_path / "crashy")
    assert len(resumed_state["history"]) == 4
    for a, b in zip(clean_state["history"], resumed_state["history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)
        assert a["val_AUC"] == pytest.approx(b["val_AUC"], rel=1e-6)
        assert a["lr"] == pytest.approx(b["lr"])
    for va, vb in zip(clean_model.weights, resumed_model.weights):
        np.testing.assert_allclose(va.numpy(), vb.numpy(), rtol=1e-5, atol=1e-7)
    assert not (tmp_path / "crashy.resume").exists()  # snapshot removed after a finished run


def test_snapshot_of_other_params_is_not_resumed(folder, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        train(folder, tmp_path / "x", callbacks=[Crash()])
    import json

    state_file = tmp_path / "x.resume" / "state.json"
    st = json.loads(state_file.read_text())
    st["run_hash"] = "other"
    state_file.write_text(json.dumps(st))
    _, state = train(folder, tmp_path / "x")
    assert [h["epoch"] for h in state["history"]] == [1, 2, 3, 4]


@pytest.mark.parametrize("damage", ["truncate_npz", "garble_json"])
def test_a_damaged_snapshot_is_moved_aside_and_training_starts_over(folder, tmp_path, damage, caplog):
    """A truncated variables.npz or a garbled state.json no longer fails every rerun: the snapshot is moved aside
    with a warning naming the file, and the run trains from the start (equal to a clean run)."""
    import logging

    clean_model, clean_state = train(folder, tmp_path / "clean")
    with pytest.raises(KeyboardInterrupt):
        train(folder, tmp_path / "x", callbacks=[Crash()])
    snap = tmp_path / "x.resume"
    if damage == "truncate_npz":
        f = snap / "variables.npz"
        f.write_bytes(f.read_bytes()[:200])
    else:
        (snap / "state.json").write_text('{"epoch": 2, "monit')
    with caplog.at_level(logging.WARNING, logger="fuxi_like"):
        model, state = train(folder, tmp_path / "x")
    assert "Resume snapshot unreadable" in caplog.text and ("variables.npz" in caplog.text or
                                                             "state.json" in caplog.text)
    assert [h["epoch"] for h in state["history"]] == [1, 2, 3, 4]
    for a, b in zip(clean_state["history"], state["history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)
    assert list(tmp_path.glob("x.resume.damaged-*"))  # kept for inspection


def test_damaged_weights_and_saved_models_are_data_errors_naming_the_file(folder, tmp_path):
    from fuxi_like.errors import DataError
    from fuxi_like.utils import load_saved_model

    out = fuxi_like.run_expid(folder, "DFM", results_file=str(tmp_path / "r.csv"), model_modules=[zoo_module("DeepFM")])
    keras_file = tmp_path / "m.keras"
    keras_file.write_bytes(open(out["model_path"], "rb").read()[:500])  # truncated archive
    with pytest.raises(DataError, match=r"m\.keras: damaged \.keras file"):
        load_saved_model(keras_file)
    weights = out["model_path"].replace(".keras", ".weights.h5")
    data = open(weights, "rb").read()
    with open(weights, "wb") as f:
        f.write(data[:len(data) // 2])
    from helpers import ROOT

    with pytest.raises(DataError, match=r"DFM\.weights\.h5: the trained weights cannot be read .*retrain: python "
                                        r"run_expid.py --expid DFM"):
        fuxi_like.load_trained(folder, "DFM", model_dir=ROOT / "model_zoo" / "DeepFM")
