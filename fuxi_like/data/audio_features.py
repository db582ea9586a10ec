"""Log-mel spectrograms (tf.signal) with named presets, crops and SpecAugment.

Presets:
- `vggish`: 16 kHz, 25 ms periodic-Hann window (400), 10 ms hop (160), FFT 512,
  magnitude spectrogram, 64 HTK mel bands 125-7500 Hz, log(mel + 0.01), examples
  of 0.96 s (96 frames) without overlap, as in the VGGish input pipeline.
- `htsat`: 32 kHz, window 1024, hop 320, FFT 1024, power spectrogram, 64 mel bands
  50-14000 Hz, 10*log10(max(mel, 1e-10)). HTS-AT's code uses librosa's Slaney mel
  scale; `tf.signal` builds HTK-scale filters, so band edges differ slightly (a
  documented approximation).
"""

from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf

from ..errors import ConfigError, closest


@dataclass(frozen=True)
class LogMelPreset:
    sample_rate: int
    window: int
    hop: int
    fft_length: int
    n_mels: int
    fmin: float
    fmax: float
    power: float  # 1: magnitude, 2: power
    log: str  # "offset" (log(x + log_offset)) or "db" (10*log10(max(x, amin)))
    log_offset: float = 0.01
    amin: float = 1e-10
    example_seconds: float = 0.96

    @property
    def example_frames(self):
        return int(round(self.example_seconds * self.sample_rate / self.hop))

    def to_dict(self):
        return asdict(self)


PRESETS = {
    "vggish": LogMelPreset(16000, 400, 160, 512, 64, 125.0, 7500.0, 1.0, "offset", 0.01),
    "htsat": LogMelPreset(32000, 1024, 320, 1024, 64, 50.0, 14000.0, 2.0, "db"),
}


def get_preset(preset):
    if isinstance(preset, LogMelPreset):
        return preset
    if isinstance(preset, dict):
        return LogMelPreset(**preset)
    if preset not in PRESETS:

        raise ConfigError(f"unknown log-mel preset '{preset}'{closest(preset, PRESETS)}; presets: {', '.join(PRESETS)}")
    return PRESETS[preset]


def mel_matrix(p):
    return tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=p.n_mels, num_spectrogram_bins=p.fft_length // 2 + 1, sample_rate=p.sample_rate,
        lower_edge_hertz=p.fmin, upper_edge_hertz=p.fmax)


def log_mel(waveform, preset="vggish"):
    """waveform [..., samples] float32 at the preset's rate -> [..., frames, n_mels]."""
    p = get_preset(preset)
    x = tf.convert_to_tensor(waveform, tf.float32)
    stft = tf.signal.stft(x, frame_length=p.window, frame_step=p.hop, fft_length=p.fft_length,
                          window_fn=tf.signal.hann_window, pad_end=False)
    spec = tf.abs(stft)
    if p.power != 1.0:
        spec = tf.pow(spec, p.power)
    mel = tf.tensordot(spec, mel_matrix(p), 1)
    if p.log == "offset":
        return tf.math.log(mel + p.log_offset)
    return 10.0 * tf.math.log(tf.maximum(mel, p.amin)) / tf.math.log(10.0)


def frame_examples(mel, example_frames, hop_frames=None):
    """[frames, mels] -> [n_examples, example_frames, mels] (VGGish 0.96 s examples)."""
    hop_frames = hop_frames or example_frames
    return tf.signal.frame(mel, example_frames, hop_frames, axis=0)


def fix_length(x, length, mode="center", rng=None):
    """Crop or zero-pad a 1-D signal to `length` samples.

    mode: `start` (keep the beginning), `center`, or `random` (needs `rng`,
    a numpy Generator); padding is split evenly for `center`, at the end otherwise.
    """
    x = np.asarray(x)
    n = len(x)
    if n == length:
        return x
    if n > length:
        if mode == "start":
            off = 0
        elif mode == "center":
            off = (n - length) // 2
        else:
            off = int(rng.integers(0, n - length + 1))
        return x[off:off + length]
    pad = length - n
    left = pad // 2 if mode == "center" else 0
    return np.pad(x, (left, pad - left))


def random_crops(x, lengths, rng, n_per_length=1):
    """Random crops at several lengths (part-whole views of one clip).

    Returns a list of (start, crop) per requested length, each crop `fix_length`ed
    so clips shorter than a length are zero-padded.
    """
    out = []
    for length in lengths:
        for _ in range(n_per_length):
            if len(x) > length:
                start = int(rng.integers(0, len(x) - length + 1))
                out.append((start, np.asarray(x[start:start + length])))
            else:
                out.append((0, fix_length(x, length, "start")))
    return out


def spec_augment(mel, seed, freq_masks=2, freq_width=8, time_masks=2, time_width=20):
    """SpecAugment masking (Park et al., 2019) with stateless, seeded randomness.

    mel: [frames, mels]; seed: a [2] int tensor (e.g. (global_seed, example_index)).
    Masked cells are set to the spectrogram's mean.
    """
    mel = tf.convert_to_tensor(mel)
    frames, mels = tf.shape(mel)[0], tf.shape(mel)[1]
    fill = tf.reduce_mean(mel)
    keep = tf.ones_like(mel, dtype=tf.bool)
    seed = tf.cast(seed, tf.int64)

    def band(size, max_width, s):
        w = tf.random.stateless_uniform([], s, 0, max_width + 1, dtype=tf.int32)
        w = tf.minimum(w, size)
        start = tf.random.stateless_uniform([], s + 7, 0, tf.maximum(size - w, 0) + 1, dtype=tf.int32)
        r = tf.range(size)
        return (r >= start) & (r < start + w)

    for i in range(freq_masks):
        m = band(mels, freq_width, seed + [0, 1000 + i])
        keep &= ~m[tf.newaxis, :]
    for i in range(time_masks):
        m = band(frames, time_width, seed + [0, 2000 + i])
        keep &= ~m[:, tf.newaxis]
    return tf.where(keep, mel, fill)
