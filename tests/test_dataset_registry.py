"""The dataset registry (datasets/<id>.yaml, one definition per id), private ids of a model
folder, recipe parameters in the cache fingerprint, and logged sequence truncation."""

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from fuxi_like.config import REGISTRY_ENV, load_dataset_config
from fuxi_like.data.build_dataset import build_dataset, dataset_fingerprint, load_feature_map
from fuxi_like.data.tf_dataset import load_split
from fuxi_like.errors import ConfigError
from helpers import ROOT

REGISTRY = ROOT / "datasets"
FOLDERS = sorted(p for p in (ROOT / "model_zoo").iterdir() if (p / "config").is_dir())


@pytest.fixture(autouse=True)
def no_registry_env(monkeypatch):
    monkeypatch.delenv(REGISTRY_ENV, raising=False)


@contextmanager
def fuxi_log():
    """Records of the 'fuxi_like' logger (it may not propagate once a run has set it up)."""
    records = []

    class H(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger, h = logging.getLogger("fuxi_like"), H(logging.INFO)
    old = logger.level
    logger.addHandler(h)
    logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.removeHandler(h)
        logger.setLevel(old)


# ------------------------------------------------------------ the repository's definitions
def test_no_dataset_id_is_defined_twice():
    where = {}
    for f in sorted(REGISTRY.glob("*.yaml")):
        data = yaml.safe_load(f.read_text()) or {}
        assert list(data) == [f.stem], f"{f}: a registry file holds one id, named as the file"
        where.setdefault(f.stem, []).append(f)
    assert len(where) >= 10
    for folder in FOLDERS:
        f = folder / "config" / "dataset_config.yaml"
        if f.is_file():
            for ds in yaml.safe_load(f.read_text()) or {}:
                where.setdefault(ds, []).append(f)
    twice = {k: [str(p.relative_to(ROOT)) for p in v] for k, v in where.items() if len(v) > 1}
    assert not twice, f"dataset ids defined more than once: {twice}"


def expids_of(folder):
    data = yaml.safe_load((folder / "config" / "model_config.yaml").read_text()) or {}
    base = data.get("Base") or {}
    for expid, params in data.items():
        if expid != "Base" and isinstance(params, dict):
            yield expid, params.get("dataset_id") or base.get("dataset_id")


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_every_expid_names_a_dataset_that_resolves(folder):
    checked = {}
    for expid, ds in expids_of(folder):
        assert ds, f"{folder.name}: {expid} names no dataset_id"
        if ds not in checked:
            checked[ds] = load_dataset_config(folder / "config", ds)
        cfg = checked[ds]
        assert Path(cfg["config_file"]).is_file() and cfg["dataset_id"] == ds
    assert checked


def test_registry_paths_resolve_against_the_repository_root():
    cfg = load_dataset_config(ROOT / "model_zoo" / "DeepFM" / "config", "frappe")
    assert cfg["config_file"] == str(REGISTRY / "frappe.yaml")
    assert cfg["data_root"] == str((ROOT / "data" / "processed").resolve())
    assert cfg["train_data"] == str((ROOT / "data" / "raw" / "frappe" / "train.csv").resolve())
    assert cfg["recipe"]["raw_path"] == str((ROOT.parent / "shared" / "data" / "frappe" / "frappe.csv").resolve())
    rar = load_dataset_config(ROOT / "model_zoo" / "RAR" / "config", "rar_synthetic")  # a private id
    assert rar["config_file"] == str(ROOT / "model_zoo" / "RAR" / "config" / "dataset_config.yaml")
    assert rar["data_root"] == cfg["data_root"]
    pools = {f["name"]: f["truncate"] for f in rar["feature_cols"] if f["type"] == "sequence"}
    assert pools == {"hist_items": "pre", "recall_items": "post", "lookalike_items": "post"}


def test_unknown_id_lists_private_and_registry_ids_with_the_closest():
    with pytest.raises(ConfigError) as e:
        load_dataset_config(ROOT / "model_zoo" / "RAR" / "config", "frape")
    msg = str(e.value)
    assert "dataset_id 'frape' not found (did you mean 'frappe'?)" in msg
    assert "rar_synthetic" in msg and "synthetic_tiny" in msg and str(REGISTRY) in msg


def test_registry_loader_does_not_import_tensorflow():
    code = ("import sys; from fuxi_like.config import load_dataset_config; "
            f"load_dataset_config({str(ROOT / 'model_zoo' / 'DeepFM' / 'config')!r}, 'frappe'); "
            "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stderr[-2000:]


# ------------------------------------------------------------------ private vs registry
def write_yaml(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def entry(train):
    return {"data_root": "data/processed/", "train_data": train,
            "feature_cols": [{"name": "c", "type": "categorical"}], "label_col": {"name": "y"}}


def test_private_and_registry_ids_and_a_duplicate_names_both_files(tmp_path):
    repo = tmp_path / "repo"
    reg = write_yaml(repo / "datasets" / "shared_ds.yaml", {"shared_ds": entry("data/raw/s/train.csv")})
    cfg_dir = repo / "model_zoo" / "M" / "config"
    private = write_yaml(cfg_dir / "dataset_config.yaml", {"mine": entry("raw/train.csv")})
    shared = load_dataset_config(cfg_dir, "shared_ds")  # relative to the folder holding datasets/
    assert shared["train_data"] == str((repo / "data/raw/s/train.csv").resolve())
    assert shared["config_file"] == str(reg)
    mine = load_dataset_config(cfg_dir, "mine")  # relative to the model folder
    assert mine["train_data"] == str((repo / "model_zoo/M/raw/train.csv").resolve())
    assert mine["config_file"] == str(private)

    write_yaml(private, {"mine": entry("raw/train.csv"), "shared_ds": entry("raw/other.csv")})
    with pytest.raises(ConfigError) as e:
        load_dataset_config(cfg_dir, "shared_ds")
    assert str(private) in str(e.value) and str(reg) in str(e.value) and "defined twice" in str(e.value)

    # two registry directories (FUXI_LIKE_DATASETS) defining one id
    other = write_yaml(tmp_path / "more" / "shared_ds.yaml", {"shared_ds": entry("x.csv")})
    os.environ[REGISTRY_ENV] = os.pathsep.join([str(repo / "datasets"), str(other.parent)])
    try:
        with pytest.raises(ConfigError) as e:
            load_dataset_config(repo / "elsewhere", "shared_ds")
        assert str(reg) in str(e.value) and str(other) in str(e.value)
    finally:
        del os.environ[REGISTRY_ENV]

    write_yaml(repo / "datasets" / "wrong.yaml", {"not_wrong": entry("x.csv")})
    with pytest.raises(ConfigError, match="holds exactly one dataset id, named as the file"):
        load_dataset_config(cfg_dir, "wrong")


def test_folder_copied_outside_the_repository(tmp_path, monkeypatch):
    copy = tmp_path / "mine" / "MyFM"
    shutil.copytree(ROOT / "model_zoo" / "DeepFM" / "config", copy / "config")
    with pytest.raises(ConfigError) as e:
        load_dataset_config(copy / "config", "synthetic_tiny")
    msg = str(e.value)
    assert "no dataset registry" in msg and f"export {REGISTRY_ENV}=" in msg
    assert str(copy / "config" / "dataset_config.yaml") in msg

    monkeypatch.setenv(REGISTRY_ENV, str(REGISTRY))
    cfg = load_dataset_config(copy / "config", "synthetic_tiny")
    assert cfg["config_file"] == str(REGISTRY / "synthetic_tiny.yaml")
    assert cfg["train_data"] == str((ROOT / "data/raw/synthetic_tiny/train.csv").resolve())  # the shared copy
    monkeypatch.setenv(REGISTRY_ENV, str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="is not a directory"):
        load_dataset_config(copy / "config", "synthetic_tiny")


# ------------------------------------------------------------ recipe parameters -> rebuild
def tiny_recipe(calls):
    def make(train_path, valid_path, test_path, n_rows=20, pool=3):
        calls.append((n_rows, pool))
        rng = np.random.default_rng(0)
        for path, n in ((train_path, n_rows), (valid_path, 8), (test_path, 8)):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame({"y": rng.integers(0, 2, n), "c": rng.integers(0, 4, n),
                          "pool": ["^".join(map(str, range(pool)))] * n}).to_csv(path, index=False)
    return make


def recipe_cfg(tmp_path, **params):
    ds = entry("raw/tiny/train.csv")
    ds.update(valid_data="raw/tiny/valid.csv", test_data="raw/tiny/test.csv",
              recipe={"name": "tiny", **params},
              feature_cols=[{"name": "c", "type": "categorical"},
                            {"name": "pool", "type": "sequence", "max_len": 4, "truncate": "post"}])
    write_yaml(tmp_path / "M" / "config" / "dataset_config.yaml", {"tiny_ds": ds})
    return load_dataset_config(tmp_path / "M" / "config", "tiny_ds")


def fmap_mtime(data_dir):
    return os.stat(Path(data_dir) / "feature_map.json").st_mtime_ns


def test_changing_a_recipe_parameter_reruns_the_recipe_and_rebuilds(tmp_path):
    calls = []
    recipes = {"tiny": tiny_recipe(calls)}
    d1 = build_dataset(recipe_cfg(tmp_path, n_rows=20), recipes=recipes)
    assert calls == [(20, 3)] and load_feature_map(d1).num_rows["train"] == 20
    stamp = json.loads((tmp_path / "M" / "raw" / "tiny" / ".recipe.json").read_text())
    assert stamp["name"] == "tiny" and stamp["params"] == {"n_rows": 20}
    m1 = fmap_mtime(d1)
    time.sleep(0.01)
    assert build_dataset(recipe_cfg(tmp_path, n_rows=20), recipes=recipes) == d1
    assert calls == [(20, 3)] and fmap_mtime(d1) == m1  # unchanged: neither reruns

    with fuxi_log() as logs:
        d2 = build_dataset(recipe_cfg(tmp_path, n_rows=30), recipes=recipes)
    assert calls[-1] == (30, 3) and load_feature_map(d2).num_rows["train"] == 30
    assert any("recipe parameters changed: n_rows: 20 -> 30" in m for m in logs), logs

    # a pool longer than max_len after a parameter change: rebuilt, the first (best) 4 kept, logged
    with fuxi_log() as logs:
        d3 = build_dataset(recipe_cfg(tmp_path, n_rows=30, pool=6), recipes=recipes)
    fmap = load_feature_map(d3)
    vocab = json.loads((Path(d3) / "feature_vocab.json").read_text())["pool"]
    ids = load_split(fmap, "train")["pool"][0]
    inv = {i: t for t, i in vocab.items()}  # token -> id
    assert [inv[int(i)] for i in ids] == ["0", "1", "2", "3"]
    assert any("'pool'" in m and "30 of 30 rows longer than max_len=4" in m and "60 tokens cut at the end" in m
               for m in logs), logs

    # outputs without a stamp (made before stamps existed): rerun, logged
    (tmp_path / "M" / "raw" / "tiny" / ".recipe.json").unlink()
    n = len(calls)
    with fuxi_log() as logs:
        build_dataset(recipe_cfg(tmp_path, n_rows=30, pool=6), recipes=recipes)
    assert len(calls) == n + 1 and any("no recipe stamp" in m for m in logs)


def test_recipe_parameters_are_in_the_fingerprint(tmp_path):
    a = recipe_cfg(tmp_path, n_rows=20)
    b = recipe_cfg(tmp_path, n_rows=21)
    assert dataset_fingerprint(a) != dataset_fingerprint(b)  # same (absent) files, other recipe
    assert dataset_fingerprint(a) == dataset_fingerprint(recipe_cfg(tmp_path, n_rows=20))


def test_core_recipe_rerun_on_parameter_change(tmp_path):
    ds = entry("raw/syn/train.csv")
    ds.update(valid_data="raw/syn/valid.csv", test_data="raw/syn/test.csv",
              feature_cols=[{"name": ["user_id", "c1"], "type": "categorical"}], label_col={"name": "label"})
    for n in (300, 300, 400):
        ds["recipe"] = {"name": "synthetic_ctr", "n_rows": n, "seed": 1}
        write_yaml(tmp_path / "M" / "config" / "dataset_config.yaml", {"syn": ds})
        fmap = load_feature_map(build_dataset(load_dataset_config(tmp_path / "M" / "config", "syn")))
        assert sum(fmap.num_rows.values()) == n


def test_folder_recipes_merge_over_core_and_a_clash_is_an_error(tmp_path):
    cfg = recipe_cfg(tmp_path)
    with pytest.raises(ConfigError, match="unknown recipe 'tiny'.*src/__init__.py"):
        build_dataset(cfg)
    with pytest.raises(ConfigError, match="already name core recipes"):
        build_dataset(cfg, recipes={"tiny": tiny_recipe([]), "frappe": tiny_recipe([])})


# -------------------------------------------------------------------------- truncation
def test_too_long_sequence_is_cut_at_the_configured_end_and_logged(tmp_path):
    from fuxi_like.features.processor import FeatureProcessor

    ids = np.arange(1, 10, dtype=np.int32)  # rows: [1 2 3 4 5], [6], [7 8 9]
    lengths = np.array([5, 1, 3])
    pre = FeatureProcessor._pad(ids, lengths, 3, "post", "pre")
    post = FeatureProcessor._pad(ids, lengths, 3, "post", "post")
    np.testing.assert_array_equal(pre, [[3, 4, 5], [6, 0, 0], [7, 8, 9]])
    np.testing.assert_array_equal(post, [[1, 2, 3], [6, 0, 0], [7, 8, 9]])
    np.testing.assert_array_equal(FeatureProcessor._pad(ids, lengths, 4, "pre", "post"),
                                  [[1, 2, 3, 4], [0, 0, 0, 6], [0, 7, 8, 9]])

    train = tmp_path / "train.csv"
    pd.DataFrame({"y": [1, 0, 1], "s": ["a^b^c^d^e", "a", "c^d^e"]}).to_csv(train, index=False)
    out = {}
    for end in ("pre", "post"):
        ds = {"data_root": str(tmp_path / "p"), "train_data": str(train), "label_col": {"name": "y"},
              "feature_cols": [{"name": "s", "type": "sequence", "max_len": 2, "truncate": end}]}
        write_yaml(tmp_path / end / "config" / "dataset_config.yaml", {f"t_{end}": ds})
        with fuxi_log() as logs:
            d = build_dataset(load_dataset_config(tmp_path / end / "config", f"t_{end}"))
        msg = [m for m in logs if "Sequence feature 's'" in m]
        assert len(msg) == 1 and "split 'train'" in msg[0], logs
        assert "2 of 3 rows longer than max_len=2" in msg[0] and "4 tokens cut" in msg[0]
        assert ("at the end" if end == "post" else "at the front") in msg[0]
        out[end] = (load_feature_map(d).fingerprint, load_split(load_feature_map(d), "train")["s"])
    assert out["pre"][0] != out["post"][0]  # truncate is part of the spec
    assert not np.array_equal(out["pre"][1], out["post"][1])


def test_annotated_template_is_a_valid_private_definition(tmp_path):
    cfg_dir = tmp_path / "M" / "config"
    cfg_dir.mkdir(parents=True)
    shutil.copy(ROOT / "config_templates" / "dataset_config.yaml", cfg_dir / "dataset_config.yaml")
    cfg = load_dataset_config(cfg_dir, "my_dataset")
    assert {f["name"]: f["truncate"] for f in cfg["feature_cols"] if f["type"] == "sequence"} == {"hist_items": "pre"}
