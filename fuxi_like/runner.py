"""`run_expid`: config -> dataset -> model -> fit -> evaluate -> results row."""

import importlib.util
import inspect
import json
import logging
import sys
import time
from pathlib import Path

from .config import RUNNER_KEYS, load_dataset_config, load_model_config, resolve_path, validate_model_params
from .errors import ConfigError, closest
from .io_utils import stable_hash

log = logging.getLogger("fuxi_like")
NOT_HASHED = ("verbose", "resume", "config_file", "expid", "model_root", "deterministic")


def load_model_module(model_dir):
    """Import `<model_dir>/src` as a package under a name unique to that folder."""
    src = Path(model_dir) / "src"
    init = src / "__init__.py"
    if not init.is_file():
        raise ConfigError(f"{src}: no src/__init__.py with the model class")
    name = f"fuxi_zoo_{stable_hash(str(src.resolve()), 10)}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(src)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def find_model_class(name, modules, where):
    from .models import BaseModel

    found = {}
    for m in modules:
        for k, v in vars(m).items():
            if inspect.isclass(v) and issubclass(v, BaseModel) and v is not BaseModel:
                found[k] = v
    if name not in found:
        raise ConfigError(f"{where}: model '{name}' not found{closest(name, found)}. "
                          f"Models available here: {', '.join(sorted(found)) or '(none)'}")
    return found[name]


def model_kwargs(params, model_cls):
    keys = set()
    for klass in model_cls.__mro__:
        if "__init__" in vars(klass) and not klass.__module__.startswith("keras"):
            keys |= set(inspect.signature(klass.__init__).parameters)
    keys -= {"self", "feature_map", "kwargs"}
    return {k: v for k, v in params.items() if k in keys}


def experiment_hash(params, fmap):
    """What identifies a run: its hashed params and the processed data's fingerprint (a resume
    snapshot or a finished result counts only for the same hash)."""
    return stable_hash({"params": {k: v for k, v in params.items() if k not in NOT_HASHED}, "data": fmap.fingerprint})


def run_expid(config_dir, expid, gpu=-1, results_file=None, model_modules=None, rebuild_dataset=False,
              model_dir=None):
    """Run one experiment end to end; return a dict with valid/test metrics.

    config_dir: the model folder's `config/` directory.
    model_modules: modules to search for the model class (default: `<model_dir or model folder>/src`).
    model_dir: a model folder whose `src/` holds the class, when `config_dir` is elsewhere (sweeps).
    results_file: CSV to append the result row to (default `<model folder>/results.csv`).
    """
    t_start = time.time()
    config_dir = Path(config_dir).resolve()
    run_dir = config_dir.parent  # relative model_root and the default results.csv live here
    raw = load_model_config(config_dir, expid)
    modules = model_modules if model_modules is not None else [load_model_module(Path(model_dir or config_dir.parent))]
    model_cls = find_model_class(raw["model"], modules, f"{raw['config_file']}: {expid}.model")
    params = validate_model_params(raw, model_cls)
    data_cfg = load_dataset_config(config_dir, params["dataset_id"])

    from .utils import seed_everything, setup_device, setup_logging

    model_root = Path(resolve_path(params["model_root"], run_dir)) / params["dataset_id"]
    setup_logging(str(model_root / f"{expid}.log"), params["verbose"])
    device = setup_device(gpu)
    from .distribute import configure_logical_cpus, make_strategy

    configure_logical_cpus(params["logical_cpus"])
    strategy, dist = make_strategy(params["distribute"], params["distribute_devices"])
    if not dist["is_chief"]:  # only the chief keeps checkpoints and results
        import tempfile

        setup_logging(str(model_root / f"{expid}.worker{dist['worker_index']}.log"), params["verbose"])
        model_root = Path(tempfile.mkdtemp(prefix=f"fuxi_worker{dist['worker_index']}_"))

    from .data.build_dataset import build_dataset, load_feature_map
    from .data.tf_dataset import InputPipeline
    from .training import fit_model

    log.info("expid %s | model %s | dataset %s | device %s | replicas %d", expid, params["model"],
             params["dataset_id"], device, dist["num_replicas"])
    log.info("params: %s", json.dumps({k: v for k, v in params.items() if k != "config_file"}, default=str))
    seed_everything(params["seed"])
    if params["deterministic"]:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()  # bit-identical reruns, slower kernels
    data_dir = build_dataset(data_cfg, rebuild=rebuild_dataset)
    fmap = load_feature_map(data_dir).with_overrides(params["feature_specs"], params["use_features"],
                                                     where=f"{params['config_file']}: {expid}")
    group_id = params["group_id"]
    if group_id:
        fmap.require(group_id, types=("meta",), where=f"{params['config_file']}: {expid}.group_id")

    import contextlib

    augment = None
    if hasattr(model_cls, "input_augment"):  # models that add per-row inputs (e.g. RAT's retrieved samples)
        augment = model_cls.input_augment(fmap, model_kwargs(params, model_cls))
    pipeline = InputPipeline(fmap, params["batch_size"], seed=params["seed"], streaming=params["streaming"],
                             shard=(dist["num_workers"], dist["worker_index"]) if dist["num_workers"] > 1 else None,
                             augment=augment)
    run_hash = experiment_hash(params, fmap)
    with strategy.scope() if strategy else contextlib.nullcontext():
        model = model_cls(fmap, **model_kwargs(params, model_cls))
        model.compile_from_params(params)
        if params["distribute"] == "multi_worker":
            # Keras 3.15's pre-fit symbolic build reduces a data batch across workers and fails on
            # PerReplica ids; the model is built eagerly by fit_model instead, and fit runs inside
            # strategy.scope(), so training is still distributed by this strategy.
            model._distribute_strategy = None
        extra_callbacks = model.training_callbacks(pipeline) if hasattr(model, "training_callbacks") else ()
        state = fit_model(model, pipeline, params, model_root / expid, run_hash=run_hash, group_id=group_id,
                          callbacks=extra_callbacks)
    log.info("Trainable parameters: %d (%d without embeddings)", model.count_parameters(),
             model.count_parameters(count_embedding=False))

    results = {}
    for split in ("valid", "test"):
        if pipeline.has_split(split):
            results[split] = model.evaluate_split(pipeline.dataset(split), params["metrics"], group_id)
            log.info("[%s] %s", split, " - ".join(f"{k}: {v:.6f}" for k, v in results[split].items()))
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
    from .results import append_result

    results_file = results_file or (run_dir / "results.csv")
    if dist["is_chief"]:
        append_result(results_file, row)
        log.info("Result appended to %s (wall %.1fs)", results_file, wall)
    else:
        import shutil

        shutil.rmtree(model_root, ignore_errors=True)
    return {"expid": expid, "valid": results.get("valid"), "test": results.get("test"), "state": state,
            "model_path": str(model_path), "data_dir": data_dir, "run_hash": run_hash, "model": model}


def load_trained(config_dir, expid, model_dir=None, gpu=-1):
    """Rebuild `expid`'s model from its config and load the best weights a finished run saved
    (`<model_root>/<dataset_id>/<expid>.weights.h5`), without training: for serving, indexing and
    benchmarks. Returns a dict with `model`, `pipeline` (batch size from the config), `params`,
    `feature_map`, `run_hash` and `finished`: the model folder's results.csv row of a finished run
    with these very params and data (None if the weights may come from another config or an
    unfinished run). A missing weights file is an error naming the path and the command that
    writes it."""
    config_dir = Path(config_dir).resolve()
    raw = load_model_config(config_dir, expid)
    modules = [load_model_module(Path(model_dir or config_dir.parent))]
    model_cls = find_model_class(raw["model"], modules, f"{raw['config_file']}: {expid}.model")
    params = validate_model_params(raw, model_cls)
    weights = Path(resolve_path(params["model_root"], config_dir.parent)) / params["dataset_id"] / f"{expid}.weights.h5"
    if not weights.is_file():
        raise ConfigError(f"{raw['config_file']}: {expid}: no trained weights at {weights} "
                          f"(train first: python run_expid.py --expid {expid})")
    from .data.build_dataset import build_dataset, load_feature_map
    from .data.tf_dataset import InputPipeline
    from .training.trainer import build_for_training
    from .utils import setup_device

    setup_device(gpu)
    data_dir = build_dataset(load_dataset_config(config_dir, params["dataset_id"]))
    fmap = load_feature_map(data_dir).with_overrides(params["feature_specs"], params["use_features"],
                                                     where=f"{params['config_file']}: {expid}")
    augment = None
    if hasattr(model_cls, "input_augment"):
        augment = model_cls.input_augment(fmap, model_kwargs(params, model_cls))
    pipeline = InputPipeline(fmap, params["batch_size"], seed=params["seed"], augment=augment)
    model = model_cls(fmap, **model_kwargs(params, model_cls))
    model.compile_from_params(params)
    build_for_training(model, pipeline.dataset("train"))
    model.load_weights(weights)
    run_hash = experiment_hash(params, fmap)
    finished = None
    results = config_dir.parent / "results.csv"
    if results.is_file() and not (weights.parent / f"{expid}.resume").exists():
        from .results import read_results

        rows = [r for r in read_results(results) if r.get("expid") == expid and r.get("params_hash") == run_hash[:16]]
        finished = rows[-1] if rows else None
    log.info("Loaded %s (%s) from %s", expid, params["model"], weights)
    return {"model": model, "pipeline": pipeline, "params": params, "feature_map": fmap, "weights": str(weights),
            "run_hash": run_hash, "finished": finished}


def cli(argv=None, default_expid=None, default_config="./config/"):
    """The command line of every model folder's `run_expid.py`."""
    import argparse

    from .tf_env import configure

    configure()  # before TensorFlow starts: its host allocator, log level (see tf_env.py)
    parser = argparse.ArgumentParser(description="Run one experiment (expid) of this model folder.")
    parser.add_argument("--config", default=str(default_config), help=f"config directory (default {default_config})")
    parser.add_argument("--expid", default=default_expid, required=default_expid is None)
    parser.add_argument("--gpu", type=int, default=-1, help="GPU index, -1 for CPU")
    parser.add_argument("--results", default=None, help="results CSV (default: <model folder>/results.csv)")
    parser.add_argument("--rebuild_dataset", action="store_true", help="rebuild the processed data cache")
    parser.add_argument("--model_dir", default=None, help="model folder with src/ (default: the config's parent)")
    args = parser.parse_args(argv)
    try:
        out = run_expid(args.config, args.expid, args.gpu, args.results, rebuild_dataset=args.rebuild_dataset,
                        model_dir=args.model_dir)
    except ConfigError as e:
        print(f"Config error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - clear one-line error for data problems
        from .errors import DataError

        if isinstance(e, DataError):
            print(f"Data error: {e}", file=sys.stderr)
            return 2
        raise
    if out.get("test"):
        print("test " + " - ".join(f"{k}: {v:.6f}" for k, v in out["test"].items()))
    return 0


__all__ = ["run_expid", "load_trained", "cli", "RUNNER_KEYS"]
