"""Evaluation protocols for learned embeddings: exact or faiss kNN, and the metrics of retrieval,
clustering, verification, re-identification, few-shot recognition and anomaly detection."""

from ..roc import roc_curve, threshold_at_far
from ..search import knn
from ..search.neighbors import Neighbors
from .anomaly import anomaly_metrics, centroid_novelty, detection_metrics, knn_novelty
from .clustering import clustering_metrics, kmeans_labels, partition_scores
from .crossmodal import cross_modal_metrics
from .fewshot import (
    Episodes,
    FewShotResult,
    fewshot_accuracy,
    load_episodes,
    sample_episodes,
    save_episodes,
)
from .reid import ReidResult, reid_metrics, reid_metrics_from_distances
from .retrieval import (
    METRICS,
    grouped_retrieval_metrics,
    per_class_metrics,
    query_metrics,
    retrieval_metrics,
)
from .verification import (
    equal_error_rate,
    kfold_accuracy,
    roc_auc,
    tar_at_far,
    verification_metrics,
)

__all__ = [
    "METRICS",
    "anomaly_metrics",
    "centroid_novelty",
    "cross_modal_metrics",
    "detection_metrics",
    "knn_novelty",
    "Episodes",
    "FewShotResult",
    "load_episodes",
    "sample_episodes",
    "save_episodes",
    "Neighbors",
    "ReidResult",
    "clustering_metrics",
    "equal_error_rate",
    "fewshot_accuracy",
    "kfold_accuracy",
    "kmeans_labels",
    "knn",
    "partition_scores",
    "per_class_metrics",
    "query_metrics",
    "reid_metrics",
    "reid_metrics_from_distances",
    "grouped_retrieval_metrics",
    "retrieval_metrics",
    "roc_auc",
    "roc_curve",
    "tar_at_far",
    "threshold_at_far",
    "verification_metrics",
]
