"""Config validation: every error names the file and the key, with a suggestion."""

import pytest

from fuxi_like.config import load_dataset_config
from fuxi_like.experiment import load_model_config, validate_model_params
from fuxi_like.errors import ConfigError, DataError
from helpers import make_model_folder, zoo_module

DATA = {"d1": {"data_root": "./data", "train_data": "train.csv",
               "feature_cols": [{"name": "a", "type": "categorical"}], "label_col": {"name": "label"}}}


def cfg_dir(tmp_path, data=None, models=None):
    return make_model_folder(tmp_path, data or DATA, models or {"E1": {"model": "DNN", "dataset_id": "d1"}})


def test_missing_dataset_id_names_file_and_suggests(tmp_path):
    d = cfg_dir(tmp_path)
    with pytest.raises(ConfigError, match=r"dataset_config\.yaml: dataset_id 'd2' not found \(did you mean 'd1'\?\)"):
        load_dataset_config(d, "d2")


def test_unknown_dataset_key_lists_allowed_and_closest(tmp_path):
    data = {"d1": dict(DATA["d1"], min_categ_count=2)}
    with pytest.raises(ConfigError) as e:
        load_dataset_config(cfg_dir(tmp_path, data), "d1")
    msg = str(e.value)
    assert "dataset_config.yaml: d1: unknown key 'min_categ_count'" in msg
    assert "did you mean 'min_categr_count'" in msg and "Allowed keys:" in msg


def test_unknown_feature_key(tmp_path):
    data = {"d1": dict(DATA["d1"], feature_cols=[{"name": "a", "type": "categorical", "embeding_dim": 4}])}
    with pytest.raises(ConfigError, match=r"d1\.feature_cols\[0\]: unknown key 'embeding_dim' \(did you mean 'embedding_dim'\?\)"):
        load_dataset_config(cfg_dir(tmp_path, data), "d1")


def test_bad_feature_type_value(tmp_path):
    data = {"d1": dict(DATA["d1"], feature_cols=[{"name": "a", "type": "categorcal"}])}
    with pytest.raises(ConfigError, match=r"key 'type' is 'categorcal'.*did you mean 'categorical'"):
        load_dataset_config(cfg_dir(tmp_path, data), "d1")


def test_wrong_type_names_key(tmp_path):
    data = {"d1": dict(DATA["d1"], min_categr_count="two")}
    with pytest.raises(ConfigError, match=r"d1: key 'min_categr_count' must be int, got str 'two'"):
        load_dataset_config(cfg_dir(tmp_path, data), "d1")


def test_missing_required_key(tmp_path):
    data = {"d1": {k: v for k, v in DATA["d1"].items() if k != "label_col"}}
    with pytest.raises(ConfigError, match=r"d1: missing required key 'label_col'"):
        load_dataset_config(cfg_dir(tmp_path, data), "d1")


def test_sequence_needs_max_len(tmp_path):
    data = {"d1": dict(DATA["d1"], feature_cols=[{"name": "s", "type": "sequence"}])}
    with pytest.raises(ConfigError, match=r"sequence feature 's' needs 'max_len'"):
        load_dataset_config(cfg_dir(tmp_path, data), "d1")


def test_share_embedding_unknown_target(tmp_path):
    data = {"d1": dict(DATA["d1"], feature_cols=[{"name": "item", "type": "categorical"},
                                                 {"name": "s", "type": "sequence", "max_len": 3,
                                                  "share_embedding": "itme"}])}
    with pytest.raises(ConfigError, match=r"share_embedding: 'itme'.*did you mean 'item'"):
        load_dataset_config(cfg_dir(tmp_path, data), "d1")


def test_missing_data_file_names_file(tmp_path):
    from fuxi_like.data.build_dataset import build_dataset

    cfg = load_dataset_config(cfg_dir(tmp_path), "d1")
    with pytest.raises(DataError, match=r"Data file not found: .*model/train\.csv"):
        build_dataset(cfg)


def test_paths_resolve_against_model_folder(tmp_path):
    cfg = load_dataset_config(cfg_dir(tmp_path), "d1")
    assert cfg["train_data"] == str((tmp_path / "model" / "train.csv").resolve())


def test_unknown_expid_and_model_key(tmp_path):
    d = cfg_dir(tmp_path, models={"E1": {"model": "DNN", "dataset_id": "d1", "hiden_units": [8]}})
    with pytest.raises(ConfigError, match=r"model_config\.yaml: expid 'E2' not found \(did you mean 'E1'\?\)"):
        load_model_config(d, "E2")
    params = load_model_config(d, "E1")
    dnn = zoo_module("DNN").DNN
    with pytest.raises(ConfigError, match=r"E1: unknown key 'hiden_units' \(did you mean 'hidden_units'\?\)"):
        validate_model_params(params, dnn)


def test_model_param_wrong_type(tmp_path):
    d = cfg_dir(tmp_path, models={"E1": {"model": "DNN", "dataset_id": "d1", "batch_size": "big"}})
    with pytest.raises(ConfigError, match=r"E1: key 'batch_size' must be int, got str 'big'"):
        validate_model_params(load_model_config(d, "E1"), zoo_module("DNN").DNN)
    d = cfg_dir(tmp_path, models={"E1": {"model": "DNN", "dataset_id": "d1", "net_dropout": "x"}})
    with pytest.raises(ConfigError, match=r"E1: key 'net_dropout' must be float or int"):
        validate_model_params(load_model_config(d, "E1"), zoo_module("DNN").DNN)


def test_base_merged_and_expid_wins(tmp_path):
    d = make_model_folder(tmp_path, DATA, {"E1": {"model": "DNN", "dataset_id": "d1", "epochs": 3}},
                          base={"epochs": 9, "batch_size": 64})
    p = validate_model_params(load_model_config(d, "E1"), zoo_module("DNN").DNN)
    assert p["epochs"] == 3 and p["batch_size"] == 64 and p["learning_rate"] == 1e-3


def test_yaml_is_safe_loaded(tmp_path):
    d = cfg_dir(tmp_path)
    (d / "model_config.yaml").write_text("E1: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_model_config(d, "E1")


def test_unknown_model_class(tmp_path):
    import fuxi_like

    d = cfg_dir(tmp_path, models={"E1": {"model": "DeepFN", "dataset_id": "d1"}})
    with pytest.raises(ConfigError, match=r"model 'DeepFN' not found \(did you mean 'DeepFM'\?\)"):
        fuxi_like.run_expid(d, "E1", model_modules=[zoo_module("DeepFM")])


@pytest.mark.parametrize("extra,msg", [
    ({"metrics": ["AUC", "AUX"]}, r"E1: unknown metric 'AUX' \(did you mean 'AUC'\?\)"),
    ({"metrics": ["logloss"], "monitor": "AUC"}, r"E1: monitor metric 'AUC' is not in metrics \['logloss'\]"),
    ({"metrics": ["AUC", "gAUC"]}, r"E1: metrics .* need 'group_id'"),
    ({"optimizer": "lazyadm"}, r"model_config.yaml: E1: key 'optimizer': unknown optimizer 'lazyadm' "
                               r"\(did you mean 'lazyadam'\?\)"),
])
def test_metric_settings_fail_before_training(tmp_path, extra, msg):
    d = cfg_dir(tmp_path, models={"E1": {"model": "DNN", "dataset_id": "d1", **extra}})
    with pytest.raises(ConfigError, match=msg):
        validate_model_params(load_model_config(d, "E1"), zoo_module("DNN").DNN)


def test_unparseable_dense_vector_names_row(tmp_path):
    import pandas as pd

    from fuxi_like.data.build_dataset import build_dataset

    pd.DataFrame({"label": [1, 0], "v": ["1^2", "1^x"]}).to_csv(tmp_path / "t.csv", index=False)
    data = {"d1": {"data_root": "./p", "train_data": str(tmp_path / "t.csv"), "label_col": {"name": "label"},
                   "feature_cols": [{"name": "v", "type": "embedding", "pretrain_dim": 2}]}}
    with pytest.raises(DataError, match=r"t\.csv: column 'v', row 2: cannot parse '1\^x' as a vector"):
        build_dataset(load_dataset_config(cfg_dir(tmp_path, data), "d1"))


@pytest.mark.parametrize("key,value,message", [
    ("epochs", 0, r"E1: key 'epochs' must be >= 1, got 0"),
    ("batch_size", -5, r"E1: key 'batch_size' must be >= 1, got -5"),
    ("eval_batch_size", 0, r"E1: key 'eval_batch_size' must be >= 1, got 0"),
    ("learning_rate", -1, r"E1: key 'learning_rate' must be > 0, got -1"),
    ("early_stop_patience", -1, r"E1: key 'early_stop_patience' must be >= 0, got -1"),
    ("lr_decay_factor", 1.5, r"E1: key 'lr_decay_factor' must be in \(0, 1\), got 1.5"),
])
def test_out_of_range_runner_values_name_the_file_expid_and_key(tmp_path, key, value, message):
    d = cfg_dir(tmp_path, models={"E1": {"model": "DNN", "dataset_id": "d1", key: value}})
    with pytest.raises(ConfigError, match=message) as e:
        validate_model_params(load_model_config(d, "E1"), zoo_module("DNN").DNN)
    assert "model_config.yaml" in str(e.value)


def test_yaml_12_floats_are_numbers_in_configs_and_overrides(tmp_path):
    from fuxi_like.runner import parse_overrides

    d = cfg_dir(tmp_path, models={"E1": {"model": "DNN", "dataset_id": "d1"}})
    (d / "model_config.yaml").write_text("E1:\n  model: DNN\n  dataset_id: d1\n  learning_rate: 3e-3\n")
    assert load_model_config(d, "E1")["learning_rate"] == 0.003
    assert parse_overrides(["learning_rate=1e-4", "name=abc", "units=[64, 1e2]"]) == {
        "learning_rate": 1e-4, "name": "abc", "units": [64, 100.0]}


def test_a_key_given_twice_is_an_error_naming_both_lines(tmp_path):
    d = cfg_dir(tmp_path)
    (d / "model_config.yaml").write_text("E1:\n  model: DNN\n  dataset_id: d1\n  epochs: 3\n  epochs: 5\n")
    with pytest.raises(ConfigError, match=r"model_config.yaml: invalid YAML: .*key 'epochs' is given twice "
                                          r"\(lines 4 and 5\)"):
        load_model_config(d, "E1")


def test_a_misspelt_base_section_is_an_error_with_a_suggestion(tmp_path):
    d = cfg_dir(tmp_path)
    (d / "model_config.yaml").write_text("Bsae:\n  epochs: 3\nE1:\n  model: DNN\n  dataset_id: d1\n")
    with pytest.raises(ConfigError, match=r"section 'Bsae' has no 'model' key.*Base"):
        load_model_config(d, "E1")
    # sections may leave `model` to Base
    (d / "model_config.yaml").write_text("Base:\n  model: DNN\nE1:\n  dataset_id: d1\n")
    assert load_model_config(d, "E1")["model"] == "DNN"


@pytest.mark.parametrize("content,message", [("", r"train\.csv: the file is empty"),
                                             ("a,label\n", r"train\.csv: no data rows \(a header only\)")])
def test_empty_and_header_only_csvs_are_data_errors_naming_the_file(tmp_path, content, message):
    from fuxi_like.data.build_dataset import build_dataset

    cfg = load_dataset_config(cfg_dir(tmp_path), "d1")
    (tmp_path / "model" / "train.csv").write_text(content)
    with pytest.raises(DataError, match=message):
        build_dataset(cfg)


@pytest.mark.parametrize("spec,message", [
    ({"learning_rate": 1e6}, r"key 'learning_rate' is 1000000.0, above 10.0"),
    ({"net_dropout": 1.5}, r"key 'net_dropout' is a dropout rate, must be in \[0, 1\), got 1.5"),
    ({"embedding_dim": 0}, r"key 'embedding_dim' is a size, must be >= 1, got 0"),
    ({"hidden_units": [64, -1]}, r"key 'hidden_units' is a size, must be >= 1, got \[64, -1\]"),
])
def test_out_of_range_model_values_name_the_key(tmp_path, spec, message):
    d = cfg_dir(tmp_path, models={"E1": {"model": "DNN", "dataset_id": "d1", **spec}})
    with pytest.raises(ConfigError, match=r"model_config.yaml: E1: " + message):
        validate_model_params(load_model_config(d, "E1"), zoo_module("DNN").DNN)


def test_a_large_learning_rate_passes_when_asked_for_explicitly(tmp_path):
    d = cfg_dir(tmp_path, models={"E1": {"model": "DNN", "dataset_id": "d1", "learning_rate": 50.0,
                                         "allow_large_learning_rate": True}})
    assert validate_model_params(load_model_config(d, "E1"), zoo_module("DNN").DNN)["learning_rate"] == 50.0


@pytest.mark.parametrize("where,key,value", [("feature", "max_len", -5), ("feature", "embedding_dim", 0),
                                             ("feature", "min_categr_count", -1), ("dataset", "block_size", 0),
                                             ("dataset", "min_categr_count", 0)])
def test_out_of_range_dataset_and_feature_values_name_the_key(tmp_path, where, key, value):
    feat = {"name": "a", "type": "sequence", "max_len": 3}
    ds = dict(DATA["d1"], feature_cols=[dict(feat, **({key: value} if where == "feature" else {}))])
    if where == "dataset":
        ds[key] = value
    with pytest.raises(ConfigError, match=rf"key '{key}' must be >= \d+, got {value}"):
        load_dataset_config(cfg_dir(tmp_path, {"d1": ds}), "d1")


def _label_folder(tmp_path, train_labels, valid_labels, monitor="AUC"):
    import pandas as pd

    tmp_path.mkdir(parents=True, exist_ok=True)
    for split, labels in (("train", train_labels), ("valid", valid_labels)):
        pd.DataFrame({"a": [f"x{i % 5}" for i in range(len(labels))], "label": labels}).to_csv(
            tmp_path / f"{split}.csv", index=False)
    data = {"d1": {"data_root": str(tmp_path / "proc"), "train_data": str(tmp_path / "train.csv"),
                   "valid_data": str(tmp_path / "valid.csv"), "feature_cols": [{"name": "a", "type": "categorical"}],
                   "label_col": {"name": "label"}}}
    return cfg_dir(tmp_path, data, {"E1": {"model": "DNN", "dataset_id": "d1", "monitor": monitor,
                                            "metrics": ["AUC", "logloss"]}})


def test_binary_labels_outside_0_1_are_a_data_error_naming_file_and_row(tmp_path):
    from fuxi_like.experiment import build_experiment, prepare_experiment

    d = _label_folder(tmp_path, [0, 1] * 10 + [2], [0, 1] * 5)
    with pytest.raises(DataError, match=r"E1: dataset d1: .*train\.csv: label 'label' must be 0 or 1 .*data row 20 "
                                        r"has 2"):
        build_experiment(prepare_experiment(d, "E1", model_modules=[zoo_module("DNN")]))


def test_a_one_class_validation_split_under_an_auc_monitor_is_a_data_error(tmp_path):
    from fuxi_like.experiment import build_experiment, prepare_experiment

    d = _label_folder(tmp_path, [0, 1] * 10, [0] * 10)
    with pytest.raises(DataError, match=r"valid\.csv: every valid label 'label' is 0; the monitor 'AUC'"):
        build_experiment(prepare_experiment(d, "E1", model_modules=[zoo_module("DNN")]))
    d = _label_folder(tmp_path / "b", [0, 1] * 10, [0] * 10, monitor="logloss")
    build_experiment(prepare_experiment(d, "E1", model_modules=[zoo_module("DNN")]))  # logloss is defined: runs


def test_a_row_with_extra_fields_is_a_data_error_naming_the_line(tmp_path):
    from fuxi_like.data.build_dataset import build_dataset

    cfg = load_dataset_config(cfg_dir(tmp_path), "d1")
    (tmp_path / "model" / "train.csv").write_text("a,label\nx,0\ny,1,9,9\nz,0\n")
    with pytest.raises(DataError, match=r"train\.csv: line 3 has 4 fields, the header 2"):
        build_dataset(cfg)


def test_a_wrong_sequence_splitter_is_warned_with_counts(tmp_path, caplog):
    import logging

    from fuxi_like.data.build_dataset import build_dataset

    data = {"d1": dict(DATA["d1"], feature_cols=[{"name": "a", "type": "categorical"},
                                                 {"name": "s", "type": "sequence", "max_len": 4, "splitter": ","}])}
    cfg = load_dataset_config(cfg_dir(tmp_path, data), "d1")
    rows = "\n".join(f"x{i % 3},{i % 5}^{i % 7}^{i % 2},{i % 2}" for i in range(40))
    (tmp_path / "model" / "train.csv").write_text("a,s,label\n" + rows + "\n")
    with caplog.at_level(logging.WARNING, logger="fuxi_like"):
        build_dataset(cfg)
    assert "feature 's': 100% of the first 40 rows hold one token with splitter ','" in caplog.text
    assert "contain '^'" in caplog.text


@pytest.mark.parametrize("key,value,message", [("loss", "hinge_of_doom", r"loss"), ("task", "ranking", r"task"),
                                               ("embedding_regularizer", "l3(0.1)", r"regulari")])
def test_a_models_own_errors_name_the_file_and_expid(tmp_path, key, value, message):
    from fuxi_like.experiment import build_experiment, prepare_experiment

    d = _label_folder(tmp_path, [0, 1] * 10, [0, 1] * 5)
    text = (d / "model_config.yaml").read_text().replace("  model: DNN\n", f"  model: DNN\n  {key}: {value}\n")
    (d / "model_config.yaml").write_text(text)
    with pytest.raises(ConfigError, match=rf"model_config.yaml: E1: .*{message}"):
        build_experiment(prepare_experiment(d, "E1", model_modules=[zoo_module("DNN")]))


def test_a_damaged_processed_shard_is_rebuilt_with_a_warning(tmp_path, caplog):
    import logging

    import pyarrow.parquet as pq

    from fuxi_like.data.build_dataset import build_dataset

    cfg = load_dataset_config(cfg_dir(tmp_path), "d1")
    (tmp_path / "model" / "train.csv").write_text("a,label\n" + "".join(f"x{i % 4},{i % 2}\n" for i in range(50)))
    from pathlib import Path

    data_dir = Path(build_dataset(cfg))
    shard = sorted((data_dir / "train").glob("*.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[:-20])  # footer gone
    with caplog.at_level(logging.WARNING, logger="fuxi_like"):
        again = build_dataset(cfg)
    assert f"shard {shard} is unreadable" in caplog.text and "rebuilding it" in caplog.text
    assert pq.ParquetFile(sorted((Path(again) / "train").glob("*.parquet"))[0]).metadata.num_rows == 50


def test_temp_files_and_build_dirs_of_killed_runs_are_removed_at_the_next_build(tmp_path, caplog):
    import logging
    import subprocess
    from pathlib import Path

    from fuxi_like.data.build_dataset import build_dataset

    cfg = load_dataset_config(cfg_dir(tmp_path), "d1")
    (tmp_path / "model" / "train.csv").write_text("a,label\n" + "".join(f"x{i % 4},{i % 2}\n" for i in range(20)))
    dead = subprocess.Popen(["true"])
    dead.wait()
    root = Path(cfg["data_root"])
    root.mkdir(parents=True, exist_ok=True)
    stale = root / f".d1.building-{dead.pid}"
    (stale / "train").mkdir(parents=True)
    live = root / f".d1.building-{__import__('os').getpid()}x"  # not a pid: left alone
    live.mkdir()
    with caplog.at_level(logging.WARNING, logger="fuxi_like"):
        build_dataset(cfg)
    assert not stale.exists() and live.exists() and "a killed run left" in caplog.text
