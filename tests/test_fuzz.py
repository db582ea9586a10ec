"""Fuzzing the validation and preprocessing layers with Hypothesis (seeded: `derandomize`, bounded example counts):
generated expid params, feature specs and CSV files either run or raise a library error (ConfigError / DataError)
that names the file and the key or row; never a raw exception. Cases found and fixed this way are kept as regular
tests in test_config.py (ranges, duplicate keys, empty / header-only files, extra fields)."""

import string

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="the fuzz suite needs hypothesis (in the test extra)")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fuxi_like.config import load_dataset_config  # noqa: E402
from fuxi_like.errors import ConfigError, DataError  # noqa: E402
from fuxi_like.experiment import load_model_config, validate_model_params  # noqa: E402
from fuxi_like.training.params import RUNNER_KEYS  # noqa: E402
from helpers import make_model_folder, zoo_module  # noqa: E402

SETTINGS = dict(derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))

values = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 9, 10 ** 9),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                   st.lists(st.one_of(st.integers(-5, 300), st.floats(-2, 2), st.text(max_size=4)), max_size=4),
                   st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))
DNN_KEYS = sorted(zoo_module("DNN").DNN.hyperparameters())
keys = st.one_of(st.sampled_from(sorted(RUNNER_KEYS)), st.sampled_from(DNN_KEYS),
                 st.text(string.ascii_lowercase + "_", min_size=1, max_size=12))

DATA = {"d1": {"data_root": "./data", "train_data": "train.csv",
               "feature_cols": [{"name": "a", "type": "categorical"}], "label_col": {"name": "label"}}}


@settings(max_examples=150, **SETTINGS)
@given(st.dictionaries(keys, values, max_size=6))
def test_generated_expid_params_validate_or_name_the_file_and_key(tmp_path_factory, params):
    d = make_model_folder(tmp_path_factory.mktemp("fz"), DATA,
                          {"E1": {"model": "DNN", "dataset_id": "d1", **{k: v for k, v in params.items()
                                                                         if k not in ("model", "dataset_id")}}})
    try:
        validate_model_params(load_model_config(d, "E1"), zoo_module("DNN").DNN)
    except ConfigError as e:
        assert "model_config.yaml" in str(e), str(e)
        assert "E1" in str(e) or "invalid YAML" in str(e), str(e)


small = st.one_of(st.integers(-3, 5), values)
feature_values = {  # each key: mostly plausible values near the edges of its range, sometimes anything
    "dtype": st.one_of(st.sampled_from(["str", "float", "int"]), values),
    "min_categr_count": small, "embedding_dim": small, "max_len": small, "pretrain_dim": small,
    "splitter": st.one_of(st.sampled_from(["^", ",", "", " "]), values),
    "padding": st.one_of(st.sampled_from(["pre", "post"]), values),
    "truncate": st.one_of(st.sampled_from(["pre", "post"]), values),
    "share_embedding": st.one_of(st.sampled_from(["a", "b"]), values), "pooling": values, "normalizer": values,
    "remap": values, "fill_na": values, "active": values, "bogus_key": values}


TYPES = st.one_of(st.sampled_from(["categorical", "sequence", "numeric", "meta", "embedding", "bogus"]), values)


@settings(max_examples=200, **SETTINGS)
@given(st.fixed_dictionaries({"type": TYPES}, optional=feature_values), st.dictionaries(
    st.sampled_from(["min_categr_count", "block_size", "csv_sep", "data_format", "label_col"]), small, max_size=2))
@example({"type": "sequence", "max_len": -5}, {})  # raw tracebacks before the range checks (issue 29)
@example({"type": "categorical", "min_categr_count": -1}, {})
@example({"type": "sequence", "max_len": 3, "splitter": ""}, {})
@example({"type": "categorical"}, {"block_size": 0})
def test_generated_feature_and_dataset_specs_validate_or_name_the_key(tmp_path_factory, feature, dataset):
    from fuxi_like.data.build_dataset import build_dataset

    tmp = tmp_path_factory.mktemp("fz")
    (tmp / "train.csv").write_text("a,label\nx^y,1\nz,0\n3,1\n,0\n")
    spec = {"name": "a", "type": "categorical", **feature}
    data = {"d1": dict(DATA["d1"], data_root=str(tmp / "proc"), train_data=str(tmp / "train.csv"),
                       feature_cols=[spec], **dataset)}
    d = make_model_folder(tmp, data, {"E1": {"model": "DNN", "dataset_id": "d1"}})
    try:
        build_dataset(load_dataset_config(d, "d1"))  # validated, then built: runs or names what is wrong
    except (ConfigError, DataError) as e:
        assert "d1" in str(e) or "dataset_config.yaml" in str(e) or "train.csv" in str(e), str(e)


cell = st.one_of(st.text(alphabet=string.ascii_letters + string.digits + ' ,"\n^', max_size=6), st.just(""),
                 st.integers(-3, 3).map(str))


@settings(max_examples=40, **SETTINGS)
@given(st.lists(st.lists(cell, min_size=1, max_size=4), min_size=0, max_size=12),
       st.sampled_from(["a,s,label", "a,label", "a,s", "s,label,a,extra", ""]))
def test_generated_csv_files_build_or_raise_a_data_error_naming_the_file(tmp_path_factory, rows, header):
    import csv
    import io

    from fuxi_like.data.build_dataset import build_dataset

    tmp = tmp_path_factory.mktemp("fzcsv")
    data = {"d1": {"data_root": str(tmp / "proc"), "train_data": str(tmp / "train.csv"),
                   "feature_cols": [{"name": "a", "type": "categorical"},
                                    {"name": "s", "type": "sequence", "max_len": 3}],
                   "label_col": {"name": "label"}}}
    cfg = load_dataset_config(make_model_folder(tmp, data, {}), "d1")
    buf = io.StringIO()
    w = csv.writer(buf)
    for r in rows:
        w.writerow(r)
    (tmp / "train.csv").write_text((header + "\n" if header else "") + buf.getvalue())
    try:
        build_dataset(cfg)
    except (ConfigError, DataError) as e:
        assert "train.csv" in str(e) or "d1" in str(e), str(e)
