"""Loading and validating `dataset_config.yaml` and `model_config.yaml`.

Layout of a config directory (FuxiCTR-compatible)::

    config/dataset_config.yaml   # optional: the folder's private dataset ids
    config/model_config.yaml     # a `Base` section merged under every expid

Dataset ids come from the dataset registry, `datasets/<id>.yaml` at the repository
root (one id a file), found by walking up from the config dir, or from the
directories in `$FUXI_LIKE_DATASETS` (os.pathsep-separated) when that is set; a
folder's own `dataset_config.yaml` may add private ids. An id defined twice is an
error naming both files.

Relative paths in a model folder's files (data files, `data_root`, `model_root`) are
resolved against the folder that holds `config/` (the model folder, where
`run_expid.py` lives), as in FuxiCTR, whatever the current directory is; in a registry
file against the folder that holds `datasets/` (the repository root). `$VAR` / `${VAR}` in
paths are expanded from the environment.

Validation is strict: an unknown key is an error that lists the allowed keys and
the closest match; a wrong type names the file and the key.
"""

import copy
import os
import re
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
# the smallest value of the integer keys (a dataset's and a feature's); None passes
MIN_VALUES = {"min_categr_count": 1, "block_size": 1, "embedding_dim": 1, "pretrain_dim": 1, "max_len": 1}


def check_min(where, key, value):
    """ConfigError when an integer key is below its smallest sensible value (MIN_VALUES)."""
    low = MIN_VALUES.get(key)
    if low is not None and isinstance(value, int) and not isinstance(value, bool) and value < low:
        raise ConfigError(f"{where}: key '{key}' must be >= {low}, got {value}")

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
    "vocab_keys": ((str, type(None)), None),
    "pretrain_usage": ((str,), "init"),
    "pretrain_dim": ((int, type(None)), None),
    "freeze_emb": ((bool,), True),
    "splitter": ((str,), "^"),
    "max_len": ((int, type(None)), None),
    "padding": ((str,), "pre"),
    "truncate": ((str,), "pre"),
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
    "truncate": ("pre", "post"),
    "pooling": ("mean", "sum"),
    "normalizer": (None, "standard", "minmax", "StandardScaler", "MinMaxScaler"),
}
LABEL_KEYS = {"name": ((str,), None), "dtype": ((str,), "float")}

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


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's float syntax (`1e-3` and `3E5` are numbers, as every user expects; YAML
    1.1, PyYAML's default, reads them as strings and only `1.e-3` as a float), and a key given twice in one mapping
    is an error (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # PyYAML raises its own error for an unhashable key
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' is given twice (lines {seen[key] + 1} and {key_node.start_mark.line + 1})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def load_yaml(stream):
    """`yaml.safe_load` with YAML 1.2 floats (`1e-3`); every config and `--set` value is read with it."""
    return yaml.load(stream, Loader=_Loader)


def read_yaml(path):
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = load_yaml(f)
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
            check_min(w, k, v)
            if k == "splitter" and v == "":
                raise ConfigError(f"{w}: key 'splitter' must not be empty (the separator of a sequence's tokens)")
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


REGISTRY_ENV = "FUXI_LIKE_DATASETS"
REGISTRY_DIRNAME = "datasets"
PRIVATE_FILE = "dataset_config.yaml"


def registry_dirs(config_dir):
    """The dataset registry directories for a config dir, and how they were found.

    `$FUXI_LIKE_DATASETS` (one or more directories, os.pathsep-separated) when set;
    otherwise the nearest `datasets/` directory holding `*.yaml` files, walking up
    from `config_dir` (the repository's, for a folder inside the repository).
    Returns (list of Paths, description)."""
    env = os.environ.get(REGISTRY_ENV, "").strip()
    if env:
        dirs = []
        for part in env.split(os.pathsep):
            if not part.strip():
                continue
            d = Path(os.path.expandvars(os.path.expanduser(part.strip()))).resolve()
            if not d.is_dir():
                raise ConfigError(f"{REGISTRY_ENV}={env}: {d} is not a directory (a dataset registry "
                                  f"holds one <dataset_id>.yaml a dataset)")
            dirs.append(d)
        return dirs, f"{REGISTRY_ENV}={env}"
    start = Path(config_dir).resolve()
    for d in (start, *start.parents):
        cand = d / REGISTRY_DIRNAME
        if cand.is_dir() and any(cand.glob("*.yaml")):
            return [cand], f"found above {start}"
    return [], f"no {REGISTRY_DIRNAME}/ folder with *.yaml files above {start} and {REGISTRY_ENV} not set"


def read_registry_file(path):
    """The one dataset entry of a registry file `<id>.yaml`: (id, raw mapping)."""
    path = Path(path)
    data = read_yaml(path)
    if list(data) != [path.stem]:
        raise ConfigError(f"{path}: a registry file holds exactly one dataset id, named as the file "
                          f"('{path.stem}:'); found {', '.join(map(str, data)) or 'none'}")
    return path.stem, data[path.stem]


def registry_ids(dirs):
    """id -> list of registry files defining it (more than one: an error at lookup)."""
    out = {}
    for d in dirs:
        for f in sorted(Path(d).glob("*.yaml")):
            out.setdefault(f.stem, []).append(f)
    return out


def find_dataset_entry(config_dir, dataset_id):
    """Where `dataset_id` is defined, as seen from `config_dir`.

    Returns a dict: `raw` (the YAML mapping, paths unresolved), `file` (the file it came from),
    `base_dir` (what its relative paths are relative to), `registry` (True for a registry id),
    `registry_dirs` (the registry searched). An id in both the folder's `dataset_config.yaml`
    and the registry, or in two registry files, is a ConfigError naming both files."""
    config_dir = Path(config_dir)
    private_path = config_dir / PRIVATE_FILE
    private = read_yaml(private_path) if private_path.is_file() else {}
    dirs, how = registry_dirs(config_dir)
    reg = registry_ids(dirs)
    files = reg.get(str(dataset_id), [])
    if len(files) > 1:
        raise ConfigError(f"dataset_id '{dataset_id}' is defined in two registry files: {files[0]} and "
                          f"{files[1]} ({how}); keep one")
    if dataset_id in private and files:
        raise ConfigError(f"dataset_id '{dataset_id}' is defined twice: in {private_path} and in the registry "
                          f"file {files[0]}. Delete the private copy to use the registry's, or rename it "
                          f"(a private dataset needs its own id)")
    if dataset_id in private:
        return {"raw": private[dataset_id], "file": private_path, "base_dir": config_dir.parent,
                "registry": False, "registry_dirs": dirs}
    if files:
        _, raw = read_registry_file(files[0])
        return {"raw": raw, "file": files[0], "base_dir": files[0].parent.parent, "registry": True,
                "registry_dirs": dirs}
    known = list(private) + [i for i in reg if i not in private]
    priv = (f"private ids in {private_path}: {', '.join(map(str, private)) or '(none)'}"
            if private_path.is_file() else f"no private {private_path}")
    if dirs:
        where_reg = (f"registry {', '.join(map(str, dirs))} ({how}): "
                     f"{', '.join(sorted(reg)) or '(none)'}")
        hint = ""
    else:
        where_reg = f"no dataset registry ({how})"
        hint = (f". A model folder outside the repository finds the registry through {REGISTRY_ENV}: "
                f"export {REGISTRY_ENV}=/path/to/the/repository/{REGISTRY_DIRNAME}, or define the dataset "
                f"in {private_path}")
    raise ConfigError(f"{private_path}: dataset_id '{dataset_id}' not found{closest(dataset_id, known)}. "
                      f"Defined ids: {priv}; {where_reg}{hint}")


def load_dataset_config(config_dir, dataset_id):
    """Return the validated, path-resolved config of one dataset id.

    Looked up in the folder's `config/dataset_config.yaml` (private ids), then in the
    dataset registry (`registry_dirs`); `config_file` names the file it came from."""
    entry = find_dataset_entry(config_dir, dataset_id)
    raw, path, base = entry["raw"], entry["file"], entry["base_dir"]
    where = f"{path}: {dataset_id}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping")
    for k, v in raw.items():
        if k not in DATASET_KEYS:
            raise unknown_key_error(where, k, DATASET_KEYS)
        check_type(where, k, v, DATASET_KEYS[k][0])
        check_min(where, k, v)
    for k in DATASET_REQUIRED:
        if raw.get(k) is None:
            raise ConfigError(f"{where}: missing required key '{k}'")
    cfg = {k: copy.deepcopy(v) for k, (_, v) in DATASET_KEYS.items()}
    cfg.update(copy.deepcopy(raw))
    for k in ("data_root", "train_data", "valid_data", "test_data"):
        cfg[k] = resolve_path(cfg[k], base)
    cfg["feature_cols"] = expand_feature_cols(cfg["feature_cols"], where)
    for f in cfg["feature_cols"]:
        if f["pretrained_emb"]:
            f["pretrained_emb"] = resolve_path(f["pretrained_emb"], base)
        if f["vocab_keys"] and ":" in f["vocab_keys"]:  # <csv file>:<column>: resolve the file
            file, _, col = f["vocab_keys"].rpartition(":")
            f["vocab_keys"] = f"{resolve_path(file, base)}:{col}"
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
