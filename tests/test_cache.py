"""Processed-data cache: reused when nothing changed, rebuilt on any change."""

import os
import time
from pathlib import Path

import pandas as pd

from fuxi_like.config import load_dataset_config
from fuxi_like.data.build_dataset import build_dataset, load_feature_map
from fuxi_like.data.tf_dataset import load_split
from helpers import make_model_folder


def setup(tmp_path, feature_cols=None, min_count=1):
    train = tmp_path / "train.csv"
    if not train.exists():
        pd.DataFrame({"y": [1, 0, 1, 0], "c": ["a", "b", "a", "c"]}).to_csv(train, index=False)
    ds = {"data_root": str(tmp_path / "proc"), "train_data": str(train), "min_categr_count": min_count,
          "feature_cols": feature_cols or [{"name": "c", "type": "categorical"}], "label_col": {"name": "y"}}
    return load_dataset_config(make_model_folder(tmp_path, {"d": ds}, {}), "d")


def marker(data_dir):
    return os.stat(Path(data_dir) / "feature_map.json").st_mtime_ns


def test_same_spec_and_files_reuse_cache(tmp_path):
    d1 = build_dataset(setup(tmp_path))
    m1 = marker(d1)
    time.sleep(0.01)
    d2 = build_dataset(setup(tmp_path))
    assert d1 == d2 and marker(d2) == m1


def test_changed_spec_rebuilds(tmp_path):
    d1 = build_dataset(setup(tmp_path))
    assert load_feature_map(d1).features["c"]["vocab_size"] == 5  # PAD a b c OOV
    d2 = build_dataset(setup(tmp_path, min_count=2))
    assert load_feature_map(d2).features["c"]["vocab_size"] == 3  # PAD a OOV


def test_changed_data_file_rebuilds(tmp_path):
    before = load_feature_map(build_dataset(setup(tmp_path))).fingerprint
    time.sleep(0.01)
    pd.DataFrame({"y": [1, 0], "c": ["x", "y"]}).to_csv(tmp_path / "train.csv", index=False)
    d2 = build_dataset(setup(tmp_path))
    fmap = load_feature_map(d2)
    assert fmap.fingerprint != before and len(load_split(fmap, "train")["c"]) == 2


def test_interrupted_build_leaves_no_valid_cache(tmp_path, monkeypatch):
    import fuxi_like.data.build_dataset as bd

    cfg = setup(tmp_path)

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(bd, "_write_split", boom)
    try:
        build_dataset(cfg)
    except KeyboardInterrupt:
        pass
    data_root = Path(cfg["data_root"])
    assert not (data_root / "d" / "feature_map.json").exists()
    assert not [p for p in data_root.iterdir() if p.name.startswith(".d.building")]
    monkeypatch.undo()
    assert load_feature_map(build_dataset(cfg)).num_rows["train"] == 4
