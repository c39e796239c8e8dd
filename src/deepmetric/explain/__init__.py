"""Why the model finds two items similar.

- :func:`explain_pair` / :func:`explain_pairs`: maps of where a pair's similarity comes from,
  exact for average-pooled conv embedders (with cell-to-cell correspondences), integrated
  gradients for any other model (:mod:`.pair`).
- :func:`explain_neighbours`: a query's nearest items, each with its map, and the nearest item
  of another class, the "why not" case (:mod:`.neighbours`).
- :func:`mahalanobis_contributions` / :func:`metric_scales`: per-feature contributions to a
  Mahalanobis distance, and what the learned metric stretches or shrinks (:mod:`.features`).
- :func:`draw_pair`: both images with their maps overlaid and the top correspondences drawn.
"""

from .draw import describe, draw_pair, stack
from .features import mahalanobis_contributions, mahalanobis_matrix, metric_scales
from .neighbours import Neighbour, NeighbourEvidence, explain_neighbours, neighbour_evidence
from .pair import (
    EXPLAINED,
    METHODS,
    NoSpatialMapError,
    PairExplanation,
    explain_pair,
    explain_pairs,
    spatial_terms,
)

__all__ = [
    "EXPLAINED",
    "METHODS",
    "Neighbour",
    "NeighbourEvidence",
    "NoSpatialMapError",
    "PairExplanation",
    "describe",
    "draw_pair",
    "explain_neighbours",
    "explain_pair",
    "explain_pairs",
    "mahalanobis_contributions",
    "mahalanobis_matrix",
    "metric_scales",
    "neighbour_evidence",
    "spatial_terms",
    "stack",
]
