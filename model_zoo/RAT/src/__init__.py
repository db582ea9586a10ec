from .RAT import RAT

__all__ = ["RAT"]
