from .LR import LR

__all__ = ["LR"]
