from .GRU4Rec import GRU4Rec

__all__ = ["GRU4Rec"]
