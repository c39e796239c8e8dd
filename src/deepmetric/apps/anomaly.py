"""Anomaly detection: the distance to the k nearest normal items, with an alarm threshold
calibrated at a false-alarm rate on normal items held out of the reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._checks import check_int, check_number
from ..evaluation import knn_novelty
from ._threshold import cutoff


class AnomalyDetector:
    """Scores an item by its mean distance to its ``k`` nearest normal reference items.

    :meth:`fit` holds ``held_out`` of the normal items back, seeded, and sets the threshold so
    that at most ``false_alarm`` of them raise an alarm; the rest are the reference.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> detector = AnomalyDetector(k=3).fit(rng.normal(size=(200, 2)), false_alarm=0.05)
        >>> detector.predict([[0.0, 0.0], [8.0, 8.0]]).tolist()
        [False, True]
    """

    def __init__(self, k: int = 5, metric: str = "euclidean") -> None:
        self.k = check_int("k", k, low=1)
        self.metric = metric
        self.threshold: float | None = None

    def fit(
        self, normal: Any, *, false_alarm: float = 0.05, held_out: float = 0.2, seed: int = 0
    ) -> AnomalyDetector:
        """Split the normal ``(n, dim)`` embeddings into reference and calibration items and
        set the threshold at ``false_alarm`` on the calibration items."""
        check_number("held_out", held_out, low=0, high=1, open_high=True)
        x = torch.as_tensor(np.asarray(normal, dtype=np.float32))
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        cut = int(round(held_out * len(x)))
        if len(x) - cut < self.k or (held_out > 0 and cut < 1):
            raise ValueError(
                f"{len(x)} normal items are too few to hold out {held_out:.0%} and keep k={self.k} "
                "reference neighbours"
            )
        self.reference_ = x[order[cut:]]
        if cut:
            self.threshold = cutoff(self.score(x[order[:cut]]), false_alarm, higher_passes=True)
        return self

    def score(self, vectors: Any) -> np.ndarray:
        """``(n,)`` anomaly scores: the mean distance to the k nearest reference items."""
        x = torch.as_tensor(np.asarray(vectors, dtype=np.float32))
        k = min(self.k, len(self.reference_))
        found = knn_novelty(x, self.reference_, k=k, metric=self.metric, aggregate="mean")  # type: ignore[arg-type]
        return found.numpy().astype(np.float64)

    def predict(self, vectors: Any) -> np.ndarray:
        """``(n,)`` booleans: the score is above the calibrated threshold."""
        if self.threshold is None:
            raise ValueError("the detector has no threshold: fit it with held_out > 0")
        return self.score(vectors) > self.threshold
