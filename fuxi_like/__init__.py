"""fuxi_like: a Keras 3 / TensorFlow model zoo for recommendation research."""

from .version import __version__


def run_expid(config_dir, expid, gpu=-1, **kwargs):
    """Run one experiment; see `fuxi_like.runner.run_expid`."""
    from .runner import run_expid as _run

    return _run(config_dir, expid, gpu, **kwargs)


__all__ = ["__version__", "run_expid"]
