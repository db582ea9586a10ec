"""Model base classes."""

from .base_model import BaseModel, register_model
from .retrieval_model import RetrievalModel

__all__ = ["BaseModel", "RetrievalModel", "register_model"]
