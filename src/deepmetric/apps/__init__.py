"""The jobs a learned metric does, on embeddings (``deepmetric verify``, ``classify``,
``cluster`` and ``anomaly`` run them on images).

- :mod:`.verify`: pair scores, a threshold calibrated at a false accept rate, decisions, and
  ROC, EER and TAR@FAR when the pairs are labelled.
- :mod:`.classify`: few-shot recognition of new classes from a few labelled examples each,
  by prototypes or nearest neighbours, answering "unknown" under a calibrated threshold.
- :mod:`.cluster`: k-means with a given k, or agglomerative clustering at a distance threshold
  or HDBSCAN when k is unknown.
- :mod:`.anomaly`: the distance to the k nearest normal items, with a threshold calibrated at a
  false-alarm rate on held-out normal items.

Re-ranking (k-reciprocal, alpha query expansion) is in :mod:`deepmetric.search.rerank`.
"""

from .anomaly import AnomalyDetector
from .classify import FewShotClassifier
from .cluster import cluster_embeddings
from .verify import calibrate_threshold, pair_scores, verification_report

__all__ = [
    "AnomalyDetector",
    "FewShotClassifier",
    "calibrate_threshold",
    "cluster_embeddings",
    "pair_scores",
    "verification_report",
]
