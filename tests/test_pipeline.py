"""tf.data pipeline: complete epochs, seeded per-epoch order, streaming == in-memory."""

import numpy as np
import pandas as pd
import pytest

from fuxi_like.config import load_dataset_config
from fuxi_like.data.build_dataset import build_dataset, load_feature_map
from fuxi_like.data.tf_dataset import InputPipeline, load_split
from helpers import make_model_folder


@pytest.fixture(scope="module")
def fmap(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipe")
    n = 1000
    rng = np.random.default_rng(0)
    pd.DataFrame({"y": rng.integers(0, 2, n), "rid": np.arange(n), "c": rng.integers(0, 7, n), "c2": rng.integers(0, 50, n),
                  "x": rng.normal(size=n), "s": ["^".join(map(str, rng.integers(0, 9, 3))) for _ in range(n)]}
                 ).to_csv(tmp / "train.csv", index=False)
    ds = {"data_root": str(tmp / "proc"), "train_data": str(tmp / "train.csv"), "block_size": 300,
          "feature_cols": [{"name": "rid", "type": "meta", "remap": False}, {"name": ["c", "c2"], "type": "categorical"},
                           {"name": "x", "type": "numeric"}, {"name": "s", "type": "sequence", "max_len": 4}],
          "label_col": {"name": "y"}}
    cfg = load_dataset_config(make_model_folder(tmp, {"d": ds}, {}), "d")
    return load_feature_map(build_dataset(cfg))


def epoch_rows(pipe, epoch, shuffle=True):
    pipe.epoch.assign(epoch)
    rows, batches = [], 0
    for x, y in pipe.dataset("train", shuffle=shuffle):
        rows.append(x["rid"].numpy())
        assert y.shape[1] == 1 and x["s"].shape[1] == 4
        batches += 1
    return np.concatenate(rows), batches


@pytest.mark.parametrize("streaming", [False, True])
def test_each_epoch_is_a_permutation_seeded_by_epoch(fmap, streaming):
    pipe = InputPipeline(fmap, batch_size=128, seed=5, streaming=streaming)
    e0, nb = epoch_rows(pipe, 0)
    e1, _ = epoch_rows(pipe, 1)
    assert nb == 8 and sorted(e0.tolist()) == list(range(1000)) and sorted(e1.tolist()) == list(range(1000))
    assert not np.array_equal(e0, e1)
    again, _ = epoch_rows(InputPipeline(fmap, batch_size=128, seed=5, streaming=streaming), 1)
    np.testing.assert_array_equal(e1, again)  # a new process at epoch 1 sees the same order


def test_streaming_reads_block_by_block_and_matches_in_memory(fmap):
    full = load_split(fmap, "train")
    order = np.argsort(full["rid"])
    for streaming in (False, True):
        pipe = InputPipeline(fmap, batch_size=100, streaming=streaming)
        got = {k: [] for k in ("rid", "c", "x", "s")}
        for x, _ in pipe.dataset("train"):
            for k in got:
                got[k].append(x[k].numpy())
        got = {k: np.concatenate(v) for k, v in got.items()}
        np.testing.assert_array_equal(got["rid"], full["rid"])  # unshuffled keeps file order
        for k in ("c", "x", "s"):
            np.testing.assert_array_equal(got[k][np.argsort(got["rid"])], full[k][order])
    # 1000 rows at block_size 300 -> 4 shards
    import pathlib

    assert len(list(pathlib.Path(fmap.data_dir, "train").glob("*.parquet"))) == 4


def test_shuffled_batches_keep_each_rows_columns_together(fmap):
    """Columns of one dtype are gathered as packed rows: every column of a shuffled batch still comes
    from the same source row (checked against the file through the row id)."""
    from fuxi_like.data.tf_dataset import _pack_columns

    full = load_split(fmap, "train")
    _, packed = _pack_columns(dict(full))
    assert any({"c", "c2"} <= set(names) for names, _ in packed)  # the two categorical columns share a matrix
    by_rid = np.argsort(full["rid"])
    pipe = InputPipeline(fmap, batch_size=128, seed=3)
    for x, y in pipe.dataset("train", shuffle=True):
        src = by_rid[x["rid"].numpy()]
        for k in ("c", "c2", "x", "s"):
            np.testing.assert_array_equal(x[k].numpy(), full[k][src])
        np.testing.assert_array_equal(y.numpy()[:, 0], full["y"][src].astype("float32"))


def test_load_split_block_by_block_equals_reading_whole_tables(fmap):
    """load_split copies one row group at a time into preallocated arrays: the same values and dtypes
    as reading the whole split at once, in file order, and Arrow holds none of it afterwards."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fuxi_like.data.tf_dataset import columns_of, split_files

    files = split_files(fmap.data_dir, "train")
    assert len(files) == 4
    import gc

    gc.collect()
    before = pa.total_allocated_bytes()
    got = load_split(fmap, "train")
    gc.collect()
    held = pa.total_allocated_bytes() - before
    assert held < sum(v.nbytes for v in got.values()) / 10, held  # numpy owns the arrays, Arrow's buffers are freed
    whole = pa.concat_tables([pq.read_table(f) for f in files])
    for k in columns_of(fmap):
        col = whole.column(k).combine_chunks()
        want = (col.flatten().to_numpy().reshape(-1, col.type.list_size) if pa.types.is_fixed_size_list(col.type)
                else col.to_numpy())
        assert got[k].dtype == want.dtype and got[k].shape == want.shape, k
        np.testing.assert_array_equal(got[k], want)
    assert got["s"].ndim == 2 and got["s"].shape[1] == 4


def test_load_split_names_the_shard_and_column_whose_type_differs(fmap, tmp_path):
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    from fuxi_like.data.tf_dataset import split_files
    from fuxi_like.errors import DataError

    copy = tmp_path / "proc"
    shutil.copytree(fmap.data_dir, copy)
    bad = split_files(copy, "train")[2]
    t = pq.read_table(bad)
    pq.write_table(t.set_column(t.schema.get_field_index("c"), "c", t.column("c").cast(pa.float64())), bad)
    with pytest.raises(DataError, match=rf"{bad.name}.*column 'c' reads as float64"):
        load_split(fmap, "train", data_dir=str(copy))


@pytest.fixture(scope="module")
def fmap_valid(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipe_valid")
    rng = np.random.default_rng(1)
    for split, n in (("train", 500), ("valid", 700)):
        pd.DataFrame({"y": rng.integers(0, 2, n), "rid": np.arange(n), "c": rng.integers(0, 7, n)}
                     ).to_csv(tmp / f"{split}.csv", index=False)
    ds = {"data_root": str(tmp / "proc"), "train_data": str(tmp / "train.csv"), "valid_data": str(tmp / "valid.csv"),
          "block_size": 200, "feature_cols": [{"name": "rid", "type": "meta", "remap": False},
                                              {"name": "c", "type": "categorical"}], "label_col": {"name": "y"}}
    return load_feature_map(build_dataset(load_dataset_config(make_model_folder(tmp, {"d": ds}, {}), "d")))


@pytest.mark.parametrize("streaming", [False, True])
def test_eval_batch_size_batches_the_eval_splits_only_and_keeps_their_rows(fmap_valid, streaming):
    fmap = fmap_valid
    pipe = InputPipeline(fmap, batch_size=64, streaming=streaming, eval_batch_size=300)
    train = [len(y) for _, y in pipe.dataset("train")]
    assert train[0] == 64
    both = {}
    for bs in (None, 300):
        p = InputPipeline(fmap, batch_size=64, streaming=streaming, eval_batch_size=bs)
        sizes, rids = zip(*[(len(y), np.asarray(x["rid"]).reshape(-1)) for x, y in p.dataset("valid")])
        assert sizes[0] == (bs or 64) and sum(sizes) == 700
        both[bs] = np.concatenate(rids)
    np.testing.assert_array_equal(both[None], both[300])  # the same rows in the same order
    with pytest.raises(Exception, match="eval_batch_size must be a positive integer"):
        InputPipeline(fmap, batch_size=64, eval_batch_size=0)
