"""`run_expid.py --seed N --set KEY=VALUE`: overrides reach the run, are validated like YAML keys, and change its hash."""

import pytest

from fuxi_like.errors import ConfigError
from fuxi_like.experiment import prepare_experiment
from fuxi_like.runner import parse_overrides

CONFIG = "model_zoo/DeepFM/config"


def test_parse_overrides_reads_yaml_values():
    assert parse_overrides(["epochs=3", "net_dropout=0.1", "hidden_units=[64, 32]", "optimizer=adam"]) == {
        "epochs": 3, "net_dropout": 0.1, "hidden_units": [64, 32], "optimizer": "adam"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["epochs"])
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_overrides(["hidden_units=[1, 2"])


def test_overrides_replace_values_and_are_validated():
    base = prepare_experiment(CONFIG, "DeepFM_test").params
    spec = prepare_experiment(CONFIG, "DeepFM_test", overrides={"seed": base["seed"] + 1, "epochs": 2})
    assert spec.params["seed"] == base["seed"] + 1 and spec.params["epochs"] == 2
    with pytest.raises(ConfigError, match="epoch"):  # unknown key: the same error as in the YAML, with a suggestion
        prepare_experiment(CONFIG, "DeepFM_test", overrides={"epoch": 2})
    with pytest.raises(ConfigError, match="epochs"):  # wrong type
        prepare_experiment(CONFIG, "DeepFM_test", overrides={"epochs": "many"})
    with pytest.raises(ConfigError, match="cannot be overridden"):
        prepare_experiment(CONFIG, "DeepFM_test", overrides={"model": "DNN"})
