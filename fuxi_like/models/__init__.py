"""Model base classes."""

from .base_model import BaseModel, register_model

__all__ = ["BaseModel", "register_model"]
