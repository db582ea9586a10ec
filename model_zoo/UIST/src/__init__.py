from .UIST import UIST

__all__ = ["UIST"]
