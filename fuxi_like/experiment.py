"""From (config dir, expid) to a validated params dict, a model and its input pipeline.

`build_experiment` is the one path that `run_expid`, `load_trained`, sweeps and the benchmark
scripts take, so a model is built, given its extra inputs and adapted to its data the same way
everywhere. A model folder is found by its path alone: its `src/__init__.py` is imported under a
name unique to the folder (a copied folder runs after a rename, beside the original), and what it
exports is all the runner looks for:

- BaseModel subclasses, found by the expid's `model:` name;
- `RECIPES` (optional): {name: make(train_path, valid_path, test_path, **params)}, dataset
  recipes for the folder's private dataset ids (e.g. RAR's `rar_seq`).
"""

import contextlib
import copy
import importlib.util
import inspect
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from .config import check_type, load_dataset_config, read_yaml, resolve_path
from .data.build_dataset import build_dataset, load_feature_map
from .data.tf_dataset import InputPipeline, split_files
from .errors import ConfigError, DataError, closest, unknown_key_error
from .io_utils import stable_hash
from .metrics import metric_label, monitor_metrics, needs_groups
from .models import BaseModel
from .pretrained.fetch import ENV_CACHE
from .retrieval.evaluation import check_retrieval_metrics
from .training.optimizers import OPTIMIZERS
from .training.params import RUNNER_KEYS, range_error, training_params
from .utils import seed_everything

log = logging.getLogger("fuxi_like")
NOT_HASHED = ("verbose", "resume", "config_file", "expid", "model_root", "deterministic", "weights_cache",
              "eval_batch_size", "allow_large_learning_rate", "energy_tracking", "energy_tracking_mode",
              "carbon_country", "carbon_intensity")


# ------------------------------------------------------------------ model folders
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
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def folder_recipes(module, where):
    """The dataset recipes a model folder exports (`RECIPES` in its src/__init__.py)."""
    recipes = getattr(module, "RECIPES", None) or {}
    if not isinstance(recipes, dict) or not all(callable(f) for f in recipes.values()):
        raise ConfigError(f"{where}: RECIPES must map a recipe name to a callable")
    return dict(recipes)


def find_model_class(name, modules, where):
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
    """The constructor arguments of `model_cls` among `params`."""
    keys = model_cls.hyperparameters()
    return {k: v for k, v in params.items() if k in keys}


# ----------------------------------------------------------------- model config
def load_model_config(config_dir, expid):
    """Return the raw params of `expid` with the `Base` section merged under it."""
    path = Path(config_dir) / "model_config.yaml"
    data = read_yaml(path)
    if expid not in data or expid == "Base":
        ids = [k for k in data if k != "Base"]
        raise ConfigError(
            f"{path}: expid '{expid}' not found{closest(expid, ids)}. "
            f"Defined expids: {', '.join(map(str, ids)) or '(none)'}"
        )
    base = data.get("Base") or {}
    if not isinstance(base, dict) or not isinstance(data[expid], dict):
        raise ConfigError(f"{path}: 'Base' and '{expid}' must be mappings")
    for section, body in data.items():  # a misspelt `Base` (e.g. `Bsae:`) would otherwise be ignored silently
        if section != "Base" and not (isinstance(body, dict) and "model" in body) and "model" not in base:
            raise ConfigError(f"{path}: section '{section}' has no 'model' key, so it is not an expid, and it is not "
                              f"'Base'{closest(str(section), ['Base'])}")
    params = dict(base)
    params.update(data[expid])
    for k in ("model", "dataset_id"):
        if not params.get(k):
            raise ConfigError(f"{path}: {expid}: missing required key '{k}'")
    params["expid"] = expid
    params["config_file"] = str(path)
    return params


def _types_of_default(default):
    if isinstance(default, (list, tuple)):
        return (list, tuple)
    if isinstance(default, str):
        return (str, list)
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        return (int, float)
    return (type(default),)


def model_range_check(where, key, value):
    """The ranges every model shares by naming convention: `embedding_dim` and `*_dim` / `*_units` sizes >= 1,
    dropout rates (`*dropout*`) in [0, 1) (a number or a list of them)."""
    values = value if isinstance(value, (list, tuple)) else [value]
    nums = [x for x in values if isinstance(x, (int, float)) and not isinstance(x, bool)]
    if "dropout" in key and any(not 0 <= x < 1 for x in nums):
        raise ConfigError(f"{where}: key '{key}' is a dropout rate, must be in [0, 1), got {value!r}")
    if (key == "embedding_dim" or key.endswith(("_dim", "_units"))) and any(x < 1 for x in nums):
        raise ConfigError(f"{where}: key '{key}' is a size, must be >= 1, got {value!r}")


def validate_model_params(params, model_cls):
    """Check every key against RUNNER_KEYS + the model's constructor signature; return the params
    completed with both sets of defaults (so a results row lists every value the run used)."""
    where = f"{params.get('config_file', 'model_config.yaml')}: {params.get('expid')}"
    model_keys = model_cls.hyperparameters()
    shadowed = sorted(set(model_keys) & set(RUNNER_KEYS))
    if shadowed:
        raise ConfigError(f"{model_cls.__name__}: constructor argument(s) {shadowed} have the names of runner keys; "
                          f"rename them (one key, one meaning)")
    allowed = set(RUNNER_KEYS) | set(model_keys) | {"expid", "config_file"}
    out = {}
    for k, v in params.items():
        if k not in allowed:
            raise unknown_key_error(where, k, allowed - {"expid", "config_file"})
        if k in RUNNER_KEYS:
            check_type(where, k, v, RUNNER_KEYS[k][0])
            if range_error(k, v, params):
                raise ConfigError(f"{where}: {range_error(k, v, params)}")
        elif k in model_keys:
            default = model_keys[k]
            if default is not None and default is not inspect.Parameter.empty and v is not None:
                check_type(where, k, v, _types_of_default(default))
            model_range_check(where, k, v)
        out[k] = v
    out = training_params(out)
    for k, default in model_keys.items():
        if k in out:
            continue
        if default is inspect.Parameter.empty:
            raise ConfigError(f"{where}: missing required key '{k}' ({model_cls.__name__} has no default for it)")
        out[k] = list(default) if isinstance(default, tuple) else copy.deepcopy(default)
    if out["monitor_mode"] not in ("max", "min"):
        raise ConfigError(f"{where}: key 'monitor_mode' must be 'max' or 'min', got {out['monitor_mode']!r}")
    check_metrics(where, out, retrieval=model_cls.retrieval)
    if str(out["optimizer"]).lower() not in OPTIMIZERS:
        raise ConfigError(f"{where}: key 'optimizer': unknown optimizer {out['optimizer']!r}"
                          f"{closest(str(out['optimizer']).lower(), list(OPTIMIZERS))}; known: {', '.join(OPTIMIZERS)}")
    return out


def check_metrics(where, params, retrieval=False):
    """Fail before training, not after the first epoch, on bad metric/monitor settings."""
    try:
        labels = [metric_label(m) for m in params["metrics"]]
        monitored = [metric_label(m) for m in monitor_metrics(params["monitor"])]
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    for m in monitored:
        if m not in labels:
            raise ConfigError(f"{where}: monitor metric '{m}' is not in metrics {params['metrics']}; add it there")
    if retrieval:  # ranked lists come from the index, not from groups of rows
        check_retrieval_metrics(params["metrics"], where=f"{where}: metrics")
        return
    if needs_groups(params["metrics"]) and not params.get("group_id"):
        raise ConfigError(f"{where}: metrics {params['metrics']} include grouped metrics (gAUC, avgAUC, MRR, NDCG, "
                          f"HR, Recall) that need 'group_id' set to a meta feature")


def experiment_hash(params, fmap):
    """What identifies a run: its hashed params and the processed data's fingerprint (a resume
    snapshot or a finished result counts only for the same hash)."""
    return stable_hash({"params": {k: v for k, v in params.items() if k not in NOT_HASHED}, "data": fmap.fingerprint})


# ------------------------------------------------------------------- experiment
@dataclass
class ExperimentSpec:
    """A validated expid, before any data is built: what `prepare_experiment` returns."""

    expid: str
    params: dict
    model_cls: type
    data_cfg: dict
    recipes: dict
    run_dir: Path  # the model folder: relative model_root and the default results.csv live here


@dataclass
class Experiment:
    """A built expid: `build_experiment` returns it."""

    spec: ExperimentSpec
    model: BaseModel
    pipeline: InputPipeline
    feature_map: object
    data_dir: str
    run_hash: str

    @property
    def params(self):
        return self.spec.params


def prepare_experiment(config_dir, expid, model_dir=None, model_modules=None, overrides=None):
    """Load and validate `expid` of `config_dir` (model class from `<model_dir or config's parent>/src`
    unless `model_modules` are given); nothing is built yet. `overrides` ({key: value}, e.g. from
    `run_expid.py --seed 2025 --set epochs=3`) replace the expid's values before validation, so an
    unknown key or a wrong type is the same error as in the YAML; they change the run's hash."""
    config_dir = Path(config_dir).resolve()
    raw = load_model_config(config_dir, expid)
    for k, v in (overrides or {}).items():
        if k in ("expid", "config_file", "model"):
            raise ConfigError(f"{raw['config_file']}: {expid}: '{k}' cannot be overridden from the command line")
        raw[k] = v
    folder = Path(model_dir or config_dir.parent)
    if model_modules is None:
        model_modules = [load_model_module(folder)]
    recipes = {}
    for m in model_modules:
        recipes.update(folder_recipes(m, f"{folder}/src/__init__.py"))
    model_cls = find_model_class(raw["model"], model_modules, f"{raw['config_file']}: {expid}.model")
    params = validate_model_params(raw, model_cls)
    data_cfg = load_dataset_config(config_dir, params["dataset_id"])
    return ExperimentSpec(expid, params, model_cls, data_cfg, recipes, config_dir.parent)


AUC_METRICS = ("AUC", "gAUC", "avgAUC")


def _num(x):
    x = float(x)
    return int(x) if x.is_integer() else x


def check_labels(fmap, data_dir, spec, task):
    """Label domain per task, before any training: binary_classification labels are 0 or 1 in every split (a `2`
    would train as a positive and evaluate as nonsense), and a split that selects the best epoch by an AUC has both
    classes (with one, every AUC is undefined and `nan` would be "improved" on). DataError naming the file, the
    split, the label and a bad row."""
    where = f"{spec.params['config_file']}: {spec.expid}: dataset {fmap.dataset_id}"
    monitor = spec.params["monitor"]
    watched = monitor_metrics(monitor)
    splits = [s for s in ("train", "valid", "test") if (Path(data_dir) / s).is_dir()]
    monitor_split = "valid" if "valid" in splits else "test"
    for name in fmap.labels:
        for split in splits:
            files = [str(f) for f in split_files(data_dir, split)]
            y = pq.read_table(files, columns=[name]).column(name).to_numpy(zero_copy_only=False)
            source = spec.data_cfg.get(f"{split}_data") or split
            if task == "binary_classification" and len(y):
                bad = np.flatnonzero((y != 0) & (y != 1))
                if len(bad):
                    raise DataError(f"{where}: {source}: label '{name}' must be 0 or 1 for binary_classification; "
                                    f"data row {int(bad[0])} has {_num(y[bad[0]])} ({len(bad)} of {len(y)} rows are "
                                    f"neither). Map the labels in the data (e.g. rating >= 4 -> 1) or set task")
            if split == monitor_split and any(str(m) in AUC_METRICS for m in watched) and len(np.unique(y)) < 2:
                raise DataError(f"{where}: {source}: every {split} label '{name}' is {_num(y[0]) if len(y) else 'missing'}; "
                                f"the monitor {monitor!r} (an AUC) is undefined on one class. Fix the split or "
                                f"monitor another metric")


def build_experiment(spec, rebuild_dataset=False, strategy=None, shard=None, adapt=True):
    """Build the processed data, the model (compiled, inside `strategy`'s scope if given) and its
    input pipeline for a prepared `spec`. The model is seeded with the run's seed right before it is
    built. `adapt=False` skips the model's `adapt` hook (for weights that will be loaded)."""
    params = spec.params
    where = f"{params['config_file']}: {spec.expid}"
    if params["weights_cache"]:  # the config key of the pretrained weights cache: this process's default
        os.environ[ENV_CACHE] = str(resolve_path(params["weights_cache"], spec.run_dir))
    data_dir = build_dataset(spec.data_cfg, rebuild=rebuild_dataset, recipes=spec.recipes)
    fmap = load_feature_map(data_dir).with_overrides(params["feature_specs"], params["use_features"], where=where)
    if params["group_id"]:
        fmap.require(params["group_id"], types=("meta",), where=f"{where}.group_id")
    seed_everything(params["seed"])
    with strategy.scope() if strategy else contextlib.nullcontext():
        try:
            model = spec.model_cls(fmap, **model_kwargs(params, spec.model_cls))
            model.compile_from_params(params)
        except ConfigError as e:  # a model's own check (unknown loss, task, regularizer, ...): say where it is set
            if params["config_file"] in str(e):
                raise
            raise ConfigError(f"{where}: {e}") from None
    check_labels(fmap, data_dir, spec, getattr(model, "task", None))
    pipeline = InputPipeline(fmap, params["batch_size"], seed=params["seed"], streaming=params["streaming"],
                             shard=shard, augment=model.extra_inputs(), eval_batch_size=params["eval_batch_size"])
    if adapt:
        model.adapt(pipeline)
    return Experiment(spec, model, pipeline, fmap, data_dir, experiment_hash(params, fmap))


__all__ = ["ExperimentSpec", "Experiment", "prepare_experiment", "build_experiment", "load_model_module",
           "find_model_class", "model_kwargs", "load_model_config", "validate_model_params", "experiment_hash",
           "RUNNER_KEYS"]
