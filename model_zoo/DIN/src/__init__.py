from .DIN import DIN

__all__ = ["DIN"]
