"""Retrieval: indexes (exact, ScaNN), full-ranking evaluation, serving and recall pools."""

from .evaluation import exclude_seen, metrics_from_ranks, retrieval_metrics, target_ranks
from .index import ExactIndex, ScaNNIndex, load_index, make_index
from .recall import recall_pools, write_recall_dataset
from .serving import Retriever, load_retriever, save_retriever

__all__ = ["ExactIndex", "ScaNNIndex", "load_index", "make_index", "exclude_seen", "metrics_from_ranks",
           "retrieval_metrics", "target_ranks", "recall_pools", "write_recall_dataset", "Retriever",
           "load_retriever", "save_retriever"]
