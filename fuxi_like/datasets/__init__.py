"""Dataset recipes: seeded synthetic generators and recipes for public raw files.

A dataset config may name a recipe; when its output files are missing, or were made
with other recipe parameters (the `.recipe.json` stamp beside them), the runner
(re)makes them first::

    synthetic_ctr:
      train_data: ../data/synthetic_ctr/train.csv   # + valid_data, test_data
      recipe: {name: synthetic_ctr, n_rows: 100000, seed: 42}

Each recipe is `make(train_path, valid_path, test_path, **params)`.
"""

import inspect
import json
import logging
from pathlib import Path

from ..errors import ConfigError, closest, unknown_key_error
from ..io_utils import atomic_write_text, file_lock, remove_stale_temps
from . import content_rec, frappe, movielens_tag, seq_loo, synthetic_ctr

RECIPES = {"synthetic_ctr": synthetic_ctr.make, "frappe": frappe.make, "seq_loo": seq_loo.make,
           "movielens_tag": movielens_tag.make, "content_rec": content_rec.make}
log = logging.getLogger("fuxi_like")


STAMP = ".recipe.json"


def recipe_table(recipes=None, where="recipes"):
    """The core RECIPES merged with a model folder's extra `recipes` (name -> callable);
    a name in both is a ConfigError."""
    if not recipes:
        return dict(RECIPES)
    if not isinstance(recipes, dict):
        raise ConfigError(f"{where}: RECIPES must be a dict of name -> callable, got {type(recipes).__name__}")
    clash = sorted(set(recipes) & set(RECIPES))
    if clash:
        raise ConfigError(f"{where}: recipe name(s) {', '.join(clash)} already name core recipes "
                          f"(fuxi_like.datasets.RECIPES); give the folder's recipe another name")
    for k, fn in recipes.items():
        if not callable(fn):
            raise ConfigError(f"{where}: recipe '{k}' is not callable")
    return {**RECIPES, **recipes}


def _normalized(obj):
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def _stamp_path(paths):
    return Path(paths[0]).parent / STAMP


def read_stamp(paths):
    """The recipe stamp beside a dataset's split files ({name, params}), or None."""
    try:
        return json.loads(_stamp_path(paths).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_stamp(paths, name, params):
    """Record which recipe (name + parameters) made the split files `paths`."""
    atomic_write_text(_stamp_path(paths), json.dumps(
        {"name": name, "params": _normalized(params), "outputs": [str(p) for p in paths if p]}, indent=1))


def _stale(paths, name, params):
    """Why the recipe must (re)run, or None when its outputs are there and made with these parameters."""
    for p in paths:
        if p is not None and not Path(p).exists():
            return f"{p} is missing"
    stamp = read_stamp(paths)
    if stamp is None:
        return f"no recipe stamp {_stamp_path(paths)} (files made before stamps existed, or by hand)"
    want = {"name": name, "params": _normalized(params)}
    if stamp.get("name") != name:
        return f"recipe changed: {stamp.get('name')} -> {name}"
    if stamp.get("params") != want["params"]:
        old, new = stamp.get("params") or {}, want["params"]
        keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        return "recipe parameters changed: " + ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys)
    return None


def ensure_recipe_data(cfg, recipes=None):
    """Run the dataset's recipe when a split file is missing or was made with other recipe
    parameters (a `.recipe.json` stamp beside the split files records name + parameters).

    `recipes`: extra recipes (name -> callable) a model folder exports, merged over RECIPES."""
    rec = cfg.get("recipe")
    if not rec:
        return
    where = f"{cfg['config_file']}: {cfg['dataset_id']}.recipe"
    table = recipe_table(recipes, where)
    name = rec["name"]
    if name not in table:
        raise ConfigError(f"{where}: unknown recipe '{name}'{closest(name, table)}. Recipes: {', '.join(table)}"
                          + ("" if recipes else " (a model folder's own recipes come from its src/__init__.py "
                                                "RECIPES)"))
    fn = table[name]
    params = {k: v for k, v in rec.items() if k != "name"}
    allowed = [p for p in inspect.signature(fn).parameters if p not in ("train_path", "valid_path", "test_path")]
    for k in params:
        if k not in allowed:
            raise unknown_key_error(where, k, allowed)
    paths = [cfg.get(f"{s}_data") for s in ("train", "valid", "test")]
    if _stale(paths, name, params) is None:
        return
    with file_lock(str(Path(paths[0]).parent) + ".recipe.lock"):
        why = _stale(paths, name, params)
        if why is None:
            return
        log.warning("Running recipe '%s' -> %s (%s)", name, Path(paths[0]).parent, why)
        for p in paths:  # temp files a killed run of this recipe left (we hold its lock: none is live)
            if p:
                remove_stale_temps(Path(p).parent, f".{Path(p).stem}.*{Path(p).suffix}")
        _stamp_path(paths).unlink(missing_ok=True)  # a failed run leaves no stamp that looks valid
        fn(*paths, **params)
        write_stamp(paths, name, params)
