from .RAR import RAR

__all__ = ["RAR"]
