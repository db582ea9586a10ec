from .DSSM import DSSM

__all__ = ["DSSM"]
