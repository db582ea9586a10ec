"""musicnn (Pons & Serra 2019), the MTT / MSD music auto-taggers, as a Keras `BlockEncoder` with the weights of
the authors' TF1 checkpoints.

Source: musicnn 0.1.0 (github.com/jordipons/musicnn, ISC licence, (c) Music Technology Group, Universitat Pompeu
Fabra 2019): `musicnn/models.py` (`build_musicnn`, `frontend`, `timbral_block`, `tempo_block`, `midend`,
`backend`), `musicnn/extractor.py` (`batch_data`, `extractor`), `musicnn/configuration.py` (rates, tag lists).
Weight set `musicnn` of `registry.py` (the `musicnn==0.1.0` wheel): `MTT_musicnn/` (MagnaTagATune) and
`MSD_musicnn/` (Million Song Dataset), each a TF1 checkpoint with prefix `<dir>/<model>/` (files `.index`,
`.data-00000-of-00001`, `.meta`). The VGG baselines of the same wheel (`MTT_vgg/`, `MSD_vgg/`) are not ported.

Frontend (`log_mel`, `waveform_to_patches`), the official extractor's `librosa.load` + `melspectrogram` with the
librosa 0.7 / resampy 0.2 defaults of musicnn's time (written out in NumPy: librosa is not a dependency, and
`fuxi_like.pretrained` sits below `fuxi_like.data` in the import layers, setup.cfg):

- decoded by soundfile (`read_audio`, as librosa 0.7 decodes what libsndfile reads), mono (channels averaged),
  resampled to 16 kHz by `resample`: resampy's `kaiser_best` band-limited sinc
  interpolation (64 zero crossings, Kaiser beta 14.7697, roll-off 0.9476, a 512-per-crossing table with linear
  interpolation), librosa's default `res_type`, then `fix_length` to ceil(n * 16000 / sr) samples;
- STFT: periodic Hann window of 512, FFT 512, hop 256, centred frames (reflect-padded by 256 at both ends, so
  1 + n // 256 frames), power spectrogram |X|^2;
- 96 mel bands 0-8 kHz, librosa's Slaney filterbank (`mel_filterbank`: `htk=False`, area-normalised triangles,
  librosa 0.7's `norm=1`, 0.8's `norm='slaney'`);
- log compression log10(10000 x + 1). The extractor rounds the mel spectrogram to float16 and computes this in
  float16 arithmetic (each operation rounded to float16); so does `float16=True` (the default), bit for bit,
  except where 10000 x exceeds the largest float16 (mel energy > 6.55, common in loud music below ~1.5 kHz:
  13 of the 14 `music_examples` clips): there the extractor gets inf and the TF1 network returns NaN for the
  whole patch (checked by feeding inf to the checkpoint's graph), and this port computes those entries in
  float32. `float16=False` computes everything in float32 (log-mel within 2.2e-3, per-clip mean taggrams within
  2e-4 of the float16 path on those clips);
- patches of 187 frames (3 s), one every `hop_frames` = 187 frames: the extractor's default `input_overlap=False`
  (a clip of n frames gives 1 + (n - 187) // 187 patches, the tail that does not fill a patch is dropped; clips
  shorter than 3 s have no patch: the official code fails on them, here they raise unless `pad_short=True`,
  which repeats the spectrogram up to 187 frames, the `pad_short: repeat-pad` of the checkpoints' configs).

Network (`models.py`, `build_musicnn` with num_filt 1.6, 64 mid-end filters, 200 back-end units), channels last,
input [B, T, 96] log-mel (T = 187 for the pretrained models, any T >= 1 runs):

- `frontend`: BatchNorm over the single input channel, then five parallel branches on [B, T, 96, 1], each conv
  -> ReLU -> BatchNorm -> max over the frequency axis (ReLU before BN, as in the official code): timbral 7x38 and
  7x67 (`int(0.4 * 96)`, `int(0.7 * 96)`) with 204 filters each (time zero-padded by 3, frequency "valid"),
  temporal 128x1, 64x1 and 32x1 with 51 filters each (TF "same": time zero-padded by 63/64, 31/32, 15/16);
  concatenated -> [B, T, 561] (timbral 408 + temporal 153);
- `midend_1` .. `midend_3`: 1-D conv over time, kernel 7 (zero-padded by 3), 64 filters, ReLU, BatchNorm; the
  second and third add their input (residual). Dense connections: each block returns its input with its output
  appended, [B, T, 561 + 64 k], so `midend_3` returns the official `concat([frontend, cnn1, cnn2, cnn3])`,
  [B, T, 753];
- heads (the official `backend`): max and mean over time -> `max_pool`, `mean_pool` [B, 753]; `pooled` [B, 1506]
  interleaves them as the official flatten of concat([max, mean], -1) does (max_0, mean_0, max_1, ...);
  BatchNorm, dropout 0.5, dense 200 + ReLU, BatchNorm -> `penultimate` [B, 200]; dropout 0.5, dense 50 ->
  `logits`; `taggram` = sigmoid(logits) [B, 50].

Every BatchNorm is TF1 `tf.layers.batch_normalization` (epsilon 1e-3, momentum 0.99), the Keras defaults. The
checkpoint's optimizer slots (Adam) are not read; every other variable must be used (`load_tf1_checkpoint`).

Checked (`tests/test_pretrained_music.py`, TF 2.20, CPU): against each checkpoint's own TF1 graph (its `.meta`
imported into a `tf.compat.v1.Session`, is_training fed False) on log-mel patches of real music, taggram within
4e-7 and penultimate within 4e-6 for MTT_musicnn and MSD_musicnn (block outputs and poolings to float32 rounding);
the frontend pieces against transcriptions of librosa 0.7.1's `filters.mel` (bit-identical) and resampy 0.2.2's
`resample_f` (6e-8); on the `music_examples` clips (../shared/data) a Brahms string orchestra tags classical /
violin / strings (MTT), a solo piano ragtime piano (MTT), a jazz trumpet and a jazz-sampler tune jazz (MSD).
Figures: fuxi_like/pretrained/README.md.

Example:
    >>> enc = MusicnnEncoder.from_preset("MTT_musicnn")                                # doctest: +SKIP
    >>> out = enc.encode_clips(["brahms.ogg"])                                         # doctest: +SKIP
    >>> enc.top_tags(out["taggram"][0], k=3)                                           # doctest: +SKIP
    [('classical', 0.67), ('violin', 0.53), ('strings', 0.49)]
    >>> set_trainable(enc, 1)  # fine-tune midend_3 and the back-end                   # doctest: +SKIP
    >>> h = enc.forward(patches, adapters={"frontend": BottleneckAdapter(32)})          # doctest: +SKIP
"""

import functools
import math
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from ..errors import ConfigError, DataError
from .audio import read_wav
from .blocks import BlockEncoder
from .fetch import WeightsError, weights_dir

WEIGHTS = "musicnn"
PRESETS = ("MTT_musicnn", "MSD_musicnn")
DEFAULT_PRESET = "MTT_musicnn"

# musicnn/configuration.py
SAMPLE_RATE = 16000
FFT_SIZE = 512
FFT_HOP = 256
N_MELS = 96
PATCH_FRAMES = 187  # librosa.time_to_frames(3 s) + 1
MTT_TAGS = ("guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano",
            "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing", "vocals",
            "no vocals", "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop", "soft",
            "sitar", "solo", "man", "classic", "choir", "voice", "new age", "dance", "male voice", "female vocal",
            "beats", "harp", "cello", "no voice", "weird", "country", "metal", "female voice", "choral")
MSD_TAGS = ("rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
            "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul",
            "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies",
            "blues", "hard rock", "ambient", "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop",
            "70s", "party", "country", "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal",
            "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy")
TAGS = {"MTT": MTT_TAGS, "MSD": MSD_TAGS}

# models.py: build_musicnn(num_filt_frontend=1.6, num_filt_midend=64, num_units_backend=200)
TIMBRAL_FILTERS = int(1.6 * 128)  # 204
TEMPORAL_FILTERS = int(1.6 * 32)  # 51
TIMBRAL_TIME = 7
TIMBRAL_HEIGHTS = (0.4, 0.7)  # x n_mels
TEMPORAL_LENGTHS = (128, 64, 32)
MIDEND_FILTERS = 64
MIDEND_KERNEL = 7
BACKEND_UNITS = 200
DROPOUT = 0.5

# resampy 0.2's precomputed `kaiser_best` filter (resampy/data/kaiser_best.npz, librosa 0.7's default res_type):
# Kaiser-windowed sinc, right wing only, `2**precision` table entries per zero crossing. Recomputed here with
# np.kaiser; it equals the shipped table to 2e-16.
_KAISER_BEST = {"num_zeros": 64, "precision": 9, "beta": 14.769656459379492, "rolloff": 0.9475937167399596}


# --------------------------------------------------------------------------------------------------- frontend
def hz_to_mel(hz):
    """Slaney's mel scale (librosa `hz_to_mel(htk=False)`, same float expressions): linear 200/3 Hz per mel
    below 1 kHz, logarithmic above (27 mels per factor 6.4)."""
    hz = np.asarray(hz, np.float64)
    f_sp, log_step = 200.0 / 3, np.log(6.4) / 27.0
    log = 1000.0 / f_sp + np.log(np.maximum(hz, 1000.0) / 1000.0) / log_step
    return np.where(hz >= 1000.0, log, hz / f_sp)


def mel_to_hz(mel):
    """The inverse of `hz_to_mel` (librosa `mel_to_hz(htk=False)`)."""
    mel = np.asarray(mel, np.float64)
    f_sp, log_step = 200.0 / 3, np.log(6.4) / 27.0
    min_log_mel = 1000.0 / f_sp
    return np.where(mel >= min_log_mel, 1000.0 * np.exp(log_step * (mel - min_log_mel)), f_sp * mel)


@functools.lru_cache(maxsize=8)
def mel_filterbank(sr=SAMPLE_RATE, n_fft=FFT_SIZE, n_mels=N_MELS, fmin=0.0, fmax=None):
    """librosa's Slaney mel filterbank `librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax)` (htk=False, area
    normalisation; librosa 0.7 `filters.py`): [n_mels, 1 + n_fft // 2] float32.

    Band edges: n_mels + 2 points equally spaced on the Slaney mel scale between fmin and fmax (default sr / 2);
    band i is the triangle rising from edge i to edge i + 1 and falling to edge i + 2, over the FFT bin
    frequencies linspace(0, sr / 2, 1 + n_fft // 2), scaled by 2 / (edge[i + 2] - edge[i]) (unit area in Hz).
    Read-only (cached): copy before modifying.
    """
    fmax = sr / 2.0 if fmax is None else float(fmax)
    fft_hz = np.linspace(0.0, sr / 2.0, 1 + n_fft // 2)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    triangles = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)  # librosa fills a float32 array
    weights = (triangles * (2.0 / (edges[2:] - edges[:-2]))[:, None]).astype(np.float32)
    weights.setflags(write=False)
    return weights


@functools.lru_cache(maxsize=1)
def _kaiser_best_table():
    p = _KAISER_BEST
    per_zero = 2 ** p["precision"]
    n = per_zero * p["num_zeros"]
    sinc = p["rolloff"] * np.sinc(p["rolloff"] * np.linspace(0.0, p["num_zeros"], n + 1))
    return np.kaiser(2 * n + 1, p["beta"])[n:] * sinc, per_zero


def _resampy_kernel(win, delta, per_zero, step, scale, frac, left, right):
    """resampy's weights for an output at input time n + frac/scale: kernel[left - 1 - i] on x[n - i] (left wing),
    kernel[left + k] on x[n + 1 + k] (right wing), read off the table with linear interpolation."""
    kernel = np.zeros(left + right)
    for wing, f in (("left", frac), ("right", scale - frac)):
        index = f * per_zero
        offset = int(index)
        taps = offset + np.arange((len(win) - offset) // step) * step
        w = win[taps] + (index - offset) * delta[taps]
        if wing == "left":
            kernel[left - 1 - np.arange(len(w))] = w
        else:
            kernel[left:left + len(w)] = w
    return kernel


def resample(waveform, orig_sr, target_sr=SAMPLE_RATE):
    """Resample a 1-D waveform as `librosa.resample(y, orig_sr, target_sr)` does by default (librosa 0.7:
    resampy 0.2 `kaiser_best`, then zero-padded to ceil(n * target_sr / orig_sr) samples).

    resampy's interpolation (`interpn.resample_f`), written as a polyphase filter: output sample t sits at input
    time t * orig_sr / target_sr = n + f; it sums x[n - i] and x[n + 1 + k] weighted by the filter table read at
    (f + i) and (1 - f + k) zero crossings (scaled by target_sr / orig_sr when downsampling), with linear
    interpolation between table entries, and zeros outside the signal. The weights depend on f only, i.e. on t
    modulo target_sr / gcd, so each phase is one strided matrix product. resampy accumulates the input time by
    repeated float addition, which puts some outputs at exactly integer times on n - 1 + (f close to 1) instead
    (a different split of its truncated table steps, up to 4e-4 apart): those outputs are recomputed with the
    accumulated time, so this matches resampy 0.2.2 to float32 rounding (6e-8; checked against a line-by-line
    transcription of `resample_f` on resampy 0.2.2's shipped `kaiser_best.npz`, 22.05 / 44.1 / 48 / 8 kHz to
    16 kHz; tests/test_pretrained_music.py repeats it on the recomputed table).

    Args:
        waveform: [samples] float.
        orig_sr, target_sr: integer sample rates.

    Returns:
        [ceil(samples * target_sr / orig_sr)] float32.
    """
    x = np.asarray(waveform, np.float64)
    if x.ndim != 1:
        raise ConfigError(f"resample takes a 1-D waveform, got shape {x.shape}")
    if int(orig_sr) != orig_sr or int(target_sr) != target_sr or orig_sr <= 0 or target_sr <= 0:
        raise ConfigError(f"resample needs positive integer sample rates, got {orig_sr} -> {target_sr}")
    orig_sr, target_sr = int(orig_sr), int(target_sr)
    if orig_sr == target_sr:
        return x.astype(np.float32)
    ratio = target_sr / orig_sr
    n_out = int(len(x) * ratio)  # resampy's output length; librosa pads it to the ceiling below
    if n_out < 1:
        raise ConfigError(f"resample: {len(x)} samples are too few to resample from {orig_sr} to {target_sr} Hz")
    out = np.zeros(int(np.ceil(len(x) * ratio)), np.float64)
    win, per_zero = _kaiser_best_table()
    scale = min(1.0, ratio)
    if ratio < 1:
        win = win * ratio
    delta = np.append(np.diff(win), 0.0)
    step = int(scale * per_zero)
    left = right = len(win) // step + 1  # taps per wing, an upper bound over all phases
    xpad = np.concatenate([np.zeros(left), x, np.zeros(right + 1)])
    windows = np.lib.stride_tricks.sliding_window_view(xpad, left + right)  # row n + 1: taps around x[n]
    kernel = functools.partial(_resampy_kernel, win, delta, per_zero, step, scale, left=left, right=right)
    g = math.gcd(orig_sr, target_sr)
    up, down = target_sr // g, orig_sr // g
    for phase in range(min(up, n_out)):
        n0, rem = divmod(phase * down, up)
        count = len(range(phase, n_out, up))
        out[phase:n_out:up] = windows[n0 + 1::down][:count] @ kernel(scale * rem / up)
    # resampy's accumulated time register: where it falls below an integer time, redo that output its way
    register = np.concatenate([[0.0], np.cumsum(np.full(n_out - 1, 1.0 / ratio))])
    base = np.floor(register).astype(np.int64)
    for t in np.flatnonzero(base != np.arange(n_out, dtype=np.int64) * down // up):
        out[t] = windows[base[t] + 1] @ kernel(scale * (register[t] - base[t]))
    return out.astype(np.float32)


def log_mel(waveform, sr=SAMPLE_RATE, float16=True):
    """A mono waveform -> musicnn's log-mel spectrogram [frames, 96] float32 (module docstring, "Frontend").

    Args:
        waveform: [samples] float in [-1, 1] (int16 samples are scaled by 1/32768) at `sr`.
        sr: its sample rate; anything but 16 kHz is resampled first (`resample`).
        float16: round the mel energies to float16 and compute the log in float16 arithmetic, as the official
            extractor does (except where 10000 x overflows float16, see the module docstring); False computes
            log10(10000 x + 1) in float32.
    """
    x = np.asarray(waveform)
    if x.ndim != 1:
        raise ConfigError(f"log_mel takes a 1-D mono waveform, got shape {x.shape} (downmix channels first, "
                          f"e.g. x.mean(axis=1))")
    x = x / 32768.0 if x.dtype == np.int16 else x
    x = resample(x, sr, SAMPLE_RATE) if int(sr) != SAMPLE_RATE else x.astype(np.float32)
    if len(x) <= FFT_SIZE // 2:
        raise DataError(f"log_mel: {len(x)} samples at {SAMPLE_RATE} Hz are too few for a reflect-padded STFT")
    padded = np.pad(x.astype(np.float64), FFT_SIZE // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, FFT_SIZE)[::FFT_HOP]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(FFT_SIZE) / FFT_SIZE)  # periodic Hann
    spectrum = np.fft.rfft(frames * window, axis=1).astype(np.complex64)  # librosa's stft dtype
    power = np.abs(spectrum) ** 2
    mel = power @ mel_filterbank().T
    if not float16:
        return np.log10(10000.0 * mel + 1.0).astype(np.float32)
    # the extractor: np.log10(10000 * mel.astype(np.float16) + 1), each float16 operation computed in float32 and
    # rounded to float16 (NumPy's half loops); where 10000 x overflows float16 it stays float32 here (not inf)
    x16 = mel.astype(np.float16).astype(np.float32)
    scaled = 10000.0 * x16
    fits = scaled < _FLOAT16_OVERFLOW
    scaled = np.where(fits, _round16(scaled), scaled)
    shifted = np.where(fits, _round16(scaled + 1.0), scaled + 1.0)
    return _round16(np.log10(shifted))


_FLOAT16_OVERFLOW = 65520.0  # float32 values from here up round to inf in float16


def _round16(x):
    """float32 -> nearest float16 -> float32, for values below `_FLOAT16_OVERFLOW` (clipped to stay finite)."""
    return np.minimum(x, np.finfo(np.float16).max).astype(np.float16).astype(np.float32)


def frame_patches(spectrogram, n_frames=PATCH_FRAMES, hop_frames=PATCH_FRAMES, pad_short=False):
    """Cut a spectrogram [frames, n_mels] into patches [n, n_frames, n_mels] starting every `hop_frames` frames
    (the extractor's `batch_data`: the tail that does not fill a patch is dropped). A spectrogram shorter than
    one patch raises DataError, or with `pad_short` is repeated up to `n_frames` (one patch)."""
    s = np.asarray(spectrogram, np.float32)
    if len(s) < n_frames:
        if not pad_short or len(s) == 0:
            raise DataError(f"{len(s)} frames are fewer than one patch of {n_frames} "
                            f"({n_frames * FFT_HOP / SAMPLE_RATE:.2f} s); pass pad_short=True to repeat the clip")
        s = np.tile(s, (-(-n_frames // len(s)), 1))[:n_frames]
    starts = range(0, len(s) - n_frames + 1, int(hop_frames))
    return np.stack([s[i:i + n_frames] for i in starts])


def waveform_to_patches(waveform, sr=SAMPLE_RATE, hop_frames=PATCH_FRAMES, pad_short=False, float16=True):
    """A mono waveform -> musicnn's input patches [n, 187, 96] float32 (`log_mel` then `frame_patches`).

    Args:
        waveform: [samples] float (or int16) at `sr`; resampled to 16 kHz when `sr` differs.
        sr: its sample rate.
        hop_frames: frames between patch starts; 187 (no overlap) is the extractor's default. Its
            `input_overlap` of s seconds is floor((16000 s - 256) / 256) frames (`librosa.time_to_frames`).
        pad_short: repeat a clip shorter than 3 s up to one patch instead of raising DataError.
        float16: as `log_mel`.
    """
    return frame_patches(log_mel(waveform, sr, float16), PATCH_FRAMES, hop_frames, pad_short)


def read_audio(path):
    """A mono float32 waveform (channels averaged) and its sample rate, from any file soundfile reads (the reader of
    `audio.py`, shared)."""
    return read_wav(path)


# --------------------------------------------------------------------------------------------------- network
@keras.saving.register_keras_serializable(package="fuxi_like")
class FrequencyMaxConv(keras.layers.Layer):
    """One branch of musicnn's frontend (`timbral_block` / `tempo_block`): time zero-padding, a "valid" conv2d +
    ReLU, BatchNorm, then the max over the whole frequency axis: [B, T, F, C] -> [B, T', filters].

    Args:
        filters: conv filters.
        kernel_size: (time, frequency) extent.
        time_padding: (before, after) zero frames; (k - 1) // 2 and k // 2 for TF "same" on a k-frame kernel.
    """

    def __init__(self, filters, kernel_size, time_padding=(0, 0), **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = tuple(int(k) for k in kernel_size)
        self.time_padding = tuple(int(p) for p in time_padding)
        self.pad = keras.layers.ZeroPadding2D((self.time_padding, (0, 0)), name="pad")
        self.conv = keras.layers.Conv2D(self.filters, self.kernel_size, activation="relu", name="conv")
        self.bn = keras.layers.BatchNormalization(epsilon=1e-3, momentum=0.99, name="bn")

    def build(self, input_shape):
        shape = self.pad.compute_output_shape(tuple(input_shape))
        self.conv.build(shape)
        self.bn.build(self.conv.compute_output_shape(shape))

    def call(self, x, training=None):
        h = self.bn(self.conv(self.pad(x)), training=training)
        return ops.max(h, axis=2)

    def compute_output_shape(self, input_shape):
        shape = self.conv.compute_output_shape(self.pad.compute_output_shape(tuple(input_shape)))
        return (shape[0], shape[1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "time_padding": self.time_padding}


def _same_padding(k):
    return ((k - 1) // 2, k // 2)  # TF "same" for stride 1: the extra frame of an even kernel goes after


@keras.saving.register_keras_serializable(package="fuxi_like")
class MusicnnFrontend(keras.layers.Layer):
    """musicnn's musically motivated frontend: log-mel [B, T, n_mels] (or [B, T, n_mels, 1]) -> [B, T, 2 * timbral
    + 3 * temporal] (561 for the pretrained models): input BatchNorm, then the timbral 7 x int(0.4 n_mels) and
    7 x int(0.7 n_mels) branches and the temporal 128 / 64 / 32 x 1 branches (`FrequencyMaxConv`), concatenated
    in that order (the official `frontend_features_list`).

    Args:
        n_mels: mel bands of the input.
        timbral_filters: filters of each timbral branch (int(1.6 * 128) = 204).
        temporal_filters: filters of each temporal branch (int(1.6 * 32) = 51).
    """

    def __init__(self, n_mels=N_MELS, timbral_filters=TIMBRAL_FILTERS, temporal_filters=TEMPORAL_FILTERS, **kwargs):
        super().__init__(**kwargs)
        self.n_mels = int(n_mels)
        self.timbral_filters, self.temporal_filters = int(timbral_filters), int(temporal_filters)
        self.input_bn = keras.layers.BatchNormalization(epsilon=1e-3, momentum=0.99, name="input_bn")
        self.branches = [
            FrequencyMaxConv(self.timbral_filters, (TIMBRAL_TIME, int(h * self.n_mels)), _same_padding(TIMBRAL_TIME),
                             name=f"timbral_{TIMBRAL_TIME}x{int(h * self.n_mels)}") for h in TIMBRAL_HEIGHTS
        ] + [FrequencyMaxConv(self.temporal_filters, (k, 1), _same_padding(k), name=f"temporal_{k}x1")
             for k in TEMPORAL_LENGTHS]

    @property
    def dim(self):
        return 2 * self.timbral_filters + len(TEMPORAL_LENGTHS) * self.temporal_filters

    def _image_shape(self, input_shape):
        shape = tuple(input_shape)
        return shape if len(shape) == 4 else (*shape, 1)

    def build(self, input_shape):
        shape = self._image_shape(input_shape)
        if shape[2] != self.n_mels or shape[3] != 1:
            raise ConfigError(f"{self.name}: input [B, T, {self.n_mels}] or [B, T, {self.n_mels}, 1] log-mel "
                              f"patches expected, got {tuple(input_shape)}")
        self.input_bn.build(shape)
        for branch in self.branches:
            branch.build(shape)

    def call(self, x, training=None):
        if len(x.shape) == 3:
            x = ops.expand_dims(x, -1)
        x = self.input_bn(x, training=training)
        return ops.concatenate([branch(x, training=training) for branch in self.branches], axis=-1)

    def compute_output_shape(self, input_shape):
        shape = self._image_shape(input_shape)
        return (shape[0], shape[1], self.dim)

    def get_config(self):
        return {**super().get_config(), "n_mels": self.n_mels, "timbral_filters": self.timbral_filters,
                "temporal_filters": self.temporal_filters}


@keras.saving.register_keras_serializable(package="fuxi_like")
class MusicnnMidend(keras.layers.Layer):
    """One dense mid-end layer of musicnn (`midend`): [B, T, C] -> [B, T, C + filters], the input with this
    layer's output appended (dense connections). The output is BatchNorm(ReLU(conv1d(h))), kernel 7 over time
    (zero-padded by 3), where h is the whole input (`residual=False`, the first layer) or its last `filters`
    channels, the previous layer's output, which is then added to it (`residual=True`).

    Args:
        filters: conv filters (64).
        residual: add the previous mid-end layer's output (the last `filters` input channels).
    """

    def __init__(self, filters=MIDEND_FILTERS, residual=False, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.residual = int(filters), bool(residual)
        pad = MIDEND_KERNEL // 2
        self.pad = keras.layers.ZeroPadding1D((pad, pad), name="pad")
        self.conv = keras.layers.Conv1D(self.filters, MIDEND_KERNEL, activation="relu", name="conv")
        self.bn = keras.layers.BatchNormalization(epsilon=1e-3, momentum=0.99, name="bn")

    def build(self, input_shape):
        shape = tuple(input_shape)
        if self.residual and shape[-1] < self.filters:
            raise ConfigError(f"{self.name}: a residual mid-end layer needs >= {self.filters} input channels, "
                              f"got {shape}")
        channels = self.filters if self.residual else shape[-1]
        padded = self.pad.compute_output_shape((shape[0], shape[1], channels))
        self.conv.build(padded)
        self.bn.build(self.conv.compute_output_shape(padded))

    def call(self, x, training=None):
        h = x[..., -self.filters:] if self.residual else x
        y = self.bn(self.conv(self.pad(h)), training=training)
        return ops.concatenate([x, y + h if self.residual else y], axis=-1)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        return (*shape[:-1], shape[-1] + self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "residual": self.residual}


@keras.saving.register_keras_serializable(package="fuxi_like")
class MusicnnEncoder(BlockEncoder):
    """musicnn: log-mel patches [B, T, 96] (T = 187 for 3 s; [B, T, 96, 1] also taken) -> dict of
    `max_pool`, `mean_pool` [B, 753] (temporal max / mean of the dense mid-end features), `pooled` [B, 1506]
    (the two interleaved, as the back-end reads them), `penultimate` [B, 200], `logits` [B, 50] and
    `taggram` [B, 50] (sigmoid: the tag probabilities).

    Blocks `frontend` ([B, T, 561]), `midend_1` .. `midend_3` ([B, T, 625 / 689 / 753]; see the module
    docstring); heads: the back-end (pooling, `pooled_bn`, `penultimate_dense`, `penultimate_bn`, `classifier`).
    Build it with `MusicnnEncoder.from_preset("MTT_musicnn" | "MSD_musicnn")`; the constructor alone gives a
    randomly initialised network. `features(x)` gives the official extractor's named features.

    Freezing: `set_trainable(encoder, n)` (blocks.py) trains the top n of the 4 blocks and the back-end. A frozen
    block runs its BatchNorm in inference mode even when the model trains; a fully frozen encoder also turns its
    dropout off (a deterministic feature extractor).

    Args:
        tags: names of the taggram's outputs (`top_tags`); default "tag_<i>".
        num_tags: classifier outputs (50).
        n_mels, timbral_filters, temporal_filters: as `MusicnnFrontend`.
        midend_filters: filters of each mid-end layer (64; `MSD_musicnn_big`, not shipped, has 512).
        backend_units: width of `penultimate` (200; `MSD_musicnn_big`: 500).
        dropout: the back-end's two dropout rates (0.5), active only while training.
    """

    def __init__(self, tags=None, num_tags=50, n_mels=N_MELS, timbral_filters=TIMBRAL_FILTERS,
                 temporal_filters=TEMPORAL_FILTERS, midend_filters=MIDEND_FILTERS, backend_units=BACKEND_UNITS,
                 dropout=DROPOUT, **kwargs):
        kwargs.setdefault("name", "musicnn")
        super().__init__(**kwargs)
        self.num_tags = int(num_tags)
        if tags is not None and len(tags) != self.num_tags:
            raise ConfigError(f"MusicnnEncoder: {len(tags)} tag names for {self.num_tags} tags")
        self.tags = list(tags) if tags is not None else [f"tag_{i}" for i in range(self.num_tags)]
        self.n_mels, self.midend_filters, self.backend_units = int(n_mels), int(midend_filters), int(backend_units)
        self.dropout_rate = float(dropout)
        self.frontend = MusicnnFrontend(n_mels, timbral_filters, temporal_filters, name="frontend")
        self.blocks = [self.frontend] + [MusicnnMidend(self.midend_filters, residual=i > 1, name=f"midend_{i}")
                                         for i in (1, 2, 3)]
        bn = functools.partial(keras.layers.BatchNormalization, epsilon=1e-3, momentum=0.99)
        self.pooled_bn = bn(name="pooled_bn")
        self.pooled_dropout = keras.layers.Dropout(self.dropout_rate, name="pooled_dropout")
        self.penultimate_dense = keras.layers.Dense(self.backend_units, activation="relu", name="penultimate_dense")
        self.penultimate_bn = bn(name="penultimate_bn")
        self.penultimate_dropout = keras.layers.Dropout(self.dropout_rate, name="penultimate_dropout")
        self.classifier = keras.layers.Dense(self.num_tags, name="classifier")

    @property
    def dim(self):
        """Channels of the mid-end's output, the width of `max_pool` / `mean_pool` (753)."""
        return self.frontend.dim + 3 * self.midend_filters

    def build(self, input_shape=(None, PATCH_FRAMES, N_MELS)):
        shape = tuple(input_shape)
        for block in self.blocks:
            block.build(shape)
            shape = block.compute_output_shape(shape)
        self.pooled_bn.build((shape[0], 2 * shape[-1]))
        self.penultimate_dense.build((shape[0], 2 * shape[-1]))
        self.penultimate_bn.build((shape[0], self.backend_units))
        self.classifier.build((shape[0], self.backend_units))

    # -------------------------------------------------------------------------------------------- forward
    def heads(self, h, training=None):
        """The official `backend` on the mid-end's features h [B, T, 753]."""
        if not self.trainable_weights:  # frozen: a feature extractor, dropout off
            training = False
        max_pool, mean_pool = ops.max(h, axis=1), ops.mean(h, axis=1)
        pooled = ops.reshape(ops.stack([max_pool, mean_pool], axis=-1), (-1, 2 * h.shape[-1]))
        x = self.pooled_dropout(self.pooled_bn(pooled, training=training), training=training)
        penultimate = self.penultimate_bn(self.penultimate_dense(x), training=training)
        logits = self.classifier(self.penultimate_dropout(penultimate, training=training))
        return {"max_pool": max_pool, "mean_pool": mean_pool, "pooled": pooled, "penultimate": penultimate,
                "logits": logits, "taggram": ops.sigmoid(logits)}

    def compute_output_shape(self, input_shape):
        b = input_shape[0]
        return {"max_pool": (b, self.dim), "mean_pool": (b, self.dim), "pooled": (b, 2 * self.dim),
                "penultimate": (b, self.backend_units), "logits": (b, self.num_tags), "taggram": (b, self.num_tags)}

    def features(self, x, training=False):
        """The official extractor's features of patches x [B, T, 96]: `timbral` [B, T, 408], `temporal`
        [B, T, 153], `cnn1` .. `cnn3` [B, T, 64] (the mid-end layers' outputs, residuals included), `mean_pool`,
        `max_pool` [B, 753], `penultimate` [B, 200] and `taggram` [B, 50]."""
        h = self.forward(x, training=training)
        out = self.heads(h, training=training)
        timbral = 2 * self.frontend.timbral_filters
        front, f = self.frontend.dim, self.midend_filters
        return {"timbral": h[..., :timbral], "temporal": h[..., timbral:front],
                **{f"cnn{i}": h[..., front + (i - 1) * f:front + i * f] for i in (1, 2, 3)},
                **{k: out[k] for k in ("mean_pool", "max_pool", "penultimate", "taggram")}}

    # ------------------------------------------------------------------------------------------- building
    @classmethod
    def from_preset(cls, preset=DEFAULT_PRESET, cache_dir=None, local_dir=None, **kwargs):
        """musicnn with the authors' weights and tag names.

        Args:
            preset: `MTT_musicnn` (MagnaTagATune tags) or `MSD_musicnn` (Million Song Dataset tags), read from the
                weight set `musicnn` (fetched into the cache on first use).
            cache_dir: weights cache root (`fuxi_like.pretrained.weights_dir`).
            local_dir: a directory standing in for the weight set (its layout: `MTT_musicnn/.index`, ...; else
                `$FUXI_LIKE_WEIGHTS_MUSICNN`).
            kwargs: constructor arguments (e.g. `dropout`, `name`).
        """
        if preset not in PRESETS:
            raise ConfigError(f"musicnn preset {preset!r} unknown; presets: {', '.join(PRESETS)}"
                              + ("" if "vgg" not in str(preset) else " (the VGG baselines are not ported)"))
        prefix = checkpoint_prefix(preset, cache_dir, local_dir)
        encoder = cls(tags=TAGS[preset[:3]], **kwargs)
        encoder.build((None, PATCH_FRAMES, N_MELS))
        load_tf1_checkpoint(encoder, prefix)
        return encoder

    # ------------------------------------------------------------------------------------------ inference
    def top_tags(self, taggram, k=5):
        """The `k` best (tag, probability) pairs of one taggram row [num_tags], best first; for [N, num_tags],
        one such list per row."""
        s = np.asarray(taggram)
        if s.ndim == 2:
            return [self.top_tags(row, k) for row in s]
        if s.shape != (self.num_tags,):
            raise ConfigError(f"top_tags: taggram of shape {s.shape}, expected ({self.num_tags},) or "
                              f"(N, {self.num_tags})")
        best = np.argsort(-s, kind="stable")[:int(k)]
        return [(self.tags[i], float(s[i])) for i in best]

    def encode_clips(self, clips, sr=SAMPLE_RATE, batch_size=32, hop_frames=PATCH_FRAMES, pad_short=False,
                     outputs=("taggram", "penultimate", "max_pool", "mean_pool")):
        """Per-clip outputs, each the mean over the clip's patches (the official `tagger.top_tags` averages the
        taggram so).

        Args:
            clips: waveforms (1-D, at `sr`) and/or paths of audio files (`read_audio`; any rate, resampled).
            sr: the sample rate of the waveforms given as arrays.
            batch_size: patches per forward pass.
            hop_frames, pad_short: as `waveform_to_patches` (defaults: the extractor's non-overlapping patches;
                a clip under 3 s raises DataError).
            outputs: which of the encoder's outputs to return.

        Returns:
            {output: [N, dim] float32 for each of `outputs`, "patches": [N] number of patches per clip} (NumPy).
        """
        patches = [waveform_to_patches(*(read_audio(c) if isinstance(c, (str, os.PathLike)) else (c, sr)),
                                       hop_frames=hop_frames, pad_short=pad_short) for c in clips]
        counts = np.array([len(p) for p in patches], np.int64)
        if not patches:
            shapes = self.compute_output_shape((0, PATCH_FRAMES, self.n_mels))
            return {k: np.zeros((0, shapes[k][1]), np.float32) for k in outputs} | {"patches": counts}
        x = np.concatenate(patches)
        parts = {k: [] for k in outputs}
        for start in range(0, len(x), int(batch_size)):
            y = self.predict_on_batch(x[start:start + int(batch_size)])
            for k in outputs:
                parts[k].append(np.asarray(y[k]))
        bounds = np.cumsum(counts)[:-1]
        return {k: np.stack([p.mean(axis=0) for p in np.split(np.concatenate(v), bounds)])
                for k, v in parts.items()} | {"patches": counts}

    def tag_clips(self, clips, sr=SAMPLE_RATE, k=5, batch_size=32):
        """The `k` best (tag, probability) pairs of each clip's mean taggram (the official `top_tags`)."""
        return self.top_tags(self.encode_clips(clips, sr, batch_size, outputs=("taggram",))["taggram"], k)

    # --------------------------------------------------------------------------------------------- config
    def get_config(self):
        return {**super().get_config(), "tags": self.tags, "num_tags": self.num_tags, "n_mels": self.n_mels,
                "timbral_filters": self.frontend.timbral_filters, "temporal_filters": self.frontend.temporal_filters,
                "midend_filters": self.midend_filters, "backend_units": self.backend_units,
                "dropout": self.dropout_rate}


# ------------------------------------------------------------------------------------------ the TF1 checkpoint
def checkpoint_prefix(preset=DEFAULT_PRESET, cache_dir=None, local_dir=None):
    """The TF1 checkpoint prefix of a musicnn model in the weight set: `<dir>/<preset>/` (the files are
    `<dir>/<preset>/.index` etc.; the trailing "/" is part of the prefix)."""
    d = Path(weights_dir(WEIGHTS, cache_dir, local_dir)) / preset
    if not (d / ".index").is_file():
        raise WeightsError(f"{d}: no TF1 checkpoint ('.index', '.data-00000-of-00001') for musicnn model {preset}")
    return f"{d}/"


def tf1_variable_map(encoder):
    """[(Keras weight, TF1 checkpoint variable name)] of a `MusicnnEncoder`: the official graph creates its
    layers in the order frontend input BN, timbral 7x38, timbral 7x67, temporal 128 / 64 / 32, the three mid-end
    layers, the back-end BN, dense, BN, dense; `tf.layers` numbers them conv2d, conv2d_1, ..., batch_normalization,
    batch_normalization_1, ..., dense, dense_1."""
    convs = [*encoder.frontend.branches, *encoder.blocks[1:]]
    bns = [encoder.frontend.input_bn, *[layer.bn for layer in convs], encoder.pooled_bn, encoder.penultimate_bn]
    dense = [encoder.penultimate_dense, encoder.classifier]
    pairs = []
    for i, layer in enumerate(convs):
        scope = "conv2d" + (f"_{i}" if i else "")
        pairs += [(layer.conv.kernel, f"{scope}/kernel"), (layer.conv.bias, f"{scope}/bias")]
    for i, bn in enumerate(bns):
        scope = "batch_normalization" + (f"_{i}" if i else "")
        pairs += [(getattr(bn, w), f"{scope}/{w}") for w in ("gamma", "beta", "moving_mean", "moving_variance")]
    for i, layer in enumerate(dense):
        scope = "dense" + (f"_{i}" if i else "")
        pairs += [(layer.kernel, f"{scope}/kernel"), (layer.bias, f"{scope}/bias")]
    return pairs


def load_tf1_checkpoint(encoder, prefix):
    """Copy a musicnn TF1 checkpoint (`tf.train.Saver` prefix, e.g. `checkpoint_prefix("MTT_musicnn")`) into a
    built `MusicnnEncoder`. The mid-end's conv2d kernels [7, C, 1, 64] become Conv1D kernels [7, C, 64]; every
    other variable keeps its shape. Raises WeightsError if a variable is missing or of another shape, or if a
    model variable of the checkpoint (Adam slots and beta powers aside) is left unused."""
    try:
        reader = tf.compat.v1.train.NewCheckpointReader(str(prefix))
    except Exception as e:  # noqa: BLE001 - a missing / corrupt checkpoint becomes one named error
        raise WeightsError(f"cannot read the TF1 checkpoint {prefix}: {type(e).__name__}: {e}") from None
    shapes = reader.get_variable_to_shape_map()
    used = set()
    for variable, name in tf1_variable_map(encoder):
        if name not in shapes:
            raise WeightsError(f"{prefix}: no variable {name} (for {variable.path}); is it a musicnn checkpoint?")
        value = reader.get_tensor(name)
        if value.ndim == 4 and len(variable.shape) == 3:  # mid-end conv2d over the whole channel axis -> Conv1D
            value = value[:, :, 0, :]
        if tuple(value.shape) != tuple(variable.shape):
            raise WeightsError(f"{prefix}: {name} has shape {tuple(value.shape)}, {variable.path} needs "
                               f"{tuple(variable.shape)}")
        variable.assign(value)
        used.add(name)
    left = sorted(n for n in shapes if n not in used and not n.endswith(("/Adam", "/Adam_1"))
                  and n not in ("beta1_power", "beta2_power"))
    if left:
        raise WeightsError(f"{prefix}: checkpoint variables not used by {encoder.name}: {', '.join(left)}")
    return sorted(used)
