"""A small log-mel CNN classifier: the baseline that checks an audio pipeline learns."""

import keras
import numpy as np
import pandas as pd

from ..data.media_datasets import audio_dataset, folder_items


def build_audio_cnn(n_classes, n_mels=64, widths=(16, 32, 64), dropout=0.3, mean=0.0, std=1.0):
    """Conv-BN-ReLU-pool blocks over [frames, mels], global average pool, softmax.

    Takes log-mels of any length ([B, frames, mels]); `mean`/`std` standardise them.
    """
    inp = keras.Input((None, n_mels), name="log_mel")
    x = keras.layers.Lambda(lambda t: (t - mean) / std, name="standardise")(inp)
    x = keras.layers.Reshape((-1, n_mels, 1))(x)
    for w in widths:
        x = keras.layers.Conv2D(w, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)  # few steps per epoch: fast-moving stats
        x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(dropout)(x)
    out = keras.layers.Dense(n_classes, activation="softmax")(x)
    return keras.Model(inp, out, name="audio_cnn")


def train_env_sounds(root, epochs=30, seed=0, batch_size=16, train_seconds=3.0, verbose=0):
    """Train on takes 0-7 of each class/subset of `env_sounds`, test on takes 8-9.

    Returns (test accuracy, n_train, n_test). Everything goes through
    `audio_dataset` (decode, random 3 s crops, VGGish log-mel, SpecAugment).
    """


    keras.utils.set_random_seed(seed)
    items, classes = folder_items(root, "labels.csv", "filename", "label")
    takes = pd.read_csv(f"{root}/labels.csv")["take"].to_numpy()
    train = [it for it, t in zip(items, takes) if t < 8]
    test = [it for it, t in zip(items, takes) if t >= 8]
    train_ds = audio_dataset(train, "vggish", train_seconds, crop="random", batch_size=batch_size, shuffle=True,
                             seed=seed, spec_augment_cfg={"freq_width": 6, "time_width": 15})
    test_ds = audio_dataset(test, "vggish", 5.0, crop="center", batch_size=batch_size)
    mels = np.concatenate([x["log_mel"].numpy() for x, _ in audio_dataset(train, "vggish", 5.0, batch_size=32)])
    model = build_audio_cnn(len(classes), mean=float(mels.mean()), std=float(mels.std()))
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train_ds, epochs=epochs, verbose=verbose)
    _, acc = model.evaluate(test_ds, verbose=0)
    return float(acc), len(train), len(test)
