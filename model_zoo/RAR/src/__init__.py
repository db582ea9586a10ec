from .RAR import RAR, SimHash

__all__ = ["RAR", "SimHash"]
