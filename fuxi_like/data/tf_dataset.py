"""tf.data input pipelines over processed parquet shards.

Each element is `(features, labels)`: `features` a dict name -> tensor
(categorical/meta ids [B], numeric [B], sequence ids [B, max_len], embedding
[B, dim]); `labels` a float32 [B, 1] tensor (or a dict of them for several labels).

Two modes:
- in-memory (default): the split is loaded once; each epoch draws a permutation
  from `stateless_shuffle(seed, epoch)` and gathers whole batches (vectorised, no
  per-row work). The epoch comes from a variable the training loop sets, so the
  order of epoch k is the same whether or not training was resumed.
- streaming: reads one parquet row group at a time (memory = one block), shuffles
  the block order and the rows inside each block per epoch, again from
  (seed, epoch). A whole split is never loaded.
"""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

from ..errors import ConfigError, DataError


def split_files(data_dir, split):
    d = Path(data_dir) / split
    files = sorted(d.glob("*.parquet"))
    if not files:
        raise DataError(f"No processed '{split}' split in {data_dir} (expected {d}/*.parquet)")
    return files


def _column_to_numpy(col):
    """One Arrow column (a ChunkedArray) -> numpy: zero-copy for a single chunk without nulls,
    else one concatenation of the chunks (no `combine_chunks` copy in Arrow's pool first)."""

    def one(chunk):
        if pa.types.is_fixed_size_list(chunk.type):
            return chunk.flatten().to_numpy(zero_copy_only=False).reshape(-1, chunk.type.list_size)
        return chunk.to_numpy(zero_copy_only=False)

    if col.num_chunks == 1:
        return one(col.chunk(0))
    if col.num_chunks == 0:
        return one(pa.array([], type=col.type))
    return np.concatenate([one(c) for c in col.chunks])


def _table_to_numpy(table, columns):
    """Arrow table -> {column: numpy array}. Each column is dropped from the table once converted,
    so its Arrow buffers are freed as the numpy copies appear (the caller must not keep `table`)."""
    out = {}
    for name in columns:
        out[name] = _column_to_numpy(table.column(name))
        table = table.drop_columns([name])
    return out


def columns_of(feature_map):
    return list(feature_map.features) + list(feature_map.labels)


def load_split(feature_map, split, data_dir=None):
    """Whole split as a dict of numpy arrays (features + labels).

    Read one parquet row group at a time into preallocated arrays, handing Arrow's buffers back
    after each: the peak is about the split's size plus one row group, where reading whole
    tables held ~3x (Arrow's allocator keeps freed buffers). 1M-row Criteo-like training split,
    122 MB of arrays: RSS +363 -> +146 MB, peak +363 -> +250 MB; the whole in-memory pipeline
    from disk RSS +254 -> +126 MB, peak +326 -> +241 MB (`python benchmark/load_memory.py`)."""
    data_dir = data_dir or feature_map.data_dir
    cols = columns_of(feature_map)
    parts = [(f, g, pf.metadata.row_group(g).num_rows) for f in split_files(data_dir, split)
             for pf in [pq.ParquetFile(f)] for g in range(pf.metadata.num_row_groups)]
    if len(parts) <= 1:  # one block: its numpy views are the arrays (no copy)
        out = _table_to_numpy(pq.read_table(split_files(data_dir, split)[0], columns=cols), cols)
        pa.default_memory_pool().release_unused()  # the read's scratch buffers
        return out
    total, out, at = sum(n for *_, n in parts), None, 0
    for f, g, n in parts:
        block = _table_to_numpy(pq.ParquetFile(f).read_row_group(g, columns=cols), cols)
        if out is None:
            out = {k: np.empty((total,) + v.shape[1:], v.dtype) for k, v in block.items()}
        for k, v in block.items():
            if v.dtype != out[k].dtype or v.shape[1:] != out[k].shape[1:]:

                raise DataError(f"{f}: row group {g}, column '{k}' reads as {v.dtype}{list(v.shape[1:])} where "
                                f"the split's first block had {out[k].dtype}{list(out[k].shape[1:])} (mixed "
                                "shards or nulls in processed data); rebuild the dataset (--rebuild_dataset)")
            out[k][at:at + n] = v
        at += n
        del block
        pa.default_memory_pool().release_unused()
    return out


def _dtype(spec):
    if spec["type"] in ("numeric", "embedding"):
        return tf.float32
    if spec["type"] == "meta" and spec.get("remap") is False:
        return tf.int64
    return tf.int32


def _shape(spec):
    if spec["type"] == "sequence":
        return (None, spec["max_len"])
    if spec["type"] == "embedding":
        return (None, spec["pretrain_dim"])
    return (None,)


def output_signature(feature_map):
    x = {n: tf.TensorSpec(_shape(s), _dtype(s)) for n, s in feature_map.features.items()}
    y = {l: tf.TensorSpec((None, 1), tf.float32) for l in feature_map.labels}
    return x, y


def _split_xy(feature_map, batch, extra=()):
    x = {n: batch[n] for n in list(feature_map.features) + list(extra)}
    y = {l: tf.reshape(tf.cast(batch[l], tf.float32), (-1, 1)) for l in feature_map.labels}
    return x, (y[feature_map.labels[0]] if len(y) == 1 else y)


def _pack_columns(arrays):
    """In-memory split -> ({name: tensor} for columns gathered alone, [(names, [n, k] tensor)]):
    1-D columns of one dtype are packed row-major, so a shuffled batch reads one contiguous row
    per sample instead of one random element per column (the gather cost is the cache misses:
    a 10,000-row batch of the 40-column Criteo-like set: ~20 -> ~4 ms CPU, 11 -> 3.5 ms wall;
    `python benchmark/micro_ab.py pipeline`).

    Consumes `arrays` (its entries are removed as they are copied): each source column is freed
    once copied into its packed matrix, so building needs about twice the split's size (the
    packed matrix, then TF's copy of it): peak +215 MB for 122 MB of arrays, +334 MB when the
    arrays were kept (`python benchmark/load_memory.py`)."""
    groups = {}
    for k, v in arrays.items():
        if v.ndim == 1:
            groups.setdefault(v.dtype.str, []).append(k)
    packed = []
    for names in groups.values():
        if len(names) > 1:
            first = arrays[names[0]]
            mat = np.empty((len(first), len(names)), first.dtype)
            del first
            for j, k in enumerate(names):
                mat[:, j] = arrays.pop(k)
            packed.append((names, tf.constant(mat)))
            del mat
    alone = {}
    for k in list(arrays):
        alone[k] = tf.constant(arrays.pop(k))
    return alone, packed


class InputPipeline:
    """Builds the datasets of one processed dataset.

    `epoch` is a tf.Variable read when an epoch's iterator starts; the training
    loop sets it (see `fuxi_like.training.callbacks.EpochSetter`).
    """

    def __init__(self, feature_map, batch_size, seed=0, streaming=False, data_dir=None, shard=None, augment=None,
                 eval_batch_size=None):
        """`eval_batch_size`: rows per batch of the valid/test splits (default `batch_size`; evaluation keeps no
        gradients, so a larger batch is usually faster and gives the same predictions).
        `shard=(num_workers, index)`: this worker's share of the training batches
        (multi-worker training); every worker gets the same number of batches.
        `augment(split, arrays) -> dict`: extra per-row input arrays computed once per split
        (e.g. retrieved neighbours' fields for RAT); they reach the model beside the features."""
        self.feature_map = feature_map
        self.batch_size = int(batch_size)
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.seed = int(seed)
        self.streaming = streaming
        self.data_dir = data_dir or feature_map.data_dir
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="input_epoch")
        self.shard = shard if shard and shard[0] > 1 else None
        self.augment = augment
        self._extra = {}
        if augment is not None and streaming:

            raise ConfigError("this model adds per-row inputs (e.g. retrieved samples) that need the in-memory "
                              "pipeline; set streaming: false")

    def split_batch_size(self, split):
        return self.batch_size if split == "train" else self.eval_batch_size

    def num_rows(self, split):
        return int(self.feature_map.num_rows.get(split, 0))

    def has_split(self, split):
        return (Path(self.data_dir) / split).is_dir()

    def dataset(self, split, shuffle=False):
        shard = self.shard if split == "train" else None  # evaluation: every worker sees the whole split
        ds = self._streaming(split, shuffle, shard) if self.streaming else self._in_memory(split, shuffle, shard)
        fmap = self.feature_map
        extra = tuple(self._extra.get(split, ()))
        split_xy = tf.autograph.experimental.do_not_convert(lambda b: _split_xy(fmap, b, extra))
        ds = ds.map(split_xy, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
        opts = tf.data.Options()
        opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF  # sharded above
        return ds.with_options(opts)

    # -------------------------------------------------------------- in memory
    def _in_memory(self, split, shuffle, shard=None):
        arrays = load_split(self.feature_map, split, self.data_dir)
        if self.augment is not None:
            more = self.augment(split, arrays)
            self._extra[split] = sorted(more)
            arrays.update(more)
        n = len(next(iter(arrays.values())))
        tensors, packed = _pack_columns(arrays)
        bs, seed, epoch = self.split_batch_size(split), self.seed, self.epoch
        nb = -(-n // bs)
        workers, index = shard or (1, 0)
        nb_local = nb // workers if shard else nb  # equal step counts on every worker

        def batches(_):
            if shuffle:
                s = tf.stack([tf.constant(seed, tf.int64), epoch.read_value()])
                perm = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=s)
            else:
                perm = tf.range(n, dtype=tf.int64)

            def gather(i):
                idx = perm[i * bs: tf.minimum((i + 1) * bs, n)]
                out = {k: tf.gather(v, idx) for k, v in tensors.items()}
                for names, mat in packed:  # one row gather per dtype, then the columns
                    out.update(zip(names, tf.unstack(tf.transpose(tf.gather(mat, idx)), axis=0)))
                return out

            ids = tf.data.Dataset.range(nb_local)
            if shard:
                ids = ids.map(tf.autograph.experimental.do_not_convert(lambda i: i * workers + index))
            return ids.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

        ds = tf.data.Dataset.from_tensors(0).flat_map(batches)
        return ds.apply(tf.data.experimental.assert_cardinality(nb_local))

    # -------------------------------------------------------------- streaming
    def _streaming(self, split, shuffle, shard=None):
        files = [str(f) for f in split_files(self.data_dir, split)]
        cols = columns_of(self.feature_map)
        bs, seed, epoch_var = self.split_batch_size(split), self.seed, self.epoch
        n = self.num_rows(split)

        def gen():
            rng = np.random.default_rng([seed, int(epoch_var.numpy())]) if shuffle else None
            blocks = [(f, g) for f in files for g in range(pq.ParquetFile(f).num_row_groups)]
            if rng is not None:
                blocks = [blocks[i] for i in rng.permutation(len(blocks))]
            carry = None
            for f, g in blocks:
                block = _table_to_numpy(pq.ParquetFile(f).read_row_group(g, columns=cols), cols)
                if rng is not None:
                    p = rng.permutation(len(block[cols[0]]))
                    block = {k: v[p] for k, v in block.items()}
                if carry is not None:
                    block = {k: np.concatenate([carry[k], block[k]]) for k in cols}
                m = len(block[cols[0]])
                full = m - m % bs
                for s in range(0, full, bs):
                    yield {k: v[s:s + bs] for k, v in block.items()}
                carry = {k: v[full:] for k, v in block.items()} if full < m else None
            if carry is not None:
                yield carry

        workers, index = shard or (1, 0)
        nb = -(-n // bs) if n else None
        if shard:
            inner = gen
            per_worker = nb // workers

            def gen():  # noqa: F811 - this worker's batches: every workers-th, equal counts
                for i, b in enumerate(inner()):
                    if i // workers >= per_worker:
                        return
                    if i % workers == index:
                        yield b

        x_sig, _ = output_signature(self.feature_map)
        sig = dict(x_sig)
        sig.update({l: tf.TensorSpec((None,), tf.float32) for l in self.feature_map.labels})
        ds = tf.data.Dataset.from_generator(gen, output_signature=sig)
        if nb:
            ds = ds.apply(tf.data.experimental.assert_cardinality(nb // workers if shard else nb))
        return ds
