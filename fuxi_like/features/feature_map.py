"""FeatureMap: the schema of a processed dataset, saved as `feature_map.json`.

It says, for each feature, its type and what a model needs to embed it
(vocab size, max_len, shared table, pretrained file, embedding dim), plus the
label names and the dataset fingerprint used for cache invalidation.
"""

import copy
import json
import os
from pathlib import Path

from ..errors import ConfigError, closest
from ..io_utils import atomic_write_text

# Types a model embeds; `meta` features (e.g. group ids) travel with the batch but
# are never fed to a model.
EMBEDDED_TYPES = ("categorical", "numeric", "sequence", "embedding")
OVERRIDABLE = ("embedding_dim", "pooling", "freeze_emb", "pretrain_usage", "source")


class FeatureMap:
    def __init__(self, dataset_id, features, labels, data_dir=None, fingerprint=None, num_rows=None):
        self.dataset_id = dataset_id
        self.features = dict(features)  # name -> spec dict (ordered)
        self.labels = list(labels)
        self.data_dir = str(data_dir) if data_dir else None
        self.fingerprint = fingerprint
        self.num_rows = dict(num_rows or {})

    # ----------------------------------------------------------------- queries
    def names(self, types=EMBEDDED_TYPES, source=None):
        return [
            n
            for n, s in self.features.items()
            if s["type"] in types and (source is None or s.get("source") == source)
        ]

    @property
    def num_fields(self):
        return len(self.names())

    def emb_dim(self, name, default):
        return self.features[name].get("embedding_dim") or default

    def table_owner(self, name):
        """Name of the feature whose embedding table `name` uses."""
        return self.features[name].get("share_embedding") or name

    def sum_emb_dim(self, default, names=None):
        return sum(self.emb_dim(n, default) for n in (names or self.names()))

    def meta_names(self):
        return self.names(types=("meta",))

    def require(self, name, types=None, where="model config"):
        if name not in self.features:
            raise ConfigError(
                f"{where}: feature '{name}' is not in the dataset "
                f"'{self.dataset_id}'{closest(name, self.features)}. Features: {', '.join(self.features)}"
            )
        if types and self.features[name]["type"] not in types:
            raise ConfigError(
                f"{where}: feature '{name}' has type {self.features[name]['type']}, expected {' or '.join(types)}"
            )
        return self.features[name]

    # --------------------------------------------------------------- overrides
    def with_overrides(self, feature_specs=None, use_features=None, where="model config"):
        """A copy with per-feature overrides from the model config.

        `feature_specs`: list of {name: <feature>, embedding_dim: ..., ...}.
        `use_features`: ordered subset of features to keep (meta always kept).
        """
        fmap = FeatureMap(self.dataset_id, copy.deepcopy(self.features), self.labels,
                          self.data_dir, self.fingerprint, self.num_rows)
        for i, spec in enumerate(feature_specs or []):
            if not isinstance(spec, dict) or "name" not in spec:
                raise ConfigError(f"{where}: feature_specs[{i}] must be a mapping with a 'name'")
            names = spec["name"] if isinstance(spec["name"], list) else [spec["name"]]
            for name in names:
                fmap.require(name, where=f"{where}: feature_specs[{i}]")
                for k, v in spec.items():
                    if k == "name":
                        continue
                    if k not in OVERRIDABLE:
                        raise ConfigError(
                            f"{where}: feature_specs[{i}]: key '{k}' cannot be overridden "
                            f"per model{closest(k, OVERRIDABLE)}; allowed: {', '.join(OVERRIDABLE)}"
                        )
                    fmap.features[name][k] = v
        if use_features:
            for n in use_features:
                fmap.require(n, where=f"{where}: use_features")
            keep = set(use_features) | set(self.meta_names())
            # a kept feature that shares another's table keeps the table owner's spec
            fmap.features = {n: s for n, s in fmap.features.items() if n in keep or any(
                fmap.features[k].get("share_embedding") == n for k in use_features)}
        return fmap

    # ----------------------------------------------------------- (de)serialise
    def to_dict(self):
        return {
            "dataset_id": self.dataset_id,
            "fingerprint": self.fingerprint,
            "labels": self.labels,
            "num_rows": self.num_rows,
            "features": self.features,
        }

    @classmethod
    def from_dict(cls, d, data_dir=None):
        return cls(d["dataset_id"], d["features"], d["labels"], data_dir,
                   d.get("fingerprint"), d.get("num_rows"))

    def save(self, path):
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path):
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"Feature map not found: {path}")
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f), data_dir=os.path.dirname(path))
