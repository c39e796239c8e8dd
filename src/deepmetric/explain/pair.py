"""Why two inputs are similar: exact spatial decompositions and integrated gradients.

**Exact** (``method="exact"``): an ``Embedder`` that average-pools its feature map and then
applies an affine head (a linear projection, an eval-mode BatchNorm neck, or nothing) makes
each embedding a sum over spatial positions, ``e = sum_i g_i`` with ``g_i = head(f_i) / P``.
A similarity of two embeddings then splits into a sum over pairs of positions,
``s(a, b) = sum_ij c(i, j)`` (Stylianou, Souvenir & Pless, "Visualizing Deep Similarity
Networks", WACV 2019, https://arxiv.org/abs/1901.00536):

- cosine (and dot on normalised models): ``c(i, j) = <g_i, g_j> / (|e_a| |e_b|)``;
- dot: ``c(i, j) = <g_i, g_j>``;
- euclidean and squared euclidean explain ``-|e_a - e_b|^2``, which ranks the same:
  ``c(i, j) = 2 <g_i, g_j> - <g_i, e_a> / P_b - <g_j, e_b> / P_a``.

Each image's map is a marginal of ``c`` and sums to the similarity; the largest ``c(i, j)``
are correspondences, which part of A matched which part of B. One forward pass, so it costs
what embedding the pair costs.

**Gradient** (``method="gradient"``): integrated gradients of ``s(a, b)`` with respect to
each input, the other held fixed, from a baseline input (zeros: the mean image for inputs
standardised by the data set's mean), Sundararajan, Taly & Yan, ICML 2017,
https://arxiv.org/abs/1703.01365. Any pooling, any head, vectors as well as images. The
attributions of A sum to ``s(a, b) - s(baseline, b)`` up to the quadrature error, which the
result reports as ``completeness_error``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import Tensor, nn

from .._checks import check_choice, check_int
from ..distances import paired
from ..models import Embedder

Method = Literal["auto", "exact", "gradient"]
METHODS = ("auto", "exact", "gradient")
ExplainMetric = Literal["cosine", "dot", "euclidean", "squared_euclidean"]
EXPLAINED = {
    "cosine": "cosine similarity",
    "dot": "dot product",
    "euclidean": "negative squared euclidean distance",
    "squared_euclidean": "negative squared euclidean distance",
}


class NoSpatialMapError(ValueError):
    """The exact method does not apply to this model (its message names the reason)."""


@dataclasses.dataclass(frozen=True)
class PairExplanation:
    """Where the similarity of a pair comes from.

    Attributes:
        score: the model's own score of the pair under ``metric`` (a distance for the
            euclidean metrics, a similarity otherwise).
        explained: the value the maps decompose: the similarity, or ``-distance**2``.
        map_a, map_b: contributions per position of A and of B: ``(h, w)`` feature-map cells
            (exact), input pixels (gradient, summed over channels), or ``(features,)`` for
            vector inputs.
        pairs: ``(h_a * w_a, h_b * w_b)`` contributions of each pair of cells (exact only).
        input_shape_a, input_shape_b: the spatial size of each input, to place the maps.
        method: ``"exact"`` or ``"gradient"``.
        metric: the metric of ``score``.
        baseline_a, baseline_b: ``explained`` with A (or B) replaced by the baseline; 0 for
            the exact method, whose maps account for all of it.
        completeness_error: ``|sum(map) - (explained - baseline)|``, the larger of A's and B's.
        steps: integration steps (gradient), 0 for exact.
    """

    score: float
    explained: float
    map_a: np.ndarray
    map_b: np.ndarray
    pairs: np.ndarray | None
    input_shape_a: tuple[int, ...]
    input_shape_b: tuple[int, ...]
    method: str
    metric: str
    baseline_a: float = 0.0
    baseline_b: float = 0.0
    completeness_error: float = 0.0
    steps: int = 0

    @property
    def accounted(self) -> float:
        """The share of what there is to explain that A's map holds: of ``explained`` for the
        exact method (1.0), of ``explained - baseline_a`` for the gradient method (1.0 up to
        the integration error)."""
        target = self.explained - self.baseline_a
        return 1.0 if target == 0 else float(self.map_a.sum() / target)

    def correspondences(
        self, k: int = 5
    ) -> list[tuple[tuple[float, float], tuple[float, float], float]]:
        """The ``k`` strongest positive cell pairs as ``((y_a, x_a), (y_b, x_b), c)``, in input
        pixel coordinates of each image (cell centres); empty for the gradient method."""
        if self.pairs is None:
            return []
        flat = self.pairs.ravel()
        order = np.argsort(-flat, kind="stable")[: check_int("k", k, low=0)]
        (ha, wa), (hb, wb) = self.map_a.shape, self.map_b.shape
        out = []
        for index in order:
            if flat[index] <= 0:
                break
            i, j = divmod(int(index), self.pairs.shape[1])
            out.append(
                (
                    _centre(divmod(i, wa), (ha, wa), self.input_shape_a),
                    _centre(divmod(j, wb), (hb, wb), self.input_shape_b),
                    float(flat[index]),
                )
            )
        return out

    def summary(self) -> dict[str, Any]:
        """The numbers as a JSON-ready dict (no maps)."""
        return {
            "score": self.score,
            "metric": self.metric,
            "explained": EXPLAINED[self.metric],
            "explained_value": self.explained,
            "method": self.method,
            "accounted": self.accounted,
            "completeness_error": self.completeness_error,
            "baseline_a": self.baseline_a,
            "baseline_b": self.baseline_b,
            "steps": self.steps,
            "map_shape_a": list(self.map_a.shape),
            "map_shape_b": list(self.map_b.shape),
        }


def _centre(
    cell: tuple[int, int], grid: tuple[int, int], size: tuple[int, ...]
) -> tuple[float, float]:
    (row, col), (h, w) = cell, grid
    return ((row + 0.5) * size[0] / h, (col + 0.5) * size[1] / w)


def spatial_terms(model: nn.Module, inputs: Tensor) -> tuple[Tensor, tuple[int, int]]:
    """``((n, P, D) terms g_i, (h, w))``: per-position terms whose sum over the ``P = h * w``
    cells of the feature map is the embedding before normalisation, for an eval-mode
    ``Embedder`` with average pooling and an affine head.

    Raises:
        NoSpatialMapError: the model is not such an embedder (the message says which part),
            so the similarity does not decompose exactly; use ``method="gradient"``.
    """
    reason = _not_decomposable(model)
    if reason:
        raise NoSpatialMapError(
            f"{reason}, so the exact map does not apply; use the gradient method"
        )
    embedder = cast(Embedder, model)
    features = embedder.forward_features(inputs)
    if features.dim() != 4:
        raise NoSpatialMapError(
            "the backbone returns vectors, not a spatial map, so the exact map does not apply; "
            "use the gradient method"
        )
    n, channels, height, width = features.shape
    cells = features.flatten(2).transpose(1, 2).reshape(n * height * width, channels)
    head = embedder.neck_bn(embedder.projection(cells))
    return head.reshape(n, height * width, -1) / (height * width), (int(height), int(width))


def _not_decomposable(model: nn.Module) -> str:
    config = getattr(model, "config", None)
    if config is None or not hasattr(model, "forward_features"):
        return f"a {type(model).__name__} is not a deepmetric Embedder"
    if model.training:
        return "the model is in training mode (call model.eval())"
    if config.pooling != "avg":
        return f"the model pools with {config.pooling!r}, not average pooling"
    if config.projection == "mlp":
        return "the model's projection is an MLP, not linear"
    return ""


def _pair_terms(ga: Tensor, gb: Tensor, metric: str, normalize: bool) -> tuple[Tensor, Tensor]:
    """``(c, explained)``: the ``(P_a, P_b)`` decomposition of one pair and its total."""
    ea, eb = ga.sum(0), gb.sum(0)
    if normalize or metric == "cosine":
        ga, gb = ga / ea.norm().clamp_min(1e-12), gb / eb.norm().clamp_min(1e-12)
        ea, eb = ga.sum(0), gb.sum(0)
    cross = ga @ gb.T
    if metric in ("cosine", "dot"):
        return cross, ea @ eb
    own_a = (ga @ ea)[:, None] / gb.shape[0]
    own_b = (gb @ eb)[None, :] / ga.shape[0]
    return 2 * cross - own_a - own_b, -(ea - eb).square().sum()


def _score(ea: Tensor, eb: Tensor, metric: str) -> Tensor:
    """The model's score of the rows of ``ea`` against ``eb`` (one row, or as many)."""
    ea, eb = ea.reshape(-1, ea.shape[-1]), eb.reshape(-1, eb.shape[-1])
    return paired(ea, eb.expand_as(ea), metric)  # type: ignore[arg-type]


def _explained(ea: Tensor, eb: Tensor, metric: str) -> Tensor:
    """The value the maps decompose: the score, or ``-distance**2`` for euclidean metrics."""
    if metric in ("cosine", "dot"):
        return _score(ea, eb, metric)
    return -_score(ea, eb, "squared_euclidean")


def explain_pairs(
    model: nn.Module,
    query: Tensor,
    others: Tensor,
    *,
    metric: ExplainMetric = "cosine",
    method: Method = "auto",
    steps: int = 32,
    baseline: Tensor | None = None,
) -> list[PairExplanation]:
    """Explain the similarity of one input to each of several: ``[query vs others[k]]``.

    Args:
        model: an embedder; the exact method needs a deepmetric ``Embedder`` with average
            pooling and a linear (or no) projection, in eval mode.
        query: one input as the model takes it, with or without the batch axis
            (``(C, H, W)``, ``(1, C, H, W)``, or ``(F,)`` for vectors).
        others: a batch of inputs ``(m, ...)``.
        metric: how the model's embeddings are compared.
        method: ``"exact"``, ``"gradient"``, or ``"auto"``: exact where it applies and the
            feature map has more than one cell, gradient otherwise.
        steps: integration steps of the gradient method.
        baseline: the gradient method's reference input, one item (default: zeros).

    Raises:
        NoSpatialMapError: ``method="exact"`` on a model it does not apply to.
        ValueError: bad metric, method, steps or shapes.
    """
    check_choice("metric", metric, tuple(EXPLAINED))
    check_choice("method", method, METHODS)
    check_int("steps", steps, low=1)
    if not isinstance(query, Tensor) or not isinstance(others, Tensor):
        raise TypeError(
            "explain_pairs takes tensors of images or vectors; text inputs are not explained "
            f"(got {type(query).__name__} and {type(others).__name__})"
        )
    query = query[None] if query.dim() == others.dim() - 1 else query
    if query.shape[0] != 1 or query.dim() != others.dim() or query.shape[1] != others.shape[1]:
        raise ValueError(
            f"the inputs do not match: one query {tuple(query.shape)} against a batch "
            f"{tuple(others.shape)}; give one item and a batch of items of the same kind"
        )
    param = next(model.parameters(), None)
    if param is not None:
        query, others = query.to(param), others.to(param)
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        if method != "gradient":
            try:
                found = _exact(model, query, others, metric, one_cell=method == "exact")
            except NoSpatialMapError:
                if method == "exact":
                    raise
                found = None
            if found is not None:
                return found
        return [_gradient(model, query, other[None], metric, steps, baseline) for other in others]
    finally:
        for module, training in modes:
            module.training = training


def explain_pair(model: nn.Module, a: Tensor, b: Tensor, **options: Any) -> PairExplanation:
    """Explain the similarity of two inputs (one item each); see :func:`explain_pairs`.

    Example:
        >>> from deepmetric.models import Embedder
        >>> model = Embedder({"backbone": {"name": "conv4", "channels": 8, "num_blocks": 2},
        ...                   "embedding_dim": 4}).eval()
        >>> a, b = torch.rand(2, 3, 16, 16)
        >>> e = explain_pair(model, a, b)
        >>> e.method, e.map_a.shape, bool(abs(e.pairs.sum() - e.score) < 1e-5)
        ('exact', (4, 4), True)
    """
    return explain_pairs(model, a, b[None] if b.dim() == a.dim() else b, **options)[0]


@torch.inference_mode()
def _exact(
    model: nn.Module, query: Tensor, others: Tensor, metric: str, one_cell: bool
) -> list[PairExplanation] | None:
    """One forward pass (two when the sizes differ): every pair from the per-cell terms; None
    when the query's map is one cell and ``one_cell`` is false (nothing to localise)."""
    if query.shape[1:] == others.shape[1:]:
        terms, grid = spatial_terms(model, torch.cat([query, others]))
        (terms_q, grid_q), (terms_o, grid_o) = (terms[:1], grid), (terms[1:], grid)
    else:
        (terms_q, grid_q), (terms_o, grid_o) = (
            spatial_terms(model, query),
            spatial_terms(model, others),
        )
    if grid_q == (1, 1) and not one_cell:
        return None
    normalize = bool(getattr(model, "normalize", False))
    embedded = torch.cat([terms_q.sum(1), terms_o.sum(1)])
    if normalize:
        embedded = nn.functional.normalize(embedded, dim=1)
    out = []
    for k in range(len(others)):
        c, explained = _pair_terms(terms_q[0].double(), terms_o[k].double(), metric, normalize)
        out.append(
            PairExplanation(
                score=float(_score(embedded[0], embedded[k + 1], metric)[0]),
                explained=float(explained),
                map_a=c.sum(1).reshape(grid_q).numpy(), map_b=c.sum(0).reshape(grid_o).numpy(),
                pairs=c.numpy(), input_shape_a=tuple(query.shape[2:]),
                input_shape_b=tuple(others.shape[2:]), method="exact", metric=metric,
                completeness_error=abs(float(c.sum() - explained)),
            )
        )  # fmt: skip
    return out


def _gradient(
    model: nn.Module, a: Tensor, b: Tensor, metric: str, steps: int, baseline: Tensor | None
) -> PairExplanation:
    with torch.inference_mode():
        ea, eb = model(torch.cat([a, b]) if a.shape == b.shape else a), None
        if a.shape == b.shape:
            ea, eb = ea[:1], ea[1:]
        else:
            eb = model(b)
    score, explained = _score(ea, eb, metric)[0], _explained(ea, eb, metric)[0]
    map_a, base_a, error_a = _integrated(model, a, eb, metric, steps, baseline)
    map_b, base_b, error_b = _integrated(model, b, ea, metric, steps, baseline)
    return PairExplanation(
        score=float(score), explained=float(explained), map_a=map_a, map_b=map_b, pairs=None,
        input_shape_a=tuple(a.shape[2:]), input_shape_b=tuple(b.shape[2:]), method="gradient",
        metric=metric, baseline_a=base_a, baseline_b=base_b,
        completeness_error=max(error_a, error_b), steps=steps,
    )  # fmt: skip


def _integrated(
    model: nn.Module, x: Tensor, other: Tensor, metric: str, steps: int, baseline: Tensor | None
) -> tuple[np.ndarray, float, float]:
    """``(map, explained at the baseline, completeness error)`` of ``x`` against the fixed
    embedding ``other``: midpoint-rule integrated gradients, all steps in one batch."""
    if not x.is_floating_point():
        raise ValueError("the gradient method needs float inputs (images or vectors)")
    start = torch.zeros_like(x) if baseline is None else baseline.reshape(x.shape).to(x)
    alphas = (torch.arange(steps, dtype=x.dtype, device=x.device) + 0.5) / steps
    path = (start + alphas.view(-1, *[1] * (x.dim() - 1)) * (x - start)).requires_grad_(True)
    with torch.enable_grad():
        values = _explained(model(path), other, metric)
        (grads,) = torch.autograd.grad(values.sum(), path)
    attributions = ((x - start) * grads.mean(0, keepdim=True))[0].detach()
    with torch.inference_mode():
        ends = _explained(model(torch.cat([start, x])), other, metric)
    base, total = float(ends[0]), float(ends[1])
    cells = attributions.sum(0) if attributions.dim() == 3 else attributions
    error = abs(float(attributions.sum()) - (total - base))
    return cells.double().cpu().numpy(), base, error


__all__ = [
    "EXPLAINED",
    "METHODS",
    "ExplainMetric",
    "Method",
    "NoSpatialMapError",
    "PairExplanation",
    "explain_pair",
    "explain_pairs",
    "spatial_terms",
]
