"""Media datasets on tf.data: folders of clips with labels.csv, AVE, synthetic AV.

A media dataset is configured in YAML (see `config_templates/media_config.yaml`)::

    env_sounds:
      type: folder                 # folder | ave
      root: ../shared/data/env_sounds
      labels_csv: labels.csv       # columns file_col, label_col
      audio: {preset: vggish, clip_seconds: 5.0, crop: random, spec_augment: true}
      on_error: skip               # raise | skip

`audio_dataset(items, ...)` decodes in parallel (`tf.numpy_function` inside
`map(num_parallel_calls=AUTOTUNE)`), resamples to the preset's rate, crops/pads
to a fixed length, computes log-mels with `tf.signal`, optionally SpecAugment,
and batches. A file that fails to decode raises an error naming it, or with
`on_error: skip` is logged as a warning and dropped while the pipeline goes on.
`segment_dataset` does the same for aligned audio-visual segments.
`cache_segment_features` runs an encoder once per clip and stores per-segment
features in parquet shards, reused while clips and encoder are unchanged.
"""

import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

from ..config import check_type, read_yaml, resolve_path
from ..errors import ConfigError, closest, unknown_key_error
from ..io_utils import atomic_write_text, file_fingerprint, stable_hash
from .audio import MediaError, load_audio, record_media_error
from .audio_features import fix_length, get_preset, log_mel, spec_augment
from .video import av_segments

log = logging.getLogger("fuxi_like")

MEDIA_KEYS = {
    "type": ((str,), None), "root": ((str,), None), "labels_csv": ((str,), "labels.csv"),
    "file_col": ((str,), "filename"), "label_col": ((str,), "label"), "audio": ((dict,), {}),
    "video": ((dict,), {}), "on_error": ((str,), "raise"), "annotations": ((str, type(None)), None),
    "order_dir": ((str, type(None)), None), "clip_ext": ((str,), ".mp4"),
}
AUDIO_KEYS = {"preset": ((str, dict), "vggish"), "clip_seconds": ((int, float), 5.0),
              "crop": ((str,), "center"), "loudness_dbfs": ((int, float, type(None)), None),
              "spec_augment": ((bool, dict), False), "mono": ((bool,), True)}
VIDEO_KEYS = {"frames_per_segment": ((int,), 1), "resize": ((int, type(None)), 128),
              "crop": ((int, type(None)), 112), "n_segments": ((int,), 10), "segment_seconds": ((int, float), 1.0)}


def _validate(where, cfg, schema):
    out = {k: v for k, (_, v) in schema.items()}
    for k, v in cfg.items():
        if k not in schema:
            raise unknown_key_error(where, k, schema)
        check_type(where, k, v, schema[k][0])
        out[k] = v
    return out


def load_media_config(path, dataset_id):
    """Validated media dataset config; relative paths resolve against the YAML's folder."""
    data = read_yaml(path)
    if dataset_id not in data:
        raise ConfigError(f"{path}: dataset_id '{dataset_id}' not found{closest(dataset_id, data)}")
    where = f"{path}: {dataset_id}"
    cfg = _validate(where, data[dataset_id], MEDIA_KEYS)
    if cfg["type"] not in ("folder", "ave"):
        raise ConfigError(f"{where}: key 'type' must be folder or ave, got {cfg['type']!r}")
    if cfg["on_error"] not in ("raise", "skip"):
        raise ConfigError(f"{where}: key 'on_error' must be raise or skip, got {cfg['on_error']!r}")
    if not cfg["root"]:
        raise ConfigError(f"{where}: missing required key 'root'")
    base = Path(path).parent
    for k in ("root", "annotations", "order_dir"):
        cfg[k] = resolve_path(cfg[k], base)
    cfg["audio"] = _validate(f"{where}.audio", cfg["audio"], AUDIO_KEYS)
    cfg["video"] = _validate(f"{where}.video", cfg["video"], VIDEO_KEYS)
    if cfg["audio"]["crop"] not in ("center", "start", "random"):
        raise ConfigError(f"{where}.audio: key 'crop' must be center, start or random")
    get_preset(cfg["audio"]["preset"])
    cfg["dataset_id"] = dataset_id
    return cfg


# ------------------------------------------------------------------ items
def folder_items(root, labels_csv="labels.csv", file_col="filename", label_col="label", classes=None):
    """[(path, class index)] and the class names, from a folder + labels CSV."""
    root = Path(root)
    csv = root / labels_csv
    if not csv.is_file():
        raise MediaError(f"Labels file not found: {csv}")
    df = pd.read_csv(csv, dtype=str)
    for c in (file_col, label_col):
        if c not in df.columns:
            raise MediaError(f"{csv}: column '{c}' not found{closest(c, df.columns)}; columns: {list(df.columns)}")
    classes = list(classes) if classes else sorted(df[label_col].unique())
    index = {c: i for i, c in enumerate(classes)}
    items = []
    for i, (f, lab) in enumerate(zip(df[file_col], df[label_col])):
        if lab not in index:
            raise MediaError(f"{csv}: row {i + 1}: label '{lab}' is not one of {classes}")
        items.append((str(root / f), index[lab]))
    return items, classes


# -------------------------------------------------------------- pipelines
@tf.autograph.experimental.do_not_convert
def _keep_ok(*row):
    return row[-1]


@tf.autograph.experimental.do_not_convert
def _drop_ok(x, y, ok):
    return x, y


def _decoder(sample_rate, length, crop, mono, loudness, on_error, seed):
    counter = {"n": 0}

    def decode(path):
        path = path.decode() if isinstance(path, bytes) else str(path)
        try:
            x, _ = load_audio(path, sample_rate, mono=mono, loudness_dbfs=loudness)
        except MediaError as e:
            if on_error == "skip":
                log.warning("skipping %s", e)
                return np.zeros(length, np.float32), np.bool_(False)
            raise record_media_error(e) from None
        counter["n"] += 1
        rng = np.random.default_rng([seed, counter["n"], abs(hash(path)) % (2 ** 31)]) if crop == "random" else None
        return fix_length(x, length, crop, rng).astype(np.float32), np.bool_(True)

    return decode


def audio_dataset(items, preset="vggish", clip_seconds=5.0, crop="center", loudness_dbfs=None, mono=True,
                  spec_augment_cfg=False, batch_size=16, shuffle=False, seed=0, on_error="raise",
                  return_waveform=False):
    """tf.data of ({'log_mel': [B, frames, mels]} (+ 'waveform'), labels [B])."""
    p = get_preset(preset)
    length = int(round(clip_seconds * p.sample_rate))
    paths = [str(a) for a, _ in items]
    labels = np.asarray([b for _, b in items], dtype=np.int32)
    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    if shuffle:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    decode = _decoder(p.sample_rate, length, crop, mono, loudness_dbfs, on_error, seed)

    def load(path, label):
        wav, ok = tf.numpy_function(decode, [path], (tf.float32, tf.bool), stateful=crop == "random")
        wav.set_shape((length,))
        ok.set_shape(())
        return wav, label, ok

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.filter(_keep_ok)
    aug = spec_augment_cfg if isinstance(spec_augment_cfg, dict) else ({} if spec_augment_cfg else None)

    def features(wav, label, ok):
        mel = log_mel(wav, p)
        if aug is not None:
            s = tf.stack([tf.cast(seed, tf.int64), tf.cast(tf.reduce_sum(tf.abs(wav)) * 1e4, tf.int64)])
            mel = spec_augment(mel, s, **aug)
        x = {"log_mel": mel}
        if return_waveform:
            x["waveform"] = wav
        return x, label

    ds = ds.map(features, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def dataset_from_config(cfg, items=None, batch_size=16, shuffle=False, seed=0, train=False):
    """The audio tf.data of a validated media config (folder type)."""
    a = cfg["audio"]
    if items is None:
        items, _ = folder_items(cfg["root"], cfg["labels_csv"], cfg["file_col"], cfg["label_col"])
    return audio_dataset(items, a["preset"], a["clip_seconds"], a["crop"] if train else "center",
                         a["loudness_dbfs"], a["mono"], a["spec_augment"] if train else False,
                         batch_size, shuffle, seed, cfg["on_error"])


def segment_dataset(clips, labels=None, n_segments=10, segment_seconds=1.0, frames_per_segment=1, sample_rate=16000,
                    resize=128, crop=112, batch_size=4, on_error="raise"):
    """tf.data of aligned AV segments: ({'video', 'audio', 'mask'}, labels [B, S])."""
    clips = [str(c) for c in clips]
    labels = np.zeros((len(clips), n_segments), np.int32) if labels is None else np.asarray(labels, np.int32)
    seg_len = int(round(segment_seconds * sample_rate))
    vshape = (n_segments, frames_per_segment, crop or resize, crop or resize, 3)

    def load(path):
        path = path.decode() if isinstance(path, bytes) else str(path)
        try:
            s = av_segments(path, n_segments, segment_seconds, frames_per_segment, sample_rate, resize, crop)
            return s["video"], s["audio"], s["mask"], np.bool_(True)
        except MediaError as e:
            if on_error == "skip":
                log.warning("skipping %s", e)
                return (np.zeros(vshape, np.uint8), np.zeros((n_segments, seg_len), np.float32),
                        np.zeros(n_segments, np.float32), np.bool_(False))
            raise record_media_error(e) from None

    def mapper(path, label):
        v, a, m, ok = tf.numpy_function(load, [path], (tf.uint8, tf.float32, tf.float32, tf.bool))
        v.set_shape(vshape)
        a.set_shape((n_segments, seg_len))
        m.set_shape((n_segments,))
        ok.set_shape(())
        return {"video": v, "audio": a, "mask": m}, label, ok

    ds = tf.data.Dataset.from_tensor_slices((clips, labels)).map(mapper, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.filter(_keep_ok).map(_drop_ok)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


# ------------------------------------------------------------------ AVE
class AVEAnnotations:
    """AVE labels: `Category&YouTubeID&Quality&StartSec&EndSec` per line.

    Classes are numbered in order of first appearance (the released label files'
    order); segment labels are the class over [StartSec, EndSec) and background
    (index = number of classes) elsewhere, over 10 one-second segments. Splits
    come from `train_order.h5` / `val_order.h5` / `test_order.h5` (row indices).
    """

    def __init__(self, annotations_path, order_dir=None, n_segments=10):
        p = Path(annotations_path)
        if not p.is_file():
            raise MediaError(f"AVE annotations not found: {p}")
        rows = []
        for i, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines()):
            if not line.strip():
                continue
            parts = line.strip().split("&")
            if i == 0 and parts[0] == "Category":  # the header of the official file
                continue
            if len(parts) != 5:
                raise MediaError(f"{p}: line {i + 1}: expected Category&YouTubeID&Quality&StartSec&EndSec, got {line!r}")
            try:
                rows.append((parts[0], parts[1], parts[2], int(parts[3]), int(parts[4])))
            except ValueError:
                raise MediaError(f"{p}: line {i + 1}: StartSec/EndSec must be integers, got {line!r}") from None
        self.path = p
        self.rows = rows
        self.classes = list(dict.fromkeys(r[0] for r in rows))
        self.n_segments = n_segments
        self.order_dir = Path(order_dir) if order_dir else p.parent

    @property
    def background(self):
        return len(self.classes)

    def segment_labels(self):
        lab = np.full((len(self.rows), self.n_segments), self.background, dtype=np.int32)
        for i, (cat, _, _, s, e) in enumerate(self.rows):
            lab[i, max(0, s):min(self.n_segments, e)] = self.classes.index(cat)
        return lab

    def split(self, name):
        f = self.order_dir / f"{name}_order.h5"
        if not f.is_file():
            raise MediaError(f"AVE split file not found: {f}")
        with h5py.File(f, "r") as h:
            return np.asarray(h["order"][:], dtype=np.int64)

    def clips(self, video_dir, indices=None, ext=".mp4", on_error="raise"):
        """(paths, segment labels) for rows with a clip `<YouTubeID><ext>` in `video_dir`."""
        video_dir = Path(video_dir)
        idx = range(len(self.rows)) if indices is None else indices
        labels = self.segment_labels()
        paths, labs = [], []
        for i in idx:
            f = video_dir / f"{self.rows[i][1]}{ext}"
            if not f.is_file():
                if on_error == "skip":
                    log.warning("AVE clip missing, skipped: %s", f)
                    continue
                raise MediaError(f"AVE clip not found: {f} (row {i + 1} of {self.path})")
            paths.append(str(f))
            labs.append(labels[i])
        return paths, np.asarray(labs, dtype=np.int32).reshape(-1, self.n_segments)


# ------------------------------------------------------ feature caching
def cache_segment_features(clips, encoder, out_dir, encoder_id, segment_kwargs=None, shard_size=256):
    """Encode each clip's AV segments once; store per-segment features in parquet shards.

    encoder(segments: dict from `av_segments`) -> dict name -> array [S, ...].
    The cache is reused while the clip files (path, size, mtime), `encoder_id` and
    `segment_kwargs` are unchanged; otherwise rebuilt. Returns the index dict.
    """

    out = Path(out_dir)
    segment_kwargs = segment_kwargs or {}
    fp = stable_hash({"clips": [file_fingerprint(c) for c in clips], "encoder": encoder_id, "seg": segment_kwargs})
    index_path = out / "index.json"
    if index_path.is_file():
        index = json.loads(index_path.read_text())
        if index.get("fingerprint") == fp:
            return index
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("part-*.parquet"):
        old.unlink()
    rows, shard = [], 0
    names = None

    def flush():
        nonlocal rows, shard
        if not rows:
            return
        cols = {"clip": pa.array([r[0] for r in rows]), "segment": pa.array([r[1] for r in rows], pa.int32())}
        for n in names:
            flat = np.stack([r[2][n] for r in rows]).astype(np.float32)
            cols[n] = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), int(np.prod(flat.shape[1:])))
        pq.write_table(pa.table(cols), out / f"part-{shard:05d}.parquet")
        rows, shard = [], shard + 1

    shapes = {}
    for clip in clips:
        feats = encoder(av_segments(clip, **segment_kwargs))
        names = names or sorted(feats)
        for s in range(len(next(iter(feats.values())))):
            rows.append((str(clip), s, {n: np.asarray(feats[n][s]) for n in names}))
            shapes = {n: list(np.asarray(feats[n][s]).shape) for n in names}
        if len(rows) >= shard_size:
            flush()
    flush()
    index = {"fingerprint": fp, "encoder": encoder_id, "clips": [str(c) for c in clips], "shapes": shapes,
             "shards": shard}
    atomic_write_text(index_path, json.dumps(index, indent=1))
    return index


def load_segment_features(out_dir):
    """dict: 'clip', 'segment' and each feature as [rows, *shape] arrays."""

    out = Path(out_dir)
    index = json.loads((out / "index.json").read_text())
    table = pq.read_table(sorted(str(p) for p in out.glob("part-*.parquet")))
    res = {"clip": np.asarray(table.column("clip").to_pylist()), "segment": table.column("segment").to_numpy()}
    for n, shape in index["shapes"].items():
        flat = table.column(n).combine_chunks().flatten().to_numpy()
        res[n] = flat.reshape([-1] + shape)
    return res
