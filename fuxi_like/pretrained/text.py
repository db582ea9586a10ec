"""Sentence embeddings from a BERT-family preset (default all-MiniLM-L6-v2), as sentence-transformers computes them.

The pipeline of sentence-transformers' `all-MiniLM-L6-v2` (its `modules.json`: Transformer -> Pooling(mean) ->
Normalize), in the keras-hub split:

- preprocessor: keras_hub `BertTextClassifierPreprocessor` = WordPiece `BertTokenizer` and packing
  `[CLS] tokens [SEP]`, truncated and padded to `sequence_length` (default 128 word pieces; sentence-transformers
  truncates this model at 256, `sentence_bert_config.json`, but it was trained on 128). For an HF-layout preset
  whose `tokenizer_config.json` says `do_lower_case`, the text is normalised as HF's BertNormalizer does before
  the tokenizer: Unicode spaces -> " ", Unicode lower-casing, accents stripped (`SentenceEncoder.preprocess`).
  Deviation fixed here: keras-hub's converter lower-cases by NFKC case folding and keeps accents, which rewrites
  "…", "™", "½" and maps "héllo" to [UNK]; it tokenised 24 of the 4385 Amazon Scientific item texts unlike
  the HF tokenizer, this normalisation none.
- backbone: keras_hub `BertBackbone` (blocks named `token_embedding`, ..., `embeddings_layer_norm`,
  `transformer_layer_0` .. `transformer_layer_{L-1}`, `pooled_dense`), loaded from the preset directory: the
  cached `all-minilm-l6-v2` weight set (HF safetensors + config.json + vocab.txt, converted by keras-hub on load)
  or any BERT preset a user brings (HF layout or a keras-hub preset saved with `save_to_preset`).
- head: mean of the last hidden states over the non-padding tokens (`MeanPooling`), then L2 normalisation
  (`torch.nn.functional.normalize`, eps 1e-12). The `[CLS]` pooler (`pooled_dense`) is not used.

keras-hub, tensorflow-text and safetensors are the optional extra `text` (`pip install "fuxi_like[text]"`);
they are imported only when an encoder is built, and a missing one raises `MissingExtraError` naming the extra.

Example:
    >>> enc = SentenceEncoder.from_preset("all-minilm-l6-v2")              # doctest: +SKIP
    >>> e = enc.encode_texts(["A man is eating food."], verbose=True)    # doctest: +SKIP  [1, 384], unit norm
    >>> set_trainable(enc, last_n_layers=2)  # fine-tune transformer_layer_4 and _5 only   # doctest: +SKIP
"""

import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops
from tqdm.auto import tqdm

from ..errors import ConfigError
from . import registry
from .fetch import check_standin, weights_dir

DEFAULT_PRESET = "all-minilm-l6-v2"
EXTRA = "text"
_INPUTS = ("token_ids", "segment_ids", "padding_mask")


class MissingExtraError(ImportError):
    """An optional dependency of the text encoders (the `text` extra) is not installed."""


def require_keras_hub():
    """keras_hub, after checking that the `text` extra (keras-hub, tensorflow-text, safetensors) is installed."""
    missing = []
    try:
        import keras_hub  # lazy: optional extra `text`; the core does not depend on keras-hub
    except ImportError:
        missing.append("keras-hub")
    try:
        import tensorflow_text  # noqa: F401  lazy: optional extra `text`; keras-hub's WordPiece tokenizer runs on it
    except ImportError:
        missing.append("tensorflow-text")
    try:
        import safetensors  # noqa: F401  lazy: optional extra `text`; keras-hub reads HF presets' weights with it
    except ImportError:
        missing.append("safetensors")
    if missing:
        raise MissingExtraError(f"the text encoders need {', '.join(missing)}: pip install \"fuxi_like[{EXTRA}]\" "
                                f"(keras-hub, tensorflow-text~=2.20.0, safetensors)")
    return keras_hub


def resolve_preset(preset=DEFAULT_PRESET, cache_dir=None, local_dir=None):
    """The directory of `preset`: a registry name (fetched into the cache, or `local_dir` / its environment
    variable standing in) or a directory path, which must hold config.json, weights and a vocabulary."""
    if str(preset) == DEFAULT_PRESET:
        return Path(weights_dir(DEFAULT_PRESET, cache_dir, local_dir))
    if Path(preset).expanduser().is_dir():
        return check_standin(registry.get(DEFAULT_PRESET), preset, "preset")
    raise ConfigError(f"text encoder preset {preset!r} is neither the weight set '{DEFAULT_PRESET}' nor a directory "
                      f"holding a BERT preset")


def _load_tokenizer(hub, directory):
    """(tokenizer, hf_lowercase) for a preset directory.

    A keras-hub preset (`metadata.json`) carries its tokenizer config. For an HF layout, HF's BertNormalizer
    lower-cases by Unicode lowercasing and strips accents whenever it lower-cases (`strip_accents: null` follows
    `do_lower_case`); keras-hub's converter would case-fold with NFKC and keep accents. So the tokenizer is built
    here with `lowercase=False` and the accents stripped, and `SentenceEncoder.preprocess` lower-cases first.
    The vocabulary is vocab.txt, else the WordPiece vocabulary inside tokenizer.json; without a
    tokenizer_config.json, `do_lower_case` is transformers' default (True).
    """
    d = Path(directory)
    if (d / "metadata.json").is_file():
        return hub.models.BertTokenizer.from_preset(str(d)), False
    config = d / "tokenizer_config.json"
    cfg = json.loads(config.read_text()) if config.is_file() else {}
    lower = bool(cfg.get("do_lower_case", True))  # transformers' BertTokenizer default
    strip = cfg.get("strip_accents")
    if (d / "vocab.txt").is_file():
        vocab = str(d / "vocab.txt")
    else:
        ids = json.loads((d / "tokenizer.json").read_text())["model"]["vocab"]
        vocab = sorted(ids, key=ids.get)
    tokenizer = hub.models.BertTokenizer(vocabulary=vocab, lowercase=False,
                                         strip_accents=bool(lower if strip is None else strip))
    return tokenizer, lower


@keras.saving.register_keras_serializable(package="fuxi_like")
class MeanPooling(keras.layers.Layer):
    """Mean of `sequence` [B, T, D] over the positions where `padding_mask` [B, T] is true, then (if `normalize`)
    L2-normalised: sentence-transformers' Pooling(mean) + Normalize (sum mask clamped at 1e-9, norm at 1e-12).

    Args:
        normalize: L2-normalise the pooled vector.
    """

    def __init__(self, normalize=True, **kwargs):
        super().__init__(**kwargs)
        self.normalize = bool(normalize)

    def call(self, sequence, padding_mask):
        mask = ops.cast(ops.expand_dims(padding_mask, -1), sequence.dtype)
        pooled = ops.sum(sequence * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1e-9)
        if self.normalize:
            pooled = pooled / ops.maximum(ops.sqrt(ops.sum(ops.square(pooled), axis=-1, keepdims=True)), 1e-12)
        return pooled

    def compute_output_shape(self, sequence_shape, padding_mask_shape=None):
        return (sequence_shape[0], sequence_shape[-1])

    def get_config(self):
        return {**super().get_config(), "normalize": self.normalize}


@keras.saving.register_keras_serializable(package="fuxi_like")
class SentenceEncoder(keras.Model):
    """A BERT backbone + mean pooling + L2: `{token_ids, segment_ids, padding_mask}` [B, T] -> [B, hidden_dim].

    Build it with `SentenceEncoder.from_preset(...)`; `encoder.preprocessor` turns raw strings into its inputs
    (use it in a `tf.data` map to fine-tune end to end), `encode_texts` embeds a list of strings once.

    Freezing: `set_trainable(encoder, n)` trains only the top `n` transformer layers (`transformer_layers`, by
    name); a fully frozen backbone (no trainable weight) always runs in inference mode, so its dropout never
    fires inside a model that is training: a frozen encoder is a deterministic feature extractor.

    Args:
        backbone: a keras_hub `BertBackbone` (any BERT-style backbone taking token_ids/segment_ids/padding_mask
            and returning `sequence_output`).
        preprocessor: the keras_hub preprocessor that packs strings for it (None: inputs are given packed).
        normalize: L2-normalise the pooled embedding (sentence-transformers' Normalize module).
        hf_lowercase: in `preprocess`, map Unicode spaces to " " and lower-case before the preprocessor, as HF's
            BertNormalizer (set by `from_preset` for HF presets with `do_lower_case`).
    """

    def __init__(self, backbone, preprocessor=None, normalize=True, hf_lowercase=False, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.normalize = bool(normalize)
        self.hf_lowercase = bool(hf_lowercase)
        self.pooling = MeanPooling(normalize=normalize, name="mean_pooling")

    # ------------------------------------------------------------------------------------------- building
    @classmethod
    def from_preset(cls, preset=DEFAULT_PRESET, sequence_length=128, normalize=True, cache_dir=None,
                    local_dir=None, **kwargs):
        """Load the backbone and its preprocessor from a preset directory.

        Args:
            preset: a weight set name (`all-minilm-l6-v2`, fetched into the cache on first use) or a directory
                with a BERT preset the user brings: HF layout (config.json, model.safetensors, vocab.txt,
                tokenizer_config.json) or a keras-hub preset (config.json, model.weights.h5, tokenizer assets).
            sequence_length: word pieces per text, `[CLS]` and `[SEP]` included; longer texts are truncated.
            normalize: L2-normalise the embeddings.
            cache_dir: weights cache root (`fuxi_like.pretrained.weights_dir`).
            local_dir: a directory standing in for the named weight set (else `$FUXI_LIKE_WEIGHTS_ALL_MINILM_L6_V2`).
        """
        hub = require_keras_hub()
        directory = str(resolve_preset(preset, cache_dir, local_dir))
        backbone = hub.models.BertBackbone.from_preset(directory)
        tokenizer, hf_lowercase = _load_tokenizer(hub, directory)
        preprocessor = hub.models.BertTextClassifierPreprocessor(tokenizer=tokenizer, sequence_length=sequence_length)
        return cls(backbone, preprocessor, normalize=normalize, hf_lowercase=hf_lowercase, **kwargs)

    def preprocess(self, texts):
        """Strings [B] -> `{token_ids, segment_ids, padding_mask}` [B, sequence_length]; TensorFlow ops only, so it
        also runs inside a `tf.data` map (for fine-tuning end to end)."""
        if self.preprocessor is None:
            raise ConfigError("this SentenceEncoder has no preprocessor (build it with from_preset)")
        texts = tf.convert_to_tensor(texts, dtype=tf.string)
        if self.hf_lowercase:
            texts = tf.strings.lower(tf.strings.regex_replace(texts, r"\p{Zs}", " "), encoding="utf-8")
        return self.preprocessor(texts)

    # -------------------------------------------------------------------------------------------- forward
    def call(self, inputs, training=None):
        mask = inputs["padding_mask"]
        segments = inputs.get("segment_ids")
        if segments is None:
            segments = ops.zeros_like(inputs["token_ids"])
        if not self.backbone.trainable_weights:  # frozen: a feature extractor, dropout off
            training = False
        out = self.backbone({"token_ids": inputs["token_ids"], "segment_ids": segments, "padding_mask": mask},
                            training=training)
        return self.pooling(out["sequence_output"], mask)

    def compute_output_shape(self, input_shape):
        return (input_shape["token_ids"][0], self.dim)

    @property
    def dim(self):
        return int(self.backbone.hidden_dim)

    @property
    def transformer_layers(self):
        """The backbone's transformer blocks, bottom to top (keras-hub names them `transformer_layer_<i>`)."""
        return transformer_layers(self.backbone)

    # --------------------------------------------------------------------------------------- encode once
    def encode_texts(self, texts, batch_size=64, verbose=False):
        """Embeddings [N, dim] (float32, unit rows when `normalize`) of `texts`, in their order.

        Texts are batched by length and each batch is cut to its longest text (rounded up to 16 word pieces):
        the padding is masked, so this changes no embedding, only the time spent on padding.

        Args:
            texts: strings (anything else is converted with `str`).
            batch_size: texts per forward pass.
            verbose: show a progress bar.
        """
        texts = [str(t) for t in texts]
        out = np.zeros((len(texts), self.dim), np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        with tqdm(total=len(texts), unit="text", disable=not verbose, desc="encoding texts") as bar:
            for start in range(0, len(texts), int(batch_size)):
                idx = order[start:start + int(batch_size)]
                x = {k: ops.convert_to_numpy(v) for k, v in self.preprocess([texts[i] for i in idx]).items()}
                width = min(x["token_ids"].shape[1], -(-int(x["padding_mask"].sum(axis=1).max()) // 16) * 16)
                x = {k: v[:, :width] for k, v in x.items()}
                out[idx] = ops.convert_to_numpy(self.predict_on_batch(x))
                bar.update(len(idx))
        return out

    # ------------------------------------------------------------------------------------------- config
    def get_config(self):
        config = {**super().get_config(), "normalize": self.normalize, "hf_lowercase": self.hf_lowercase,
                  "backbone": keras.layers.serialize(self.backbone)}
        if self.preprocessor is not None:
            config["preprocessor"] = keras.layers.serialize(self.preprocessor)
        return config

    @classmethod
    def from_config(cls, config):
        require_keras_hub()  # registers keras_hub's classes for deserialisation
        config = dict(config)
        config["backbone"] = keras.layers.deserialize(config["backbone"])
        if config.get("preprocessor") is not None:
            config["preprocessor"] = keras.layers.deserialize(config["preprocessor"])
        return cls(**config)


def transformer_layers(backbone):
    """The transformer blocks of a keras-hub backbone, bottom to top, by their names `transformer_layer_<i>`."""
    blocks = {layer.name: layer for layer in backbone.layers if layer.name.startswith("transformer_layer_")}
    ordered = [blocks.get(f"transformer_layer_{i}") for i in range(len(blocks))]
    if not blocks or None in ordered:
        raise ConfigError(f"{backbone.name}: no transformer_layer_0..{len(blocks) - 1} blocks ({sorted(blocks)})")
    return ordered


def set_trainable(encoder, last_n_layers=None):
    """Freeze `encoder` (a SentenceEncoder or its backbone) except its top `last_n_layers` transformer blocks.

    Args:
        encoder: a `SentenceEncoder` or a keras-hub backbone.
        last_n_layers: None or 0 freezes everything (encode-once features); n in 1..L trains the top n
            `transformer_layer_<i>` (and the pooling, which has no weights); "all" trains everything, the
            embeddings included (full fine-tuning; the unused `[CLS]` pooler `pooled_dense` gets no gradient).

    Returns:
        `encoder`, for chaining.
    """
    backbone = getattr(encoder, "backbone", encoder)
    blocks = transformer_layers(backbone)
    # Start from everything trainable. Set False first: on the TensorFlow backend `x.trainable = True` is a no-op
    # when x.trainable is already True (KerasAutoTrackable.__setattr__ short-circuits an identical value), so it
    # would not reach sublayers an earlier call froze.
    encoder.trainable = False
    encoder.trainable = True
    if last_n_layers == "all":
        return encoder
    n = 0 if last_n_layers is None else last_n_layers
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= len(blocks):
        raise ConfigError(f"last_n_layers must be None, 'all' or an integer in 0..{len(blocks)}, got {last_n_layers!r}")
    train = {b.name for b in blocks[len(blocks) - int(n):]}
    for layer in backbone.layers:
        if layer.name not in train:
            layer.trainable = False
    return encoder


def encode_texts(texts, preset=DEFAULT_PRESET, batch_size=64, verbose=False, sequence_length=128,
                 cache_dir=None, local_dir=None):
    """Embed `texts` once with a fresh `SentenceEncoder.from_preset(preset, sequence_length)`: [N, dim] float32.

    To embed several lists, build the encoder once and call its `encode_texts` method instead.
    """
    encoder = SentenceEncoder.from_preset(preset, sequence_length=sequence_length, cache_dir=cache_dir,
                                          local_dir=local_dir)
    return encoder.encode_texts(texts, batch_size=batch_size, verbose=verbose)
