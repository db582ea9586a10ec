from .SparCode import CrossScorer, SelfAttentionScorer, SparCode

__all__ = ["SparCode", "CrossScorer", "SelfAttentionScorer"]
