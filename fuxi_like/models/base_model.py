"""BaseModel: the keras.Model every zoo model subclasses.

A subclass builds its layers in `__init__(feature_map, ..., **kwargs)` from flat
hyperparameters and implements `call(inputs, training=None) -> [B, 1]` click
probabilities. BaseModel gives it:
- `compile_from_params(params)`: optimizer, learning rate, loss, gradient clipping;
- `evaluate_split(dataset, metrics, group_id)`: metrics over a whole split, always
  in inference mode (dropout off, batch-norm moving statistics);
- `get_config` / `from_config`, so `model.save("x.keras")` and
  `keras.saving.load_model("x.keras")` round-trip (the feature map travels inside
  the config; register each subclass with `@register_model`).

The constructor's signature is the model's config schema: every argument is a key an expid may
set, its default is the only default that key has, and the constructor uses every argument it
accepts. `hyperparameters()` lists them (over the class hierarchy).

Hooks the runner calls on every model, in this order, each a no-op here (override what a model
needs; see config_templates/NEW_MODEL.md):
1. `extra_inputs()`: per-row inputs beyond the feature map's fields (RAT's retrieved rows);
2. `adapt(pipeline)`: statistics of the training data a fresh model needs (a retrieval model's item
   popularity); not called when weights are loaded, which carry them;
3. `training_callbacks(pipeline)`: extra Keras callbacks (SparCode's quantizer initialisation);
4. `build_loss_layers(x)`: variables only the loss uses (a retrieval model's item tower), created
   with the first batch, before the optimizer is built.
"""

import inspect

import keras
import numpy as np
from keras import ops

from ..data.audio import media_errors
from ..errors import ConfigError
from ..features.feature_map import FeatureMap
from ..layers.embedding import FeatureEmbedding
from ..layers.regularizers import get_regularizer
from ..metrics import evaluate_metrics
from ..training.optimizers import get_optimizer
from ..training.params import training_params

LOSSES = {"binary_crossentropy": lambda: keras.losses.BinaryCrossentropy(),
          "bce": lambda: keras.losses.BinaryCrossentropy(),
          "mse": lambda: keras.losses.MeanSquaredError()}


def register_model(cls):
    """Register a zoo model so `.keras` files of it can be loaded."""
    return keras.saving.register_keras_serializable(package="fuxi_like_zoo", name=cls.__name__)(cls)


class BaseModel(keras.Model):
    retrieval = False  # True: evaluated by ranking the catalogue through an index (RetrievalModel)

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls, *args, **kwargs)
        try:
            bound = inspect.signature(cls.__init__).bind(None, *args, **kwargs)
        except TypeError:
            return obj  # __init__ will raise the real error
        hp = dict(bound.arguments)
        hp.pop("self", None)
        hp.pop("feature_map", None)
        extra = hp.pop("kwargs", None) or {}
        hp.update(extra)
        obj.__dict__["_fuxi_hparams"] = hp
        return obj

    def __init__(self, feature_map, model_id="BaseModel", task="binary_classification", embedding_dim=16,
                 embedding_regularizer=None, net_regularizer=None, **kwargs):
        keras_kwargs = {k: kwargs.pop(k) for k in ("name", "dtype", "trainable") if k in kwargs}
        if kwargs:
            raise ConfigError(f"{type(self).__name__}: unknown hyperparameter(s) {sorted(kwargs)}")
        super().__init__(name=keras_kwargs.pop("name", model_id), **keras_kwargs)
        if isinstance(feature_map, dict):
            feature_map = FeatureMap.from_dict(feature_map)
        if task not in ("binary_classification", "regression"):
            raise ConfigError(f"task must be binary_classification or regression, got {task!r}")
        self.feature_map = feature_map
        self.model_id = model_id
        self.task = task
        self.embedding_dim = embedding_dim
        self.embedding_regularizer = embedding_regularizer
        self.net_regularizer_spec = net_regularizer
        self.net_regularizer = get_regularizer(net_regularizer, half=True)
        self._collect_eval = None

    # ------------------------------------------------------------ the schema
    @classmethod
    def hyperparameters(cls):
        """{name: default} of every constructor argument over the class hierarchy (the subclass's
        default wins; `inspect.Parameter.empty` where there is none). The one place signatures are read."""
        out = {}
        for klass in cls.__mro__:
            if klass is keras.Model or klass.__module__.startswith("keras"):
                break
            if "__init__" not in vars(klass):
                continue
            for name, p in inspect.signature(klass.__init__).parameters.items():
                if name in ("self", "feature_map") or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                    continue
                out.setdefault(name, p.default)
        return out

    # ----------------------------------------------------------------- hooks
    def extra_inputs(self):
        """Per-row inputs beyond the feature map's fields: None, or `augment(split, arrays) -> {name:
        array}` that the input pipeline calls on each split's arrays (aligned rows) and adds to x."""
        return None

    def adapt(self, pipeline):
        """Learn what a fresh model needs from the training data (`pipeline`'s train split) before
        training. Not called when trained weights are loaded: non-trainable weights carry it."""

    def build_loss_layers(self, x):
        """Create variables that only the loss uses, from one batch of inputs `x`, before the
        optimizer is built (so a resumed run restores them)."""

    def training_callbacks(self, pipeline):
        """Extra Keras callbacks for training, e.g. an initialisation from the first batches."""
        return []

    def build(self, input_shape=None):
        """Sublayers build on the model's first call (inputs are a dict of feature arrays), as with
        Keras' default `build`, which would warn that the model has none. Marked as Keras' default
        (`_is_default`) so that loading a `.keras` file still builds the model by running it on the
        recorded input shapes (`Model.build_from_config`)."""
        self.built = True

    build._is_default = True  # keras.src.utils.python_utils.is_default reads this attribute

    # ---------------------------------------------------------------- helpers
    def make_embedding(self, **kwargs):
        """A FeatureEmbedding over the model's features with its defaults."""
        kwargs.setdefault("embedding_regularizer", self.embedding_regularizer)
        return FeatureEmbedding(self.feature_map, self.embedding_dim, **kwargs)

    def output_activation(self, logit):
        return ops.sigmoid(logit) if self.task == "binary_classification" else logit

    # ---------------------------------------------------------------- compile
    def compile_from_params(self, params):
        """Compile with the training keys of `params` (missing ones get their RUNNER_KEYS default)."""
        params = training_params(params)
        loss = str(params["loss"]).lower()
        if loss not in LOSSES:
            raise ConfigError(f"unknown loss '{loss}'; known: {', '.join(LOSSES)}")
        opt = get_optimizer(params["optimizer"], params["learning_rate"], params["max_gradient_norm"])
        self.__dict__["_fuxi_predict_fns"] = {}  # evaluation functions traced under an earlier compile
        self.compile(optimizer=opt, loss=LOSSES[loss]())

    # ------------------------------------------------------------- evaluation
    def predict_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = self(x, training=False)
        if self._collect_eval is None:
            return y_pred
        out = {"y_pred": y_pred, "y_true": y}
        if self._collect_eval:
            out["group_id"] = x[self._collect_eval]
        return out

    def predict_collecting(self, dataset, marker, verbose=0):
        """`predict` with `_collect_eval = marker`, so `predict_step` returns a dict of what
        evaluation needs; the normal predict function is restored afterwards. The traced function of
        each marker is kept (per-epoch validation would otherwise trace a new one every epoch)."""
        fns = self.__dict__.setdefault("_fuxi_predict_fns", {})  # plain dict, not tracked by Keras
        saved = self.predict_function
        self._collect_eval = marker
        self.predict_function = fns.get(marker)
        try:
            with media_errors():
                out = self.predict(dataset, verbose=verbose)
            fns[marker] = self.predict_function
            return out
        finally:
            self._collect_eval = None
            self.predict_function = saved

    def predict_split(self, dataset, group_id=None, verbose=0):
        """(y_true, y_pred, group ids or None) over a whole dataset, in inference mode."""
        out = self.predict_collecting(dataset, group_id or "", verbose)
        y_true = np.asarray(out["y_true"]).reshape(-1)
        y_pred = np.asarray(out["y_pred"]).reshape(-1)
        groups = np.asarray(out["group_id"]).reshape(-1) if group_id else None
        return y_true, y_pred, groups

    def evaluate_split(self, dataset, metrics, group_id=None, verbose=0):
        y_true, y_pred, groups = self.predict_split(dataset, group_id, verbose)
        return evaluate_metrics(y_true, y_pred, metrics, groups)

    def count_parameters(self, count_embedding=True):
        total = 0
        for v in self.trainable_variables:
            if not count_embedding and ("table_dim" in v.path or "pretrained_" in v.path):
                continue
            total += int(np.prod(v.shape))
        return total

    # ---------------------------------------------------------- serialisation
    def get_config(self):
        cfg = {"feature_map": self.feature_map.to_dict()}
        for k, v in getattr(self, "_fuxi_hparams", {}).items():
            cfg[k] = v
        cfg["feature_map"]["data_dir"] = self.feature_map.data_dir
        return cfg

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        fmap_d = config.pop("feature_map")
        fmap = FeatureMap.from_dict(fmap_d, data_dir=fmap_d.get("data_dir"))
        for k in ("name", "trainable", "dtype"):
            config.pop(k, None)
        return cls(fmap, **config)

