"""scikit-learn estimators: classic Mahalanobis metric learners and deep metric transformers.

``NCA``, ``LMNN`` and ``ITML`` learn a linear map ``L`` (``components_``) so that euclidean
distance after it, ``|L (x - y)|``, suits nearest-neighbour methods; use them as the transformer
before ``KNeighborsClassifier`` in a ``Pipeline``, or pass ``get_metric()`` as its metric.
``ITMLPairs`` learns the same metric from pairs labelled similar/dissimilar and classifies new
pairs. ``DeepMetricLearner`` trains a network with any deepmetric loss and miner;
``EmbeddingTransformer`` puts an already trained network in a pipeline.

Example:
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> from sklearn.pipeline import make_pipeline
    >>> X, y = load_iris(return_X_y=True)
    >>> model = make_pipeline(NCA(max_iter=10, random_state=0), KNeighborsClassifier()).fit(X, y)
    >>> model.score(X, y) > 0.9
    True
"""

from ._base import MahalanobisLearner, MahalanobisMetric
from .deep import DeepMetricLearner
from .embedding import EmbeddingTransformer
from .itml import ITML, itml_projections
from .lmnn import LMNN, lmnn_loss, target_neighbors
from .nca import NCA, nca_loss, nca_objective, neighbourhood_scale
from .pairs import ITMLPairs

__all__ = [
    "ITML",
    "LMNN",
    "NCA",
    "DeepMetricLearner",
    "EmbeddingTransformer",
    "ITMLPairs",
    "MahalanobisLearner",
    "MahalanobisMetric",
    "itml_projections",
    "lmnn_loss",
    "nca_loss",
    "nca_objective",
    "neighbourhood_scale",
    "target_neighbors",
]
