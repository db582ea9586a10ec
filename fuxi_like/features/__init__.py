"""Feature schema and processing."""

from .feature_map import FeatureMap
from .processor import FeatureProcessor
from .vocab import Vocab

__all__ = ["FeatureMap", "FeatureProcessor", "Vocab"]
