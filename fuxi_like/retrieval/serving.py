"""Save and load a trained retrieval model with its item index, for serving.

`save_retriever(model, index, directory)` writes `directory/query_model.keras` (the whole
model: query tower, item tower, feature map), `directory/index/` (the item index) and
`directory/retriever.json`; the directory is replaced atomically. `load_retriever(directory)`
returns a `Retriever` whose `search(inputs, k)` embeds processed query inputs (a dict of
id arrays, as in the processed dataset) and returns the top-k item ids and scores, with
each query's history items removed when the model was trained that way.
"""

import json
import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..io_utils import atomic_write_text, replace_dir
from ..utils import load_saved_model
from .index import load_index


class Retriever:
    def __init__(self, model, index):
        self.model = model
        self.index = index

    def embed(self, inputs, batch_size=4096):
        n = len(next(iter(inputs.values())))
        out = []
        for s in range(0, n, batch_size):
            batch = {k: np.asarray(v[s:s + batch_size]) for k, v in inputs.items()}
            out.append(np.asarray(self.model(batch, training=False)))
        return np.concatenate(out).astype("float32")

    def search(self, inputs, k=10, exclude_history=None):
        """inputs: dict feature -> array (processed ids). Returns (ids [Q, k], scores [Q, k])."""
        m = self.model
        exclude = m.exclude_history if exclude_history is None else exclude_history
        hist = np.asarray(inputs[m.history_field]) if exclude and m.history_field else None
        return m.retrieve(self.embed(inputs), self.index, k, hist)


def save_retriever(model, index, directory):
    d = Path(directory)
    tmp = d.parent / f".{d.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        model.save(tmp / "query_model.keras")
        index.save(tmp / "index")
        atomic_write_text(tmp / "retriever.json", json.dumps(
            {"model": type(model).__name__, "item_field": model.item_field,
             "history_field": model.history_field, "index_backend": index.backend}, indent=1))
        replace_dir(tmp, d)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return str(d)


def load_retriever(directory, model_modules=()):
    """Load a saved retriever. The model's class must be importable (registered): pass its
    zoo module(s) or model folder's `src` module in `model_modules`, or import it first."""

    d = Path(directory)
    if not (d / "retriever.json").is_file():
        raise ConfigError(f"{d}: not a saved retriever (retriever.json missing)")
    model = load_saved_model(d / "query_model.keras")
    return Retriever(model, load_index(d / "index"))
