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


def test_weights_cache_key_sets_the_cache_for_the_run(tmp_path, monkeypatch):
    """The `weights_cache` config key points fuxi_like.pretrained at a cache (relative to the model folder); it is
    not part of the run's hash (the cached files are sha256-checked wherever they are)."""
    from fuxi_like.experiment import build_experiment
    from fuxi_like.pretrained import fetch as fetch_mod

    monkeypatch.delenv(fetch_mod.ENV_CACHE, raising=False)
    plain = build_experiment(prepare_experiment(CONFIG, "DeepFM_test", overrides={"epochs": 1}))
    assert fetch_mod.ENV_CACHE not in __import__("os").environ
    exp = build_experiment(prepare_experiment(CONFIG, "DeepFM_test",
                                              overrides={"epochs": 1, "weights_cache": str(tmp_path / "w")}))
    assert fetch_mod.default_cache_dir() == tmp_path / "w"
    assert exp.run_hash == plain.run_hash
