from .SASRec import SASRec

__all__ = ["SASRec"]
