"""Build (or reuse) a processed dataset: parquet shards + feature_map.json + vocab.

Processed layout, under `<data_root>/<dataset_id>/`::

    feature_map.json       schema + fingerprint of the spec and input files
    feature_vocab.json     token -> id per vocabulary
    pretrained_<f>.npy     pretrained vectors aligned to ids (if any)
    train/part-00000.parquet ...  (valid/, test/ likewise)

The fingerprint hashes the dataset spec (the recipe block included: name and
parameters) and the (path, size, mtime) of every input file. Re-running with the same fingerprint reuses the cache; any change
rebuilds it. A build is written to a temporary folder and renamed into place, so
an interrupted build never leaves a half-written cache that looks valid.
"""

import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..datasets import ensure_recipe_data
from ..features.feature_map import FeatureMap
from ..features.processor import FeatureProcessor
from ..io_utils import atomic_write_text, file_fingerprint, file_lock, remove_stale_temps, replace_dir, stable_hash

FORMAT_VERSION = 1
SPLITS = ("train", "valid", "test")
SPEC_KEYS = ("data_format", "csv_sep", "min_categr_count", "feature_cols", "label_col", "block_size")

log = logging.getLogger("fuxi_like")


# Feature keys added after FORMAT_VERSION 1: left out of the fingerprint at their default, so
# caches built before they existed stay valid (a non-default value changes the fingerprint).
LATER_FEATURE_DEFAULTS = {"truncate": "pre", "vocab_keys": None}


def _feature_spec(f):
    return {k: v for k, v in f.items() if not (k in LATER_FEATURE_DEFAULTS and v == LATER_FEATURE_DEFAULTS[k])}


def dataset_fingerprint(cfg):
    spec = {k: cfg[k] for k in SPEC_KEYS}
    spec["feature_cols"] = [_feature_spec(f) for f in cfg["feature_cols"]]
    if cfg.get("recipe"):  # recipe name + parameters: a changed parameter rebuilds
        spec["recipe"] = cfg["recipe"]
    files = {s: file_fingerprint(cfg.get(f"{s}_data")) for s in SPLITS}
    return stable_hash({"v": FORMAT_VERSION, "spec": spec, "files": files})


def _to_arrow(columns):
    arrays, names = [], []
    for name, arr in columns.items():
        if arr.ndim == 2:
            flat = pa.array(arr.reshape(-1))
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, arr.shape[1]))
        else:
            arrays.append(pa.array(arr))
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


def _write_split(columns, out_dir, block_size):
    out_dir.mkdir(parents=True, exist_ok=True)
    n = len(next(iter(columns.values())))
    nparts = max(1, -(-n // block_size))
    for p in range(nparts):
        sl = slice(p * block_size, min(n, (p + 1) * block_size))
        table = _to_arrow({k: v[sl] for k, v in columns.items()})
        pq.write_table(table, out_dir / f"part-{p:05d}.parquet", compression="zstd")
    return n


def _cache_valid(data_dir, fingerprint):
    fmap_path = data_dir / "feature_map.json"
    if not fmap_path.is_file():
        return False
    try:
        with open(fmap_path, encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, ValueError):
        return False
    if d.get("fingerprint") != fingerprint:
        return False
    for split, n in d.get("num_rows", {}).items():
        if not (data_dir / split).is_dir():
            return False
        damaged = _damaged_shard(data_dir / split, n)
        if damaged:
            log.warning("Processed dataset %s: %s; rebuilding it", data_dir, damaged)
            return False
    return True


def _damaged_shard(split_dir, num_rows):
    """A description of the first unreadable shard of a processed split (its parquet footer and row-group metadata
    are read, not its data), or of a row count that differs from the feature map's; None when all is well."""
    total = 0
    for f in sorted(Path(split_dir).glob("*.parquet")):
        try:
            total += pq.ParquetFile(f).metadata.num_rows
        except (OSError, ValueError, pa.ArrowException) as e:
            return f"shard {f} is unreadable ({type(e).__name__}: {str(e)[:120]})"
    if num_rows is not None and total != int(num_rows):
        return f"split {split_dir} holds {total} rows, its feature map says {num_rows}"
    return None


def build_dataset(cfg, rebuild=False, recipes=None):
    """Return the processed dataset dir of `cfg`, building it if needed.

    `recipes`: extra dataset recipes (name -> callable) a model folder exports (its
    `src/__init__.py` `RECIPES`), merged over the core ones (a name clash is an error)."""

    ensure_recipe_data(cfg, recipes=recipes)
    data_dir = Path(cfg["data_root"]) / cfg["dataset_id"]
    fingerprint = dataset_fingerprint(cfg)
    with file_lock(str(data_dir) + ".lock"):
        if not rebuild and _cache_valid(data_dir, fingerprint):
            log.info("Reusing processed dataset %s (fingerprint %s)", data_dir, fingerprint[:12])
            return str(data_dir)
        log.info("Building processed dataset %s", data_dir)
        t0 = time.time()
        tmp = data_dir.parent / f".{data_dir.name}.building-{os.getpid()}"
        remove_stale_temps(data_dir.parent, f".{data_dir.name}.building-*",
                           pid_of=lambda name: name.rsplit("-", 1)[-1])  # builds a killed process left
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            proc = FeatureProcessor(cfg)
            train_df = proc.read(cfg["train_data"])
            proc.fit(train_df)
            num_rows = {}
            for split in SPLITS:
                path = cfg.get(f"{split}_data")
                if not path:
                    continue
                df = train_df if split == "train" else proc.read(path)
                df.attrs["split"] = split
                cols = proc.transform(df)
                num_rows[split] = _write_split(cols, tmp / split, cfg["block_size"])
                log.info("  %s: %d rows", split, num_rows[split])
                del df, cols
            del train_df
            for name, mat in proc.pretrained.items():
                np.save(tmp / f"pretrained_{name}.npy", mat)
            vocab = {n: v.to_dict() for n, v in proc.vocabs.items()}
            atomic_write_text(tmp / "feature_vocab.json", json.dumps(vocab, ensure_ascii=False))
            # the feature map is written last: its presence marks a complete build
            proc.feature_map(str(data_dir), fingerprint, num_rows).save(tmp / "feature_map.json")
            replace_dir(tmp, data_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("Processed dataset built in %.1fs", time.time() - t0)
    return str(data_dir)


def load_feature_map(data_dir):
    return FeatureMap.load(Path(data_dir) / "feature_map.json")
