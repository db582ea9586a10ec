"""Process setup: logging, seeding, device selection."""

import logging
import os
import sys
import zipfile
from pathlib import Path

import keras
import tensorflow as tf

from .errors import ConfigError, DataError


def setup_logging(log_file=None, verbose=1):
    logger = logging.getLogger("fuxi_like")
    logger.setLevel(logging.INFO)
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    if verbose:
        sh = logging.StreamHandler(sys.stdout)
        sh.setFormatter(fmt)
        logger.addHandler(sh)
    if log_file:
        os.makedirs(os.path.dirname(log_file), exist_ok=True)
        fh = logging.FileHandler(log_file, encoding="utf-8")
        fh.setFormatter(fmt)
        logger.addHandler(fh)
    logger.propagate = False
    return logger


def seed_everything(seed):
    os.environ["PYTHONHASHSEED"] = str(seed)
    keras.utils.set_random_seed(seed)


def setup_device(gpu=-1):
    """gpu = -1: CPU only; gpu = i: only GPU i visible, with memory growth.

    Must run before TensorFlow executes its first op. When the process was started
    with CUDA_VISIBLE_DEVICES (e.g. by a sweep worker), index i counts within it.
    """

    gpus = tf.config.list_physical_devices("GPU")
    try:
        if gpu is None or int(gpu) < 0:
            tf.config.set_visible_devices([], "GPU")
            return "CPU"
        if int(gpu) >= len(gpus):

            raise ConfigError(f"--gpu {gpu} requested but only {len(gpus)} GPU(s) are visible to this process")
        tf.config.set_visible_devices(gpus[int(gpu)], "GPU")
        tf.config.experimental.set_memory_growth(gpus[int(gpu)], True)
        return f"GPU:{gpu}"
    except RuntimeError as e:  # runtime already initialised in this process
        logging.getLogger("fuxi_like").warning("device selection skipped: %s", e)
        return "unchanged"


def load_saved_model(path, compile=False):
    """`keras.saving.load_model` with errors that say what is wrong: a missing file, or a damaged one (Keras says
    "File not found" for a truncated archive too), as DataError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"Saved model not found: {p}")
    if p.suffix == ".keras" and not zipfile.is_zipfile(p):
        raise DataError(f"{p}: damaged .keras file (not a complete zip archive; truncated?); save or train it again")
    try:
        return keras.saving.load_model(p, compile=compile)
    except (OSError, ValueError, zipfile.BadZipFile, KeyError) as e:
        raise DataError(f"{p}: cannot load the saved model ({type(e).__name__}: {str(e)[:160]})") from None
