"""Reusable Keras layers for CTR models."""

from .activations import Dice, get_activation
from .attention import DINAttention
from .embedding import FeatureEmbedding, masked_pool
from .interaction import CrossNetwork, FactorizationMachine, LogisticRegression
from .mlp import MLPBlock
from .quantizer import ProductQuantizer, ResidualQuantizer
from .regularizers import get_regularizer
from .sequence_encoders import GRU4RecEncoder, SASRecEncoder, last_position

__all__ = ["Dice", "get_activation", "DINAttention", "FeatureEmbedding", "masked_pool",
           "CrossNetwork", "FactorizationMachine", "LogisticRegression", "ProductQuantizer", "ResidualQuantizer", "MLPBlock", "get_regularizer",
           "GRU4RecEncoder", "SASRecEncoder", "last_position"]
