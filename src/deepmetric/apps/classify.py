"""Few-shot recognition of new classes, open-set: prototypes (or nearest items) of a few
labelled examples per class, and "unknown" under a threshold calibrated on the examples."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._checks import check_choice
from ..distances import Metric, check_metric, is_similarity, normalize_rows, pairwise
from ._threshold import cutoff


class FewShotClassifier:
    """Labels queries with the class of the nearest prototype (the mean of a class's support
    embeddings, Snell et al. 2017; for cosine, of their directions) or of the nearest support
    item (``mode="nearest"``).

    :meth:`calibrate` sets the open-set threshold by leaving each class out in turn: the best
    score of every support item against the *other* classes is what an item of a class never
    seen would get, and the threshold lets at most ``far`` of those through. Below it (above,
    for distances) a query is ``None``, "unknown".

    Example:
        >>> clf = FewShotClassifier(metric="euclidean").fit([[0.0], [0.2], [5.0]], ["a", "a", "b"])
        >>> clf.predict([[0.1], [4.0]])[0].tolist()
        ['a', 'b']
    """

    def __init__(self, metric: Metric = "cosine", mode: str = "prototype") -> None:
        check_metric(metric)
        check_choice("mode", mode, ("prototype", "nearest"))
        self.metric, self.mode = metric, mode
        self.threshold: float | None = None

    def fit(self, vectors: Any, labels: Any) -> FewShotClassifier:
        """Remember the support set: ``(n, dim)`` embeddings and their ``(n,)`` labels."""
        x = torch.as_tensor(np.asarray(vectors, dtype=np.float64))
        y = np.asarray(labels, dtype=object)
        if x.dim() != 2 or len(y) != len(x) or len(x) == 0:
            raise ValueError(
                f"need (n, dim) support vectors and n labels; got {tuple(x.shape)} and {len(y)}"
            )
        self.classes_, self.support_labels_ = np.unique(y.astype(str)), y.astype(str)
        if len(self.classes_) < 2:
            raise ValueError("the support set needs at least two classes")
        self.support_ = normalize_rows(x) if self.metric == "cosine" else x
        codes = np.searchsorted(self.classes_, self.support_labels_)
        self._codes = torch.as_tensor(codes)
        sums = torch.zeros(len(self.classes_), x.shape[1], dtype=x.dtype).index_add_(
            0, self._codes, self.support_
        )
        self.prototypes_ = sums / torch.bincount(self._codes)[:, None].to(x.dtype)
        return self

    def class_scores(self, vectors: Any) -> torch.Tensor:
        """``(n, classes)`` score of each query for each class (similarity or distance)."""
        q = torch.as_tensor(np.asarray(vectors, dtype=np.float64))
        if self.mode == "prototype":
            return pairwise(q, self.prototypes_, self.metric)
        items = pairwise(q, self.support_, self.metric)
        fill = -torch.inf if is_similarity(self.metric) else torch.inf
        out = torch.full((len(q), len(self.classes_)), fill, dtype=items.dtype)
        reduce = "amax" if is_similarity(self.metric) else "amin"
        index = self._codes.expand(len(q), -1)
        return out.scatter_reduce(1, index, items, reduce=reduce, include_self=True)

    def _best(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return scores.max(1) if is_similarity(self.metric) else scores.min(1)

    def calibrate(self, far: float = 0.05) -> float:
        """Set and return the open-set threshold at false accept rate ``far`` (see the class)."""
        scores = self.class_scores(self.support_)
        own = torch.nn.functional.one_hot(self._codes, len(self.classes_)).bool()
        scores[own] = -torch.inf if is_similarity(self.metric) else torch.inf
        impostors = self._best(scores)[0].numpy()
        self.threshold = cutoff(impostors, far, higher_passes=is_similarity(self.metric))
        return self.threshold

    def predict(self, vectors: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(labels, scores)``: each query's class (``None`` when it does not pass the
        threshold) and its best score."""
        best, where = self._best(self.class_scores(vectors))
        labels = self.classes_[where.numpy()].astype(object)
        if self.threshold is not None:
            known = best > self.threshold if is_similarity(self.metric) else best < self.threshold
            labels[~known.numpy()] = None
        return labels, best.numpy()
