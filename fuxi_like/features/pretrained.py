"""Reading pretrained embedding files: npz / h5 / parquet with `key` and `value`."""

from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq

from ..errors import DataError


def load_pretrained(path, key="key", value="value"):
    """Return (keys as str array, values float32 [n, d]) from a key/value file."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"Pretrained embedding file not found: {p}")
    ext = p.suffix.lower()
    try:
        if ext == ".npz":
            with np.load(p, allow_pickle=False) as d:
                keys, vals = d[key], d[value]
        elif ext in (".h5", ".hdf5"):

            with h5py.File(p, "r") as f:
                keys, vals = f[key][:], f[value][:]
        elif ext == ".parquet":

            t = pq.read_table(p, columns=[key, value])
            keys = t.column(key).to_numpy()
            vals = np.stack(t.column(value).to_numpy(zero_copy_only=False))
        else:
            raise DataError(f"{p}: pretrained embeddings must be .npz, .h5 or .parquet, got '{ext}'")
    except KeyError as e:
        raise DataError(f"{p}: missing array {e} (expected '{key}' and '{value}')") from None
    vals = np.asarray(vals, dtype=np.float32)
    if vals.ndim != 2 or len(vals) != len(keys):
        raise DataError(f"{p}: '{value}' must be [n, dim] with n = len('{key}'), got {vals.shape} and {len(keys)} keys")
    keys = np.array([k.decode() if isinstance(k, bytes) else str(k) for k in keys], dtype=object)
    return keys, vals
