"""Audio decoding, resampling and loudness normalisation (NumPy side of the pipeline).

- WAV (PCM 16-bit) through `tf.audio.decode_wav`; other WAV encodings, FLAC, OGG/Vorbis
  and MP3 through `soundfile`; audio tracks inside video containers (mp4, webm, mkv,
  ...) through PyAV. When the first decoder fails, the other one is tried (soundfile <-> PyAV;
  e.g. FLAC in an .ogg, which libsndfile rejects), before a MediaError names both reasons.
- `to_mono` downmixes by averaging channels.
- `resample` is a polyphase resampler with a Kaiser-windowed sinc low-pass
  (anti-aliasing below the lower Nyquist), exact rational ratios up/down.
- `normalize_loudness` scales to a target RMS level in dBFS, without clipping.

Every decoding failure raises `MediaError` naming the file.
"""

import contextlib
import logging
import struct
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np
import tensorflow as tf

from ..errors import DataError

log = logging.getLogger("fuxi_like")


class MediaError(DataError):
    """A media file is missing, corrupt, truncated or has no usable stream."""


_RECORDED = []  # the last MediaError raised inside a tf.data decoder (tf.numpy_function wraps it in an OpError)


def record_media_error(err):
    """Keep `err` so that `media_errors()` can raise it as itself after TensorFlow has wrapped it."""
    _RECORDED[:] = [err]
    return err


@contextlib.contextmanager
def media_errors():
    """Run a block that iterates a media tf.data pipeline (fit, predict, a for loop): a decoding failure inside it
    comes out as the library's MediaError naming the file, instead of a long tf.errors.InvalidArgumentError."""
    _RECORDED.clear()
    try:
        yield
    except tf.errors.OpError:
        if _RECORDED:
            err = _RECORDED.pop()
            raise err from None
        raise


class NoStreamError(MediaError):
    """The file decodes but holds no stream of the kind asked for (no other decoder is tried)."""


SOUNDFILE_EXT = {".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au"}
CONTAINER_EXT = {".mp4", ".m4a", ".webm", ".mkv", ".mov", ".avi", ".opus", ".aac"}


def decode_audio(path):
    """Return (samples float32 [n, channels] in [-1, 1], sample_rate)."""
    p = Path(path)
    if not p.is_file():
        raise MediaError(f"Audio file not found: {p}")
    ext = p.suffix.lower()
    try:
        if ext == ".wav":
            return _decode_wav(p)
        if ext in SOUNDFILE_EXT:
            return _with_fallback(p, ("soundfile", _decode_soundfile), ("PyAV", decode_container_audio))
        return _with_fallback(p, ("PyAV", decode_container_audio), ("soundfile", _decode_soundfile))
    except MediaError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder failure becomes a clear, named error
        raise MediaError(f"{p}: cannot decode audio ({type(e).__name__}: {e})") from None


def _with_fallback(p, first, second):
    """Decode with `first` (name, fn); when it fails, with `second` (e.g. FLAC inside an .ogg, which libsndfile
    rejects and FFmpeg reads); both failing is one MediaError naming the file and both decoders' reasons. The
    decoder that read the file is logged at debug level."""
    try:
        out = first[1](p)
        log.debug("%s: decoded by %s", p, first[0])
        return out
    except NoStreamError:
        raise
    except MediaError as e1:
        try:
            out = second[1](p)
        except MediaError as e2:
            raise MediaError(f"{p}: cannot decode audio with {first[0]} ({_reason(p, e1)}) nor with {second[0]} "
                             f"({_reason(p, e2)})") from None
        log.debug("%s: decoded by %s after %s failed (%s)", p, second[0], first[0], _reason(p, e1))
        return out


def _reason(p, err):
    return str(err).replace(f"{p}: ", "", 1)


def _decode_wav(p):
    raw = p.read_bytes()
    if len(raw) < 44 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise MediaError(f"{p}: not a RIFF/WAVE file (corrupt or truncated header)")
    # a truncated data chunk can decode short without an error: check the declared size first
    _check_wav_length(p, raw)
    try:
        audio, sr = tf.audio.decode_wav(raw)
        return audio.numpy(), int(sr.numpy())
    except Exception:  # noqa: BLE001 - not 16-bit PCM: let soundfile read it
        return _decode_soundfile(p)


def _check_wav_length(p, raw):
    pos = 12
    fmt = None
    while pos + 8 <= len(raw):
        cid, size = raw[pos:pos + 4], struct.unpack("<I", raw[pos + 4:pos + 8])[0]
        if cid == b"fmt ":
            fmt = struct.unpack("<HHIIHH", raw[pos + 8:pos + 24])
        if cid == b"data":
            have = len(raw) - (pos + 8)
            if have < size:
                raise MediaError(f"{p}: truncated WAV: data chunk declares {size} bytes, file holds {have}")
            return
        pos += 8 + size + (size & 1)
    if fmt is None:
        raise MediaError(f"{p}: WAV without a fmt chunk")


def _decode_soundfile(p):
    import soundfile as sf  # lazy: libsndfile is loaded only for audio decoding

    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:  # noqa: BLE001
        raise MediaError(f"{p}: cannot decode audio ({type(e).__name__}: {e})") from None
    if data.size == 0:
        raise MediaError(f"{p}: no audio samples (empty or truncated file)")
    return data, int(sr)


@contextlib.contextmanager
def open_stream(path, kind):
    """Open `path` with PyAV and yield (container, first `kind` stream: "audio" | "video").

    Any failure while the block runs (open, demux, decode) becomes a MediaError
    naming the file; a missing stream is "<file>: no <kind> stream".
    """
    import av  # lazy: PyAV loads FFmpeg's native libraries; only media decoding needs them

    p = Path(path)
    if not p.is_file():
        raise MediaError(f"{kind.capitalize()} file not found: {p}")
    try:
        with av.open(str(p)) as c:
            streams = getattr(c.streams, kind)
            if not streams:
                raise NoStreamError(f"{p}: no {kind} stream")
            yield c, streams[0]
    except MediaError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder failure becomes a clear, named error
        raise MediaError(f"{p}: cannot decode {kind} ({type(e).__name__}: {e})") from None


def decode_container_audio(path):
    """Decode the first audio stream of any container PyAV reads; [n, ch] float32."""
    p = Path(path)
    chunks = []
    with open_stream(p, "audio") as (c, stream):
        sr = stream.codec_context.sample_rate
        for frame in c.decode(stream):
            arr = frame.to_ndarray()
            if frame.format.is_planar:
                arr = arr.T  # [ch, n] -> [n, ch]
            else:
                arr = arr.reshape(-1, len(frame.layout.channels))
            chunks.append(_to_float(arr))
    if not chunks:
        raise MediaError(f"{p}: the audio stream holds no frames (empty or truncated)")
    return np.concatenate(chunks).astype(np.float32), int(sr)


def _to_float(arr):
    if arr.dtype.kind == "f":
        return arr.astype(np.float32)
    info = np.iinfo(arr.dtype)
    if info.min == 0:  # unsigned 8-bit
        return (arr.astype(np.float32) - 128.0) / 128.0
    return arr.astype(np.float32) / float(-info.min)


def to_mono(x):
    """[n, ch] or [n] -> [n] (mean over channels)."""
    x = np.asarray(x, dtype=np.float32)
    return x if x.ndim == 1 else x.mean(axis=1)


@lru_cache(maxsize=32)
def _polyphase_filter(up, down, half_taps_per_phase=16, beta=8.6):
    """Kaiser-windowed sinc low-pass at min(1/up, 1/down) of the upsampled rate."""
    cutoff = 1.0 / max(up, down)
    half = half_taps_per_phase * max(up, down)
    n = np.arange(-half, half + 1, dtype=np.float64)
    h = cutoff * np.sinc(cutoff * n) * np.kaiser(len(n), beta)
    h *= up / h.sum()  # unity DC gain after zero-stuffing by `up`
    return h, half


def resample(x, orig_sr, target_sr):
    """Polyphase resampling of [n] or [n, ch] from `orig_sr` to `target_sr`."""
    if orig_sr == target_sr:
        return np.asarray(x, dtype=np.float32)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        return np.stack([resample(x[:, c], orig_sr, target_sr) for c in range(x.shape[1])], axis=1)
    frac = Fraction(int(target_sr), int(orig_sr))
    up, down = frac.numerator, frac.denominator
    h, half = _polyphase_filter(up, down)
    n_out = int(np.ceil(len(x) * up / down))
    # output sample m sits at upsampled index t = m*down; filter centred there (zero delay)
    t = np.arange(n_out, dtype=np.int64) * down + half
    taps = int(np.ceil(len(h) / up))
    hp = np.zeros(taps * up)
    hp[:len(h)] = h
    phase = t % up
    base = t // up
    coeff = hp.reshape(taps, up).T  # coeff[p, j] = h[p + j*up]
    xpad = np.concatenate([np.zeros(taps), x, np.zeros(taps)])
    out = np.zeros(n_out)
    for j in range(taps):  # vectorised over all outputs; loop only over taps
        idx = base - j + taps
        valid = (idx >= 0) & (idx < len(xpad))
        out[valid] += coeff[phase[valid], j] * xpad[idx[valid]]
    return out.astype(np.float32)


def normalize_loudness(x, target_dbfs=-20.0, eps=1e-8):
    """Scale to `target_dbfs` RMS; the gain is lowered if peaks would clip."""
    x = np.asarray(x, dtype=np.float32)
    rms = float(np.sqrt(np.mean(np.square(x)) + eps))
    gain = 10 ** (target_dbfs / 20) / rms
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak * gain > 1.0:
        gain = 1.0 / peak
    return (x * gain).astype(np.float32)


def load_audio(path, sample_rate=None, mono=True, loudness_dbfs=None):
    """Decode + optional downmix, resample and loudness normalisation -> (x, sr)."""
    x, sr = decode_audio(path)
    if mono:
        x = to_mono(x)
    if sample_rate and sr != sample_rate:
        x, sr = resample(x, sr, sample_rate), int(sample_rate)
    if loudness_dbfs is not None:
        x = normalize_loudness(x, loudness_dbfs)
    return x, sr
