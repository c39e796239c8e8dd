"""Evaluation protocols for learned embeddings."""

from .retrieval import recall_at_k

__all__ = ["recall_at_k"]
