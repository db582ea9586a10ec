"""fuxi_like: a Keras 3 / TensorFlow model zoo for recommendation research."""

from .version import __version__


def run_expid(config_dir, expid, gpu=-1, **kwargs):
    """Run one experiment; see `fuxi_like.runner.run_expid`."""
    # lazy: `import fuxi_like` must not start TensorFlow (tf_env)
    from .runner import run_expid as _run

    return _run(config_dir, expid, gpu, **kwargs)


def load_trained(config_dir, expid, model_dir=None, gpu=-1):
    """Rebuild a trained expid's model and load its best weights; see `fuxi_like.runner.load_trained`."""
    # lazy: `import fuxi_like` must not start TensorFlow (tf_env)
    from .runner import load_trained as _load

    return _load(config_dir, expid, model_dir=model_dir, gpu=gpu)


__all__ = ["__version__", "run_expid", "load_trained"]
