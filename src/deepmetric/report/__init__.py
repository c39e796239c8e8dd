"""The run report: one self-contained HTML file with training curves, the distance monitor,
Recall@K, a 2-D projection, retrieval grids, the worst queries, the config and the environment.

Plots are drawn with matplotlib's object API (no pyplot, no global backend) and embedded as PNG
``data:`` URIs; the page loads nothing from the network.
"""

from .analysis import EmbeddingSet, QueryResult, pair_distances, projection_2d, worst_queries
from .build import build_report
from .environment import environment_info
from .history import history_panels

__all__ = [
    "EmbeddingSet",
    "QueryResult",
    "build_report",
    "environment_info",
    "history_panels",
    "pair_distances",
    "projection_2d",
    "worst_queries",
]
