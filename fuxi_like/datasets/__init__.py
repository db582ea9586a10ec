"""Dataset recipes: seeded synthetic generators and recipes for public raw files.

A dataset config may name a recipe; when its output files are missing the runner
makes them first::

    synthetic_ctr:
      train_data: ../data/synthetic_ctr/train.csv   # + valid_data, test_data
      recipe: {name: synthetic_ctr, n_rows: 100000, seed: 42}

Each recipe is `make(train_path, valid_path, test_path, **params)`.
"""

import inspect
import logging
from pathlib import Path

from ..errors import ConfigError, closest, unknown_key_error
from ..io_utils import file_lock
from . import frappe, movielens_tag, rar_seq, seq_loo, synthetic_ctr

RECIPES = {"synthetic_ctr": synthetic_ctr.make, "frappe": frappe.make, "seq_loo": seq_loo.make,
           "movielens_tag": movielens_tag.make, "rar_seq": rar_seq.make}
log = logging.getLogger("fuxi_like")


def ensure_recipe_data(cfg):
    """Run the dataset's recipe if any of its split files is missing."""
    rec = cfg.get("recipe")
    if not rec:
        return
    where = f"{cfg['config_file']}: {cfg['dataset_id']}.recipe"
    name = rec["name"]
    if name not in RECIPES:
        raise ConfigError(f"{where}: unknown recipe '{name}'{closest(name, RECIPES)}. Recipes: {', '.join(RECIPES)}")
    fn = RECIPES[name]
    params = {k: v for k, v in rec.items() if k != "name"}
    allowed = [p for p in inspect.signature(fn).parameters if p not in ("train_path", "valid_path", "test_path")]
    for k in params:
        if k not in allowed:
            raise unknown_key_error(where, k, allowed)
    paths = [cfg.get(f"{s}_data") for s in ("train", "valid", "test")]
    if all(p is None or Path(p).exists() for p in paths):
        return
    with file_lock(str(Path(paths[0]).parent) + ".recipe.lock"):
        if all(p is None or Path(p).exists() for p in paths):
            return
        log.info("Running recipe '%s' -> %s", name, Path(paths[0]).parent)
        fn(*paths, **params)
