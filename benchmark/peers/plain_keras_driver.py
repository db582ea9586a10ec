"""A plain Keras 3 DeepFM as a third, reference side of the peer comparison (issue 3's "a plain Keras 3
DeepFM with all fields in one embedding table (per-field offsets)"). Prints one `RESULT {json}` line.

The data are fuxi_like's processed arrays (built here as `ours_driver.py` builds them; the build is timed
but it is fuxi_like's preprocessing, not this model's). The model uses stock Keras layers only: one
`keras.layers.Embedding` over all categorical fields (ids shifted by per-field offsets), a [13, 16]
weight per numeric field scaled by its value, the FM term, `Dense` tower, a first-order term from a
second one-column table, Keras's Adam with the same global-norm clipping (10), and `model.fit` on the
numpy arrays (Keras's own array pipeline, reshuffled every epoch). No fuxi_like layer, optimizer or
input pipeline is involved in training.
"""

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def build_model(vocab_sizes, n_numeric, hp):
    import keras
    from keras import ops

    n_cat = len(vocab_sizes)
    d = hp["embedding_dim"]
    small = keras.initializers.RandomNormal(stddev=1e-4)

    class NumericEmbedding(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1], self.dim), initializer=small, name="w")

        def __init__(self, dim, **kw):
            super().__init__(**kw)
            self.dim = dim

        def call(self, x):
            return ops.expand_dims(x, -1) * self.w

    class FM(keras.layers.Layer):
        def call(self, v):
            s = ops.sum(v, axis=1)
            return 0.5 * ops.sum(s * s - ops.sum(v * v, axis=1), axis=-1, keepdims=True)

    cat = keras.Input((n_cat,), dtype="int32", name="cat")
    inputs, parts = [cat], []
    total = int(sum(vocab_sizes))
    emb = keras.layers.Embedding(total, d, embeddings_initializer=small)(cat)  # [B, n_cat, d]
    lr = ops.sum(keras.layers.Embedding(total, 1, embeddings_initializer="zeros")(cat), axis=1)  # [B, 1]
    if n_numeric:
        num = keras.Input((n_numeric,), name="num")
        inputs.append(num)
        parts.append(NumericEmbedding(d)(num))
        lr = lr + keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")(num)
    parts.append(emb)
    v = keras.layers.Concatenate(axis=1)(parts) if len(parts) > 1 else parts[0]  # [B, F, d]
    h = keras.layers.Flatten()(v)
    for u in hp["hidden_units"]:
        h = keras.layers.Dense(u, activation="relu")(h)
    logit = keras.layers.Dense(1)(h) + FM()(v) + lr
    model = keras.Model(inputs, keras.layers.Activation("sigmoid")(logit))
    model.compile(optimizer=keras.optimizers.Adam(hp["learning_rate"], global_clipnorm=10.0),
                  loss="binary_crossentropy")
    return model


def main(spec):
    import keras
    import numpy as np
    import yaml

    from fuxi_like.config import load_dataset_config
    from fuxi_like.data.build_dataset import build_dataset, load_feature_map
    from fuxi_like.data.tf_dataset import load_split
    from benchmark.peers.ours_driver import dataset_config
    from fuxi_like.metrics import auc, logloss

    if spec["model"] != "DeepFM":
        raise SystemExit("plain_keras_driver: DeepFM only")
    hp = spec["hparams"]
    ds = dataset_config(spec, spec["work_dir"] + "/plain_keras_data")
    cfg = Path(spec["work_dir"]) / "plain_keras_config"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "dataset_config.yaml").write_text(yaml.safe_dump({spec["dataset_id"]: ds}))
    t0 = time.perf_counter()
    fmap = load_feature_map(build_dataset(load_dataset_config(cfg, spec["dataset_id"]), rebuild=True))
    prep_s = time.perf_counter() - t0
    vocab = [int(fmap.features[c]["vocab_size"]) for c in spec["categorical"]]
    offsets = np.concatenate([[0], np.cumsum(vocab)[:-1]]).astype("int32")

    def arrays(split):
        a = load_split(fmap, split)
        x = {"cat": np.stack([a[c] for c in spec["categorical"]], axis=1).astype("int32") + offsets}
        if spec["numeric"]:
            x["num"] = np.stack([a[c] for c in spec["numeric"]], axis=1).astype("float32")
        return x, a[spec["label"]].astype("float32").reshape(-1, 1)

    keras.utils.set_random_seed(spec["seed"])
    model = build_model(vocab, len(spec["numeric"]), hp)
    (xtr, ytr), (xte, yte) = arrays("train"), arrays("test")
    stamps = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            stamps.append(time.perf_counter())

    model.fit(xtr, ytr, batch_size=hp["batch_size"], epochs=spec["epochs"], shuffle=True, verbose=0,
              callbacks=[Timer()])
    pred = model.predict(xte, batch_size=hp["batch_size"], verbose=0).reshape(-1)
    warm = spec["warmup_steps"]  # the same steady-state rate as ours_driver.py: every step after the warm-up
    steady = (len(stamps) - 1 - warm) * hp["batch_size"] / (stamps[-1] - stamps[warm]) \
        if len(stamps) > warm + 2 else float("nan")
    print("RESULT " + json.dumps({"prep_s": prep_s, "steps": len(stamps), "train_samples_per_s": steady,
                                  "test_AUC": float(auc(yte.reshape(-1), pred)),
                                  "test_logloss": float(logloss(yte.reshape(-1), pred)),
                                  "params": int(model.count_params())}), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
