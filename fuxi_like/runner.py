"""`run_expid`: config -> dataset -> model -> fit -> evaluate -> results row; `load_trained`."""

import contextlib
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import tensorflow as tf
import yaml

from .config import load_yaml, resolve_path
from .distribute import configure_logical_cpus, is_chief_task, make_strategy
from .errors import ConfigError, DataError
from .io_utils import expid_lock
from .experiment import build_experiment, prepare_experiment
from .results import append_result, read_results
from .training import fit_model
from .training.green import ENERGY_COLUMNS, EnergyTracker, append_row, energy_row
from .training.trainer import build_for_training
from .utils import setup_device, setup_logging

log = logging.getLogger("fuxi_like")


def run_expid(config_dir, expid, gpu=-1, results_file=None, model_modules=None, rebuild_dataset=False,
              model_dir=None, overrides=None):
    """Run one experiment end to end; return a dict with valid/test metrics.

    config_dir: the model folder's `config/` directory.
    model_modules: modules to search for the model class (default: `<model_dir or model folder>/src`).
    model_dir: a model folder whose `src/` holds the class, when `config_dir` is elsewhere (sweeps).
    results_file: CSV to append the result row to (default `<model folder>/results.csv`).
    overrides: {key: value} replacing the expid's values (`--seed`, `--set KEY=VALUE`); the results row's
    params show them.
    """
    t_start = time.time()
    spec = prepare_experiment(config_dir, expid, model_dir=model_dir, model_modules=model_modules,
                              overrides=overrides)
    root = Path(resolve_path(spec.params["model_root"], spec.run_dir)) / spec.params["dataset_id"]
    if spec.params["distribute"] == "multi_worker" and not is_chief_task():
        return _run(spec, expid, gpu, results_file, rebuild_dataset, t_start)  # a worker writes to a temp dir
    with expid_lock(root / f".{expid}.lock", f"{spec.params['config_file']}: {expid}"):
        return _run(spec, expid, gpu, results_file, rebuild_dataset, t_start)


def _run(spec, expid, gpu, results_file, rebuild_dataset, t_start):
    """run_expid's body, under the expid's lock."""
    params, run_dir = spec.params, spec.run_dir
    # energy/carbon accounting (the `green` extra): checked here, before any data is built
    energy = EnergyTracker.from_params(params, gpu) if params["energy_tracking"] else None
    model_root = Path(resolve_path(params["model_root"], run_dir)) / params["dataset_id"]
    setup_logging(str(model_root / f"{expid}.log"), params["verbose"])
    device = setup_device(gpu)
    configure_logical_cpus(params["logical_cpus"])
    strategy, dist = make_strategy(params["distribute"], params["distribute_devices"])
    if not dist["is_chief"]:  # only the chief keeps checkpoints and results
        setup_logging(str(model_root / f"{expid}.worker{dist['worker_index']}.log"), params["verbose"])
        model_root = Path(tempfile.mkdtemp(prefix=f"fuxi_worker{dist['worker_index']}_"))

    log.info("expid %s | model %s | dataset %s | device %s | replicas %d", expid, params["model"],
             params["dataset_id"], device, dist["num_replicas"])
    log.info("params: %s", json.dumps({k: v for k, v in params.items() if k != "config_file"}, default=str))
    if params["deterministic"]:
        tf.config.experimental.enable_op_determinism()  # bit-identical reruns, slower kernels
    exp = build_experiment(spec, rebuild_dataset=rebuild_dataset, strategy=strategy,
                           shard=(dist["num_workers"], dist["worker_index"]) if dist["num_workers"] > 1 else None)
    model, pipeline, run_hash, group_id = exp.model, exp.pipeline, exp.run_hash, params["group_id"]
    try:  # energy: from training to the end of evaluation
        if energy:
            energy.start()
        with strategy.scope() if strategy else contextlib.nullcontext():
            if params["distribute"] == "multi_worker":
                # Keras 3.15's pre-fit symbolic build reduces a data batch across workers and fails on
                # PerReplica ids; the model is built eagerly by fit_model instead, and fit runs inside
                # strategy.scope(), so training is still distributed by this strategy.
                model._distribute_strategy = None
            callbacks = [*model.training_callbacks(pipeline), *([energy.callback()] if energy else [])]
            state = fit_model(model, pipeline, params, model_root / expid, run_hash=run_hash, group_id=group_id,
                              callbacks=callbacks)
        log.info("Trainable parameters: %d (%d without embeddings)", model.count_parameters(),
                 model.count_parameters(count_embedding=False))

        results = {}
        for split in ("valid", "test"):
            if pipeline.has_split(split):
                results[split] = model.evaluate_split(pipeline.dataset(split), params["metrics"], group_id)
                log.info("[%s] %s", split, " - ".join(f"{k}: {v:.6f}" for k, v in results[split].items()))
    finally:
        energy_report = energy.stop() if energy else None
    model_path = model_root / f"{expid}.keras"
    tmp = model_root / f".tmp-{expid}.keras"
    model.save(tmp)
    tmp.replace(model_path)
    epochs_run = len(state["history"])
    wall = time.time() - t_start
    row = {
        "time": time.strftime("%Y-%m-%d %H:%M:%S"), "expid": expid, "model": params["model"],
        "dataset_id": params["dataset_id"], "params_hash": run_hash[:16],
        "valid": results.get("valid"), "test": results.get("test"), "best_epoch": state["best_epoch"],
        "epochs_run": epochs_run,
        "seconds_per_epoch": round(state["train_seconds"] / max(epochs_run, 1), 3),
        "wall_seconds": round(wall, 1),
        "params": {k: v for k, v in params.items() if k not in ("config_file",)},
    }
    if energy_report:  # extra columns after results.COLUMNS; append_row widens an older file's header
        row.update(energy_row(energy_report, model, results.get("test")))
        log.info("Energy %.3g kWh, %.3g kgCO2e (%s, %s, %.0f gCO2e/kWh), CPU %.1fs", energy_report["energy_kwh"],
                 energy_report["co2e_kg"], energy_report["energy_method"], params["carbon_country"],
                 energy_report["carbon_intensity_g_per_kwh"] or float("nan"), energy_report["cpu_seconds"])
    results_file = results_file or (run_dir / "results.csv")
    if dist["is_chief"]:
        if energy_report:
            append_row(results_file, row, ENERGY_COLUMNS)
        else:
            append_result(results_file, row)
        log.info("Result appended to %s (wall %.1fs)", results_file, wall)
    else:
        shutil.rmtree(model_root, ignore_errors=True)
    return {"expid": expid, "valid": results.get("valid"), "test": results.get("test"), "state": state,
            "model_path": str(model_path), "data_dir": exp.data_dir, "run_hash": run_hash, "model": model,
            "energy": energy_report}


def load_trained(config_dir, expid, model_dir=None, gpu=-1):
    """Rebuild `expid`'s model from its config and load the best weights a finished run saved
    (`<model_root>/<dataset_id>/<expid>.weights.h5`), without training: for serving, indexing and
    benchmarks. Returns a dict with `model`, `pipeline` (batch size from the config), `params`,
    `feature_map`, `run_hash` and `finished`: the model folder's results.csv row of a finished run
    with these very params and data (None if the weights may come from another config or an
    unfinished run). A missing weights file is an error naming the path and the command that
    writes it."""
    spec = prepare_experiment(config_dir, expid, model_dir=model_dir)
    params = spec.params
    weights = Path(resolve_path(params["model_root"], spec.run_dir)) / params["dataset_id"] / f"{expid}.weights.h5"
    if not weights.is_file():
        raise ConfigError(f"{params['config_file']}: {expid}: no trained weights at {weights} "
                          f"(train first: python run_expid.py --expid {expid})")
    setup_device(gpu)
    exp = build_experiment(spec, adapt=False)  # the weights carry what adapt() would learn
    model, pipeline, run_hash = exp.model, exp.pipeline, exp.run_hash
    build_for_training(model, pipeline.dataset("train"))
    try:
        model.load_weights(weights)
    except (OSError, ValueError, KeyError) as e:  # h5py: truncated / not an HDF5 file / missing groups
        raise DataError(f"{weights}: the trained weights cannot be read ({type(e).__name__}: {str(e)[:160]}); "
                        f"retrain: python run_expid.py --expid {expid}") from None
    finished = None
    results = spec.run_dir / "results.csv"
    if results.is_file() and not (weights.parent / f"{expid}.resume").exists():
        rows = [r for r in read_results(results) if r.get("expid") == expid and r.get("params_hash") == run_hash[:16]]
        finished = rows[-1] if rows else None
    log.info("Loaded %s (%s) from %s", expid, params["model"], weights)
    return {"model": model, "pipeline": pipeline, "params": params, "feature_map": exp.feature_map, "weights": str(weights),
            "run_hash": run_hash, "finished": finished}


def parse_overrides(items):
    """`["epochs=3", "hidden_units=[64, 32]"]` -> {"epochs": 3, "hidden_units": [64, 32]} (values as YAML)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = load_yaml(value)
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({e.__class__.__name__})") from None
    return out


def cli(argv=None, default_expid=None, default_config="./config/"):
    """The command line of every model folder's `run_expid.py` (call through `fuxi_like.cli.run_expid_main`,
    which applies the TensorFlow process settings before this module imports TensorFlow)."""
    import argparse  # lazy: only the command line needs it

    parser = argparse.ArgumentParser(description="Run one experiment (expid) of this model folder.")
    parser.add_argument("--config", default=str(default_config), help=f"config directory (default {default_config})")
    parser.add_argument("--expid", default=default_expid, required=default_expid is None)
    parser.add_argument("--gpu", type=int, default=-1, help="GPU index, -1 for CPU")
    parser.add_argument("--results", default=None, help="results CSV (default: <model folder>/results.csv)")
    parser.add_argument("--rebuild_dataset", action="store_true", help="rebuild the processed data cache")
    parser.add_argument("--model_dir", default=None, help="model folder with src/ (default: the config's parent)")
    parser.add_argument("--seed", type=int, default=None, help="run with this seed instead of the expid's")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one key of the expid (value read as YAML: --set epochs=3 --set "
                             "net_dropout=0.1 --set 'hidden_units=[64, 32]'); repeatable")
    args = parser.parse_args(argv)
    try:
        overrides = parse_overrides(args.set)
        if args.seed is not None:
            overrides["seed"] = args.seed
        out = run_expid(args.config, args.expid, args.gpu, args.results, rebuild_dataset=args.rebuild_dataset,
                        model_dir=args.model_dir, overrides=overrides)
    except ConfigError as e:
        print(f"Config error: {e}", file=sys.stderr)
        return 2
    except DataError as e:
        print(f"Data error: {e}", file=sys.stderr)
        return 2
    if out.get("test"):
        print("test " + " - ".join(f"{k}: {v:.6f}" for k, v in out["test"].items()))
    return 0


__all__ = ["run_expid", "load_trained", "cli", "parse_overrides"]
