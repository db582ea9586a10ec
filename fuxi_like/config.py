"""Loading and validating `dataset_config.yaml` and `model_config.yaml`.

Layout of a config directory (FuxiCTR-compatible)::

    config/dataset_config.yaml   # top-level keys are dataset ids
    config/model_config.yaml     # a `Base` section merged under every expid

Relative paths in both files (data files, `data_root`, `model_root`) are
resolved against the folder that holds `config/` (the model folder, where
`run_expid.py` lives), as in FuxiCTR, whatever the current directory is. `$VAR` / `${VAR}` in
paths are expanded from the environment.

Validation is strict: an unknown key is an error that lists the allowed keys and
the closest match; a wrong type names the file and the key.
"""

import copy
import os
from pathlib import Path

import yaml

from .errors import ConfigError, closest, unknown_key_error

# ---------------------------------------------------------------------------------
# Schemas. Each entry: key -> (allowed python types, default). `None` in the types
# tuple means the value may be null.
# ---------------------------------------------------------------------------------
NUM = (int, float)

DATASET_KEYS = {
    "data_root": ((str,), None),
    "data_format": ((str,), None),
    "train_data": ((str,), None),
    "valid_data": ((str, type(None)), None),
    "test_data": ((str, type(None)), None),
    "csv_sep": ((str,), ","),
    "min_categr_count": ((int,), 1),
    "feature_cols": ((list,), None),
    "label_col": ((dict, list), None),
    "block_size": ((int,), 500_000),
    "recipe": ((dict, type(None)), None),
}
DATASET_REQUIRED = ("data_root", "train_data", "feature_cols", "label_col")

FEATURE_KEYS = {
    "name": ((str, list), None),
    "active": ((bool,), True),
    "dtype": ((str,), "str"),
    "type": ((str,), None),
    "source": ((str, type(None)), None),
    "fill_na": ((str, int, float, type(None)), None),
    "copy_from": ((str, type(None)), None),
    "min_categr_count": ((int, type(None)), None),
    "embedding_dim": ((int, type(None)), None),
    "share_embedding": ((str, type(None)), None),
    "pretrained_emb": ((str, type(None)), None),
    "pretrain_usage": ((str,), "init"),
    "pretrain_dim": ((int, type(None)), None),
    "freeze_emb": ((bool,), True),
    "splitter": ((str,), "^"),
    "max_len": ((int, type(None)), None),
    "padding": ((str,), "pre"),
    "pad_token": ((str, type(None)), None),
    "pooling": ((str,), "mean"),
    "normalizer": ((str, type(None)), None),
    "remap": ((bool,), True),
}
FEATURE_TYPES = ("categorical", "numeric", "sequence", "meta", "embedding")
FEATURE_CHOICES = {
    "type": FEATURE_TYPES,
    "dtype": ("str", "int", "float", "list"),
    "pretrain_usage": ("init", "sum", "concat"),
    "padding": ("pre", "post"),
    "pooling": ("mean", "sum"),
    "normalizer": (None, "standard", "minmax", "StandardScaler", "MinMaxScaler"),
}
LABEL_KEYS = {"name": ((str,), None), "dtype": ((str,), "float")}

# Keys every expid may use (consumed by the runner / BaseModel). Model-specific
# hyperparameters are validated against the model class signature.
RUNNER_KEYS = {
    "model": ((str,), None),
    "dataset_id": ((str,), None),
    "model_root": ((str,), "./checkpoints/"),
    "task": ((str,), "binary_classification"),
    "loss": ((str,), "binary_crossentropy"),
    "metrics": ((list,), ["logloss", "AUC"]),
    "optimizer": ((str,), "adam"),
    "learning_rate": (NUM, 1e-3),
    "batch_size": ((int,), 1024),
    "epochs": ((int,), 10),
    "shuffle": ((bool,), True),
    "seed": ((int,), 2024),
    "monitor": ((str, dict), "AUC"),
    "monitor_mode": ((str,), "max"),
    "early_stop_patience": ((int,), 2),
    "save_best_only": ((bool,), True),
    "reduce_lr_on_plateau": ((bool,), True),
    "lr_decay_factor": (NUM, 0.1),
    "min_lr": (NUM, 1e-6),
    "max_gradient_norm": (NUM + (type(None),), 10.0),
    "embedding_regularizer": (NUM + (str, type(None)), None),
    "net_regularizer": (NUM + (str, type(None)), None),
    "embedding_dim": ((int,), 16),
    "group_id": ((str, type(None)), None),
    "streaming": ((bool,), False),
    "verbose": ((int,), 1),
    "resume": ((bool,), True),
    "deterministic": ((bool,), False),
    "distribute": ((str, type(None)), None),
    "distribute_devices": ((list, type(None)), None),
    "logical_cpus": ((int, type(None)), None),
    "feature_specs": ((list, type(None)), None),
    "use_features": ((list, type(None)), None),
}


def _type_name(types):
    return " or ".join(sorted({"null" if t is type(None) else t.__name__ for t in types}))


def check_type(where, key, value, types):
    if isinstance(value, bool) and bool not in types:
        raise ConfigError(f"{where}: key '{key}' must be {_type_name(types)}, got bool {value!r}")
    if not isinstance(value, types):
        raise ConfigError(
            f"{where}: key '{key}' must be {_type_name(types)}, "
            f"got {type(value).__name__} {value!r}"
        )


def read_yaml(path):
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def resolve_path(value, base_dir):
    """Expand env vars and make a relative path absolute against `base_dir`."""
    if value is None:
        return None
    value = os.path.expandvars(os.path.expanduser(str(value)))
    p = Path(value)
    if not p.is_absolute():
        p = Path(base_dir) / p
    return str(p.resolve())


# ---------------------------------------------------------------------------------
# Dataset config
# ---------------------------------------------------------------------------------
def expand_feature_cols(feature_cols, where):
    """Validate feature specs and expand `name: [a, b]` into one spec per name."""
    out = []
    if not isinstance(feature_cols, list):
        raise ConfigError(f"{where}: 'feature_cols' must be a list of feature specs")
    for i, spec in enumerate(feature_cols):
        w = f"{where}.feature_cols[{i}]"
        if not isinstance(spec, dict):
            raise ConfigError(f"{w}: each feature spec must be a mapping, got {spec!r}")
        for k, v in spec.items():
            if k not in FEATURE_KEYS:
                raise unknown_key_error(w, k, FEATURE_KEYS)
            check_type(w, k, v, FEATURE_KEYS[k][0])
        for k in ("name", "type"):
            if k not in spec:
                raise ConfigError(f"{w}: missing required key '{k}'")
        for k, choices in FEATURE_CHOICES.items():
            if k in spec and spec[k] not in choices:
                raise ConfigError(
                    f"{w}: key '{k}' is {spec[k]!r}; allowed: "
                    f"{', '.join(str(c) for c in choices if c is not None)}"
                    f"{closest(spec[k], [c for c in choices if c])}"
                )
        names = spec["name"] if isinstance(spec["name"], list) else [spec["name"]]
        for name in names:
            full = {k: v for k, (_, v) in FEATURE_KEYS.items()}
            full.update(spec)
            full["name"] = str(name)
            if not full["active"]:
                continue
            if full["type"] == "sequence" and not full["max_len"]:
                raise ConfigError(f"{w}: sequence feature '{name}' needs 'max_len'")
            if full["type"] == "embedding" and not full["pretrain_dim"]:
                raise ConfigError(f"{w}: embedding feature '{name}' needs 'pretrain_dim'")
            out.append(full)
    seen = set()
    for f in out:
        if f["name"] in seen:
            raise ConfigError(f"{where}: feature '{f['name']}' is defined twice")
        seen.add(f["name"])
    names = {f["name"] for f in out}
    for f in out:
        if f["share_embedding"] and f["share_embedding"] not in names:
            raise ConfigError(
                f"{where}: feature '{f['name']}' has share_embedding: '{f['share_embedding']}', "
                f"which is not an active feature{closest(f['share_embedding'], names)}"
            )
    return out


def expand_labels(label_col, where):
    labels = label_col if isinstance(label_col, list) else [label_col]
    out = []
    for i, spec in enumerate(labels):
        w = f"{where}.label_col[{i}]"
        if not isinstance(spec, dict) or "name" not in spec:
            raise ConfigError(f"{w}: a label must be a mapping with a 'name'")
        for k, v in spec.items():
            if k not in LABEL_KEYS:
                raise unknown_key_error(w, k, LABEL_KEYS)
            check_type(w, k, v, LABEL_KEYS[k][0])
        out.append({"name": spec["name"], "dtype": spec.get("dtype", "float")})
    return out


def load_dataset_config(config_dir, dataset_id):
    """Return the validated, path-resolved config of one dataset id."""
    path = Path(config_dir) / "dataset_config.yaml"
    data = read_yaml(path)
    if dataset_id not in data:
        raise ConfigError(
            f"{path}: dataset_id '{dataset_id}' not found{closest(dataset_id, data)}. "
            f"Defined ids: {', '.join(map(str, data)) or '(none)'}"
        )
    raw = data[dataset_id]
    where = f"{path}: {dataset_id}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping")
    for k, v in raw.items():
        if k not in DATASET_KEYS:
            raise unknown_key_error(where, k, DATASET_KEYS)
        check_type(where, k, v, DATASET_KEYS[k][0])
    for k in DATASET_REQUIRED:
        if raw.get(k) is None:
            raise ConfigError(f"{where}: missing required key '{k}'")
    cfg = {k: copy.deepcopy(v) for k, (_, v) in DATASET_KEYS.items()}
    cfg.update(copy.deepcopy(raw))
    base = path.parent.parent
    for k in ("data_root", "train_data", "valid_data", "test_data"):
        cfg[k] = resolve_path(cfg[k], base)
    cfg["feature_cols"] = expand_feature_cols(cfg["feature_cols"], where)
    for f in cfg["feature_cols"]:
        if f["pretrained_emb"]:
            f["pretrained_emb"] = resolve_path(f["pretrained_emb"], base)
    cfg["label_col"] = expand_labels(cfg["label_col"], where)
    if cfg["recipe"] is not None:
        rec = dict(cfg["recipe"])
        if "name" not in rec:
            raise ConfigError(f"{where}.recipe: missing required key 'name'")
        for k, v in rec.items():
            if isinstance(v, str) and (k.endswith("_path") or k.endswith("_dir")):
                rec[k] = resolve_path(v, base)
        cfg["recipe"] = rec
    if cfg["data_format"] is None:
        suffix = Path(cfg["train_data"]).suffix.lower().lstrip(".")
        cfg["data_format"] = suffix if suffix in ("csv", "parquet") else "csv"
    if cfg["data_format"] not in ("csv", "parquet"):
        raise ConfigError(f"{where}: key 'data_format' must be csv or parquet, got {cfg['data_format']!r}")
    cfg["dataset_id"] = dataset_id
    cfg["config_file"] = str(path)
    return cfg


# ---------------------------------------------------------------------------------
# Model config
# ---------------------------------------------------------------------------------
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
    params = dict(base)
    params.update(data[expid])
    for k in ("model", "dataset_id"):
        if not params.get(k):
            raise ConfigError(f"{path}: {expid}: missing required key '{k}'")
    params["expid"] = expid
    params["config_file"] = str(path)
    return params


def validate_model_params(params, model_cls):
    """Check every key against RUNNER_KEYS + the model's constructor signature.

    Returns the params completed with runner defaults.
    """
    import inspect

    where = f"{params.get('config_file', 'model_config.yaml')}: {params.get('expid')}"
    model_keys = {}
    for klass in model_cls.__mro__:
        if klass.__module__.startswith("keras"):
            break
        if "__init__" not in vars(klass):
            continue
        for name, p in inspect.signature(klass.__init__).parameters.items():
            if name in ("self", "feature_map", "kwargs", "args") or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            model_keys.setdefault(name, p.default)
    allowed = set(RUNNER_KEYS) | set(model_keys) | {"expid", "config_file"}
    out = {}
    for k, v in params.items():
        if k not in allowed:
            raise unknown_key_error(where, k, allowed - {"expid", "config_file"})
        if k in RUNNER_KEYS:
            check_type(where, k, v, RUNNER_KEYS[k][0])
        elif k in model_keys:
            default = model_keys[k]
            if default is not None and default is not inspect.Parameter.empty and v is not None:
                types = (int, float) if isinstance(default, (int, float)) and not isinstance(default, bool) else (type(default),)
                if isinstance(default, (list, tuple)):
                    types = (list, tuple)
                if isinstance(default, str):
                    types = (str, list)
                check_type(where, k, v, types)
        out[k] = v
    for k, (_, default) in RUNNER_KEYS.items():
        out.setdefault(k, copy.deepcopy(default))
    if out["monitor_mode"] not in ("max", "min"):
        raise ConfigError(f"{where}: key 'monitor_mode' must be 'max' or 'min', got {out['monitor_mode']!r}")
    _check_metrics(where, out, retrieval=getattr(model_cls, "retrieval", False))
    from .training.optimizers import OPTIMIZERS

    if str(out["optimizer"]).lower() not in OPTIMIZERS:
        raise ConfigError(f"{where}: key 'optimizer': unknown optimizer {out['optimizer']!r}"
                          f"{closest(str(out['optimizer']).lower(), list(OPTIMIZERS))}; known: {', '.join(OPTIMIZERS)}")
    return out


def _check_metrics(where, params, retrieval=False):
    """Fail before training, not after the first epoch, on bad metric/monitor settings."""
    from .metrics import metric_label, monitor_metrics, needs_groups

    try:
        labels = [metric_label(m) for m in params["metrics"]]
        monitored = [metric_label(m) for m in monitor_metrics(params["monitor"])]
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    for m in monitored:
        if m not in labels:
            raise ConfigError(f"{where}: monitor metric '{m}' is not in metrics {params['metrics']}; add it there")
    if retrieval:  # ranked lists come from the index, not from groups of rows
        from .retrieval.evaluation import check_retrieval_metrics

        check_retrieval_metrics(params["metrics"], where=f"{where}: metrics")
        return
    if needs_groups(params["metrics"]) and not params.get("group_id"):
        raise ConfigError(f"{where}: metrics {params['metrics']} include grouped metrics (gAUC, avgAUC, MRR, NDCG, "
                          f"HR, Recall) that need 'group_id' set to a meta feature")
