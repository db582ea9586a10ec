"""fuxi_like side of the peer comparison. Prints one `RESULT {json}` line."""

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from fuxi_like.tf_env import configure  # noqa: E402  TF's host allocator as the entry points set it

configure()


def dataset_config(spec, data_root):
    """fuxi_like's dataset config for a peer spec: the same CSVs, feature types and min count as FuxiCTR's."""
    cols = [{"name": spec["categorical"], "type": "categorical"}]
    if spec["numeric"]:
        cols.insert(0, {"name": spec["numeric"], "type": "numeric", "fill_na": 0})
    return {"data_root": data_root, "train_data": spec["paths"]["train"], "valid_data": spec["paths"]["valid"],
            "test_data": spec["paths"]["test"], "min_categr_count": spec["min_categr_count"], "feature_cols": cols,
            "label_col": {"name": spec["label"], "dtype": "float"}}


def main(spec):
    import keras
    import yaml

    from fuxi_like.data.build_dataset import build_dataset
    from fuxi_like.experiment import build_experiment, prepare_experiment
    from fuxi_like.training import fit_model

    hp = spec["hparams"]
    ds = dataset_config(spec, spec["work_dir"] + "/ours_data")
    model_hp = {"DeepFM": {"hidden_units": hp["hidden_units"]},
                "DCNv2": {"parallel_dnn_hidden_units": hp["hidden_units"], "num_cross_layers": hp["num_cross_layers"],
                          "model_structure": "parallel"}}[spec["model"]]
    exp = {"model": spec["model"], "dataset_id": spec["dataset_id"], "embedding_dim": hp["embedding_dim"],
           "batch_size": hp["batch_size"], "epochs": spec["epochs"], "learning_rate": hp["learning_rate"],
           "verbose": 0, "seed": spec["seed"], "resume": False, "optimizer": spec.get("optimizer", "adam"), **model_hp}
    cfg = Path(tempfile.mkdtemp(dir=spec["work_dir"])) / "model" / "config"
    cfg.mkdir(parents=True)
    (cfg / "dataset_config.yaml").write_text(yaml.safe_dump({spec["dataset_id"]: ds}))
    (cfg / "model_config.yaml").write_text(yaml.safe_dump({"Base": {}, "E": exp}))
    # the zoo folder's model class, this config (the runner's one path: fuxi_like.experiment)
    prepared = prepare_experiment(cfg, "E", model_dir=ROOT / "model_zoo" / spec["model"])
    params = prepared.params
    t0 = time.perf_counter()
    build_dataset(prepared.data_cfg, rebuild=True)
    prep_s = time.perf_counter() - t0
    if spec.get("prep_only"):
        print("RESULT " + json.dumps({"prep_s": prep_s}), flush=True)
        return
    built = build_experiment(prepared)  # reuses the data just built
    model, pipe = built.model, built.pipeline
    step_times = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            step_times.append(time.perf_counter())

    t1 = time.perf_counter()
    fit_model(model, pipe, params, cfg.parent / "ckpt" / "E", callbacks=[Timer()])
    fit_s = time.perf_counter() - t1
    res = model.evaluate_split(pipe.dataset("test"), ["AUC", "logloss"])
    warm = spec["warmup_steps"]
    steady = (len(step_times) - 1 - warm) * hp["batch_size"] / (step_times[-1] - step_times[warm]) \
        if len(step_times) > warm + 2 else float("nan")
    print("RESULT " + json.dumps({"prep_s": prep_s, "fit_s": fit_s, "steps": len(step_times),
                                  "train_samples_per_s": steady, "test_AUC": res["AUC"], "test_logloss": res["logloss"],
                                  "params": model.count_parameters()}), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
