from .DeepFM import DeepFM

__all__ = ["DeepFM"]
