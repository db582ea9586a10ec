from .GreenRec import GreenRec

__all__ = ["GreenRec"]
