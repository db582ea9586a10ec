from .DNN import DNN

__all__ = ["DNN"]
