from .SparCode import SparCode

__all__ = ["SparCode"]
