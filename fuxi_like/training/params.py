"""The training keys every expid may set, with their one default each.

A model's own hyperparameters (and BaseModel's: `embedding_dim`, `embedding_regularizer`, ...)
are its constructor's arguments: their defaults live in the signature and nowhere else. The keys
below are what the runner and the training loop read; `training_params(params)` completes a
partial mapping with these defaults, so code that compiles or trains a model outside the runner
(tests, benchmarks) gets exactly what `run_expid` would.

Each entry: key -> (allowed Python types, default); `type(None)` in the types means null is allowed.
"""

import copy

NUM = (int, float)

RUNNER_KEYS = {
    "model": ((str,), None),
    "dataset_id": ((str,), None),
    "model_root": ((str,), "./checkpoints/"),
    "loss": ((str,), "binary_crossentropy"),
    "metrics": ((list,), ["logloss", "AUC"]),
    "optimizer": ((str,), "adam"),
    "learning_rate": (NUM, 1e-3),
    # a learning rate above MAX_LEARNING_RATE (10) is refused as a likely typo unless this is true
    "allow_large_learning_rate": ((bool,), False),
    "batch_size": ((int,), 1024),
    # rows per valid/test batch (null: batch_size); not in the run's hash (the same predictions, faster)
    "eval_batch_size": ((int, type(None)), None),
    "epochs": ((int,), 10),
    "shuffle": ((bool,), True),
    "seed": ((int,), 2024),
    "monitor": ((str, dict), "AUC"),
    "monitor_mode": ((str,), "max"),
    "early_stop_patience": ((int,), 2),
    "save_best_only": ((bool,), True),
    "reduce_lr_on_plateau": ((bool,), True),
    "lr_decay_factor": (NUM, 0.1),
    "min_lr": (NUM, 1e-6),
    "max_gradient_norm": (NUM + (type(None),), 10.0),
    "group_id": ((str, type(None)), None),
    "streaming": ((bool,), False),
    "verbose": ((int,), 1),
    "resume": ((bool,), True),
    "deterministic": ((bool,), False),
    "distribute": ((str, type(None)), None),
    "distribute_devices": ((list, type(None)), None),
    "logical_cpus": ((int, type(None)), None),
    "feature_specs": ((list, type(None)), None),
    "use_features": ((list, type(None)), None),
    # where pretrained weights are cached (fuxi_like.pretrained): a path relative to the model folder, or null for
    # $FUXI_LIKE_WEIGHTS, else ~/.cache/fuxi_like/weights; not in the run's hash (the files are sha256-checked)
    "weights_cache": ((str, type(None)), None),
    # energy/carbon accounting (fuxi_like.training.green, the `green` extra): kWh, CO2e and ApC in the results row;
    # carbon_country: a 3-letter ISO code or "WORLD" (codecarbon's world average); carbon_intensity (gCO2e/kWh)
    # overrides it; energy_tracking_mode: "machine" or "process". None of them is in the run's hash
    "energy_tracking": ((bool,), False),
    "energy_tracking_mode": ((str,), "machine"),
    "carbon_country": ((str,), "WORLD"),
    "carbon_intensity": (NUM + (type(None),), None),
}


# value ranges of the numeric runner keys: (lowest allowed, whether the lowest itself is allowed); None values pass
RANGES = {
    "batch_size": (1, True), "eval_batch_size": (1, True), "epochs": (1, True), "learning_rate": (0, False),
    "early_stop_patience": (0, True), "lr_decay_factor": (0, False), "min_lr": (0, True),
    "max_gradient_norm": (0, False), "logical_cpus": (1, True),
}


MAX_LEARNING_RATE = 10.0


def range_error(key, value, params=None):
    """A message when a runner key's value is outside its range (RANGES), else None."""
    if key not in RANGES or value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    low, inclusive = RANGES[key]
    if key == "learning_rate" and value > MAX_LEARNING_RATE and not (params or {}).get("allow_large_learning_rate"):
        return (f"key 'learning_rate' is {value!r}, above {MAX_LEARNING_RATE} (a typo of an exponent?); set "
                f"allow_large_learning_rate: true if you mean it")
    if key == "lr_decay_factor" and value >= 1:
        return f"key 'lr_decay_factor' must be in (0, 1), got {value!r}"
    if value > low or (inclusive and value == low):
        return None
    return f"key '{key}' must be {'>=' if inclusive else '>'} {low}, got {value!r}"


def training_params(params=None):
    """`params` completed with the RUNNER_KEYS defaults (deep copies; `params` wins)."""
    out = {k: copy.deepcopy(default) for k, (_, default) in RUNNER_KEYS.items()}
    out.update(params or {})
    return out
