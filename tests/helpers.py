"""Helpers for tests: tiny config folders and synthetic data on disk."""

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def make_model_folder(tmp_path, datasets, experiments, base=None, name="model"):
    """Write <tmp>/<name>/config/{dataset,model}_config.yaml; return the config dir."""
    cfg = Path(tmp_path) / name / "config"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "dataset_config.yaml").write_text(yaml.safe_dump(datasets, sort_keys=False))
    models = {"Base": base or {"model_root": "./ckpt/", "verbose": 0}}
    models.update(experiments)
    (cfg / "model_config.yaml").write_text(yaml.safe_dump(models, sort_keys=False))
    return cfg


def zoo_module(model):
    from fuxi_like.experiment import load_model_module

    return load_model_module(ROOT / "model_zoo" / model)


def synthetic_dataset(tmp_path, n_rows=6000, seed=3, name="syn", **gen):
    """Write a synthetic CTR split to tmp and return its dataset config entry."""
    from fuxi_like.datasets.synthetic_ctr import generate, split_frame, write_splits

    raw = Path(tmp_path) / "raw" / name
    df = generate(n_rows=n_rows, seed=seed, **gen)
    paths = [str(raw / f"{s}.csv") for s in ("train", "valid", "test")]
    write_splits(split_frame(df, (0.8, 0.1, 0.1), seed), paths)
    return {
        "data_root": str(Path(tmp_path) / "processed"),
        "train_data": paths[0], "valid_data": paths[1], "test_data": paths[2],
        "feature_cols": [
            {"name": ["user_id", "item_id", "item_cate", "c1", "c2", "c3", "c4", "c5", "c6"], "type": "categorical"},
            {"name": ["num1", "num2"], "type": "numeric", "normalizer": "standard"},
            {"name": "hist_items", "type": "sequence", "max_len": 20, "share_embedding": "item_id"},
            {"name": "hist_cates", "type": "sequence", "max_len": 20, "share_embedding": "item_cate"},
        ],
        "label_col": {"name": "label", "dtype": "float"},
    }


def write_csv(path, frame):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return str(path)


def rng_frame(n, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"label": rng.integers(0, 2, n), "a": rng.integers(0, 5, n)})
