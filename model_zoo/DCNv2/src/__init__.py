from .DCNv2 import DCNv2

__all__ = ["DCNv2"]
