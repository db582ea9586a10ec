"""Encode once: run a pretrained encoder over every item one time and keep the table, fingerprinted.

    from fuxi_like.pretrained import SentenceEncoder, encode_items
    enc = SentenceEncoder.from_preset("all-minilm-l6-v2")
    table = encode_items(enc, dict(zip(item_ids, item_texts)), "cache/items_minilm.parquet")
    table.values.shape, table.reused          # (4385, 384), False the first time, True afterwards

The file holds `key` (the item id as a string) and `value` (the float32 vector), the layout the `pretrained_emb`
option of a feature reads (`fuxi_like/features/pretrained.py`), so a dataset YAML can point a categorical item
feature at it and any model uses the vectors as a frozen (or fine-tuned) pretrained embedding:

    feature_cols: [{name: item_id, type: categorical, pretrained_emb: cache/items_minilm.parquet, freeze_emb: true}]

The fingerprint is a SHA-256 over (encoder class and name, a hash of every weight of the encoder as it is now, the
preprocessing options, the keys and the inputs: the text, the array bytes, or a file's bytes for a path); it is
stored in the file (parquet schema metadata / an npz array) and in a `<file>.json` sidecar with what went into it
and how long it took. A second call with the same fingerprint reads the file instead of encoding again; a change in
any part (a fine-tuned weight, another `sequence_length`, one edited text) encodes again. Hashing the weights
themselves rather than a weight file's name means a fine-tuned encoder never reuses the table of the original.

Encoders: anything with `encode_texts` (SentenceEncoder), `encode_images` (MobileNetV2Encoder), `encode_clips`
(YAMNetEncoder, the musicnn encoder; `output=` picks the returned array), or a plain callable batch -> [B, d]
(give it `name=`). Batched, with a progress bar.
"""

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ..errors import ConfigError, DataError
from ..io_utils import atomic_write_text

FORMATS = (".parquet", ".npz")
_META_KEY = b"fuxi_like.fingerprint"


@dataclasses.dataclass
class EncodedTable:
    """The result of `encode_items`: keys [N] (str), values [N, d] float32, the fingerprint, the file, and whether
    the file was reused."""

    keys: np.ndarray
    values: np.ndarray
    fingerprint: str
    path: Path
    reused: bool
    info: dict


def weights_hash(model):
    """SHA-256 over every weight of a Keras model / layer (dtype, shape, bytes), in its order. Not the names: Keras
    numbers a second instance's layers (`bert_backbone_1/...`), and the same weights must give the same hash."""
    h = hashlib.sha256()
    for w in getattr(model, "weights", []):
        value = np.ascontiguousarray(np.asarray(w.numpy() if hasattr(w, "numpy") else w))
        h.update(f"{value.dtype}:{value.shape};".encode())
        h.update(value.tobytes())
    return h.hexdigest()


def _is_file(x):
    try:
        return Path(x).is_file()
    except (OSError, ValueError):  # a long text or one with NUL is not a path
        return False


def _input_bytes(x, where, texts=False):
    """What of an input goes into the fingerprint: a text's UTF-8 (always, for a text encoder), a file's bytes
    (a Path, or a string naming an existing file), an array's dtype, shape and bytes."""
    if isinstance(x, Path) or (isinstance(x, str) and not texts and _is_file(x)):
        if not _is_file(x):
            raise DataError(f"{where}: file not found: {x}")
        return b"file:" + Path(x).read_bytes()
    if isinstance(x, str):
        return b"text:" + x.encode("utf-8")
    if isinstance(x, (bytes, bytearray)):
        return b"bytes:" + bytes(x)
    arr = np.asarray(x)
    if arr.dtype == object:
        raise DataError(f"{where}: cannot fingerprint an input of type {type(x).__name__}")
    return f"array:{arr.dtype}:{arr.shape}:".encode() + np.ascontiguousarray(arr).tobytes()


def _batch_function(encoder, options, batch_size):
    if hasattr(encoder, "encode_texts"):
        return lambda xs: encoder.encode_texts(list(xs), batch_size=batch_size, **options)
    if hasattr(encoder, "encode_images"):
        return lambda xs: encoder.encode_images(list(xs), batch_size=batch_size, **options)
    if hasattr(encoder, "encode_clips"):
        opts = dict(options)
        output = opts.pop("output", "embedding")

        def clips(xs):
            out = encoder.encode_clips(list(xs), batch_size=batch_size, **opts)
            if isinstance(out, dict):
                if output not in out:
                    raise ConfigError(f"encode_items: output {output!r} not among {sorted(out)}")
                return out[output]
            return out
        return clips
    if callable(encoder):
        return lambda xs: encoder(list(xs), **options)
    raise ConfigError(f"encode_items: {type(encoder).__name__} has no encode_texts / encode_images / encode_clips "
                      f"and is not callable")


def fingerprint(encoder, keys, inputs, options=None, name=None):
    """The fingerprint `encode_items` stores: (hex digest, a dict of what went into it)."""
    h = hashlib.sha256()
    parts = {"encoder": name or f"{type(encoder).__module__}.{type(encoder).__qualname__}",
             "weights_sha256": weights_hash(encoder) if hasattr(encoder, "weights") else None,
             "options": {k: repr(v) for k, v in sorted((options or {}).items())},
             "n_items": len(keys)}
    h.update(json.dumps(parts, sort_keys=True).encode())
    texts = hasattr(encoder, "encode_texts")
    for k, x in zip(keys, inputs):
        h.update(b"\0key:" + str(k).encode("utf-8") + b"\0")
        h.update(hashlib.sha256(_input_bytes(x, f"item {k!r}", texts)).digest())
    return h.hexdigest(), parts


def _read(path):
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        fp = (table.schema.metadata or {}).get(_META_KEY, b"").decode()
        keys = np.array(table.column("key").to_pylist(), dtype=object)
        values = np.stack(table.column("value").to_numpy(zero_copy_only=False)).astype(np.float32)
        return keys, values, fp
    with np.load(path, allow_pickle=False) as d:
        fp = str(d["fingerprint"]) if "fingerprint" in d else ""
        return d["key"].astype(object), d["value"].astype(np.float32), fp


def _write(path, keys, values, fp):
    tmp = path.with_name(f".tmp-{path.name}")
    if path.suffix == ".parquet":
        arr = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), type=pa.float32()), values.shape[1])
        table = pa.table({"key": pa.array([str(k) for k in keys], type=pa.string()), "value": arr})
        pq.write_table(table.replace_schema_metadata({_META_KEY: fp.encode()}), tmp)
    else:
        with open(tmp, "wb") as f:
            np.savez(f, key=np.array([str(k) for k in keys]), value=values, fingerprint=np.array(fp))
    tmp.replace(path)


def encode_items(encoder, items, path, batch_size=64, options=None, name=None, force=False, verbose=True):
    """Encode `items` once with `encoder` and keep the table at `path` (.parquet or .npz); reuse it when the
    fingerprint matches.

    Args:
        encoder: a pretrained encoder of this package, or a callable batch -> [B, d] (then give `name`).
        items: {key: input} or a sequence of (key, input) pairs; an input is a text, an image / audio file path, or
            an array, whatever the encoder's batch method takes. Keys must be unique.
        path: the table file, `.parquet` or `.npz` (`key`, `value` [+ fingerprint]); a `<path>.json` sidecar says
            what went into it.
        batch_size: items per encoder call.
        options: keyword options of the encoder's batch method (`sequence_length` is part of a SentenceEncoder;
            `size`/`mode`/`output` for images, `output` for clips); part of the fingerprint.
        force: encode even when the file's fingerprint matches.

    Returns:
        EncodedTable(keys, values [N, d] float32, fingerprint, path, reused, info).
    """
    path = Path(path)
    if path.suffix not in FORMATS:
        raise ConfigError(f"encode_items: {path}: the table must be one of {', '.join(FORMATS)}")
    pairs = list(items.items()) if isinstance(items, dict) else list(items)
    if not pairs:
        raise DataError(f"encode_items: {path}: no items to encode")
    keys = [k for k, _ in pairs]
    if len(set(map(str, keys))) != len(keys):
        seen, dup = set(), None
        for k in map(str, keys):
            if k in seen:
                dup = k
                break
            seen.add(k)
        raise DataError(f"encode_items: {path}: duplicate item key {dup!r}")
    inputs = [x for _, x in pairs]
    options = dict(options or {})
    fp, parts = fingerprint(encoder, keys, inputs, options, name)
    if path.is_file() and not force:
        try:
            old_keys, old_values, old_fp = _read(path)
        except Exception as e:  # noqa: BLE001 - an unreadable table is re-encoded, and said so
            old_fp = None
            tqdm.write(f"encode_items: {path} unreadable ({e.__class__.__name__}); encoding again")
        if old_fp == fp:
            info = json.loads(path.with_name(path.name + ".json").read_text()) if \
                path.with_name(path.name + ".json").is_file() else parts
            return EncodedTable(old_keys, old_values, fp, path, True, info)
    run = _batch_function(encoder, options, batch_size)
    chunks = []
    t0 = time.time()
    with tqdm(total=len(inputs), desc=f"encode {path.name}", unit="item", disable=not verbose) as bar:
        for i in range(0, len(inputs), batch_size):
            out = np.asarray(run(inputs[i:i + batch_size]), dtype=np.float32)
            if out.ndim != 2 or len(out) != len(inputs[i:i + batch_size]):
                raise DataError(f"encode_items: the encoder returned shape {out.shape} for a batch of "
                                f"{len(inputs[i:i + batch_size])} items; expected [batch, dim]")
            if not np.isfinite(out).all():
                bad = keys[i + int(np.where(~np.isfinite(out).all(axis=1))[0][0])]
                raise DataError(f"encode_items: non-finite embedding for item {bad!r}; nothing written to {path}")
            chunks.append(out)
            bar.update(len(out))
    values = np.concatenate(chunks)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, keys, values, fp)
    seconds = time.time() - t0
    info = {**parts, "fingerprint": fp, "dim": int(values.shape[1]), "seconds": round(seconds, 2),
            "items_per_second": round(len(keys) / max(seconds, 1e-9), 2),
            "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    atomic_write_text(path.with_name(path.name + ".json"), json.dumps(info, indent=1) + "\n")
    return EncodedTable(np.array([str(k) for k in keys], dtype=object), values, fp, path, False, info)


__all__ = ["encode_items", "EncodedTable", "fingerprint", "weights_hash"]
