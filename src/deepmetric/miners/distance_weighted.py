"""Distance-weighted negative sampling (Wu, Manmatha, Smola & Krähenbühl 2017)."""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_number
from ..distances import euclidean_distance
from ..tuples import Triplets, label_masks
from ._common import MINERS, Miner, empty_triplets, row_ranks


def distance_weighted_probabilities(
    dist: Tensor, neg: Tensor, dim: int, cutoff: float, nonzero_loss_cutoff: float
) -> Tensor:
    """``(n, m)`` probabilities of drawing each negative: ``∝ 1 / q(max(d, cutoff))``.

    ``q(d) ∝ d^(dim-2) (1 - d²/4)^((dim-3)/2)`` is the density of the distance between two
    uniform points on the unit sphere in ``R^dim``. Negatives at ``d >= nonzero_loss_cutoff`` (no
    loss) get 0. Computed in log space and normalised per row against the row maximum, so the
    huge powers of high dimensions never overflow. A row without an admissible negative is all 0.

    Args:
        dist: ``(n, m)`` euclidean distances between unit vectors.
        neg: ``(n, m)`` boolean mask of negative pairs.
    """
    tiny = torch.finfo(dist.dtype).tiny
    d = dist.clamp_min(cutoff)
    # log(1 / q(d)); the clamp guards log(0) at d = 2 (antipodal points)
    log_w = (2.0 - dim) * d.log() - (dim - 3.0) / 2.0 * (1.0 - d * d / 4.0).clamp_min(tiny).log()
    log_w = log_w.masked_fill(~(neg & (d < nonzero_loss_cutoff)), -torch.inf)
    row_max = log_w.amax(dim=1, keepdim=True)
    weights = (log_w - torch.where(torch.isinf(row_max), 0.0, row_max)).exp()
    return weights / weights.sum(dim=1, keepdim=True).clamp_min(tiny)


def _check_unit_norm(name: str, emb: Tensor) -> None:
    if emb.shape[0] == 0:
        return
    tol = max(1e-3, 4 * torch.finfo(emb.dtype).eps)
    norms = emb.norm(dim=1)
    if float((norms - 1).abs().max()) > tol:
        raise ValueError(
            f"{name} must have unit L2 norm for distance-weighted sampling (its distribution is "
            f"defined on the unit sphere); got norms in [{float(norms.min()):.4g}, "
            f"{float(norms.max()):.4g}]; normalise with torch.nn.functional.normalize(x, dim=1)"
        )


@MINERS.register("distance_weighted")
class DistanceWeightedMiner(Miner):
    """For each positive pair, one negative drawn with probability ``∝ 1 / q(d(a, n))``.

    On the unit sphere in ``R^dim`` random pairs concentrate at distance ``√2`` with density
    ``q(d) ∝ d^(dim-2) (1 - d²/4)^((dim-3)/2)``; weighting by ``1 / q`` spreads the drawn
    negatives over all distances. ``d`` is clamped below at ``cutoff`` (against the variance of
    very close negatives) and negatives at ``d >= nonzero_loss_cutoff`` are never drawn.

    Paper: "Sampling Matters in Deep Embedding Learning", Wu et al., ICCV 2017
    (arXiv:1706.07567).

    The distribution is defined for euclidean distances between unit vectors, so there is no
    ``metric``, and embeddings off the unit sphere raise ``ValueError`` (nothing is normalised
    for you). Draws come from the miner's own ``torch.Generator`` seeded with ``seed`` (one per
    device, advancing from call to call), never from the global RNG.

    Differences from pytorch-metric-learning's ``DistanceWeightedMiner``: every positive pair
    ``(a, p)`` is used once (PML draws positives at random, with replacement), and the weights
    are normalised per anchor rather than against the batch maximum (the same distribution,
    without underflow to all-zero rows).

    Args:
        cutoff: lower clamp of the distance, ``> 0``.
        nonzero_loss_cutoff: negatives at this distance or beyond are never drawn; in
            ``(cutoff, 2]``.
        seed: seed of the miner's generator.

    Shapes: ``embeddings (batch, dim)``, ``labels (batch,)``; returns ``Triplets`` of ``(k,)``
    int64 tensors, one per positive pair, row-major. An anchor with no negative closer than
    ``nonzero_loss_cutoff`` contributes nothing.

    Example:
        >>> x = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.2], [0.6, 0.8]]))
        >>> DistanceWeightedMiner(seed=0)(x, torch.tensor([0, 0, 1]))
        Triplets(a=tensor([0, 1]), p=tensor([1, 0]), n=tensor([2, 2]))
    """

    def __init__(
        self, cutoff: float = 0.5, nonzero_loss_cutoff: float = 1.4, seed: int = 0
    ) -> None:
        super().__init__()
        check_number("cutoff", cutoff, low=0.0, strict=True)
        check_number("nonzero_loss_cutoff", nonzero_loss_cutoff, low=cutoff, strict=True)
        if nonzero_loss_cutoff > 2.0:
            raise ValueError(
                "nonzero_loss_cutoff must be <= 2 (distances between unit vectors lie in "
                f"[0, 2]); got {nonzero_loss_cutoff!r}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int; got {seed!r}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0; got {seed!r}")
        self.cutoff, self.nonzero_loss_cutoff, self.seed = cutoff, nonzero_loss_cutoff, seed
        self._generators: dict[torch.device, torch.Generator] = {}

    def _generator(self, device: torch.device) -> torch.Generator:
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[device]

    def mine(
        self, embeddings: Tensor, labels: Tensor, ref: Tensor, ref_labels: Tensor, is_self: bool
    ) -> Triplets:
        _check_unit_norm("embeddings", embeddings)
        if not is_self:
            _check_unit_norm("ref_embeddings", ref)
        # at least float32: the log-weights of high dimensions need the range
        work = torch.promote_types(torch.promote_types(embeddings.dtype, ref.dtype), torch.float32)
        embeddings, ref = embeddings.to(work), ref.to(work)
        if embeddings.shape[0] == 0 or ref.shape[0] == 0:
            return empty_triplets(labels.device)
        pos, neg = label_masks(labels, ref_labels, is_self)
        dist = euclidean_distance(embeddings, ref)
        probs = distance_weighted_probabilities(
            dist, neg, embeddings.shape[1], self.cutoff, self.nonzero_loss_cutoff
        )
        usable = pos.any(dim=1) & (probs.sum(dim=1) > 0)  # (n,) anchors that can draw
        if not bool(usable.any()):
            return empty_triplets(labels.device)
        a, p = (pos & usable[:, None]).nonzero(as_tuple=True)  # row-major positive pairs
        rank, per_row = row_ranks(a, pos.shape[0])
        draws = torch.multinomial(
            torch.where(usable[:, None], probs, 1.0),  # unusable rows: drawn from, never read
            int(per_row.max()),
            replacement=True,
            generator=self._generator(dist.device),
        )  # (n, max positives): enough draws for every positive pair of each anchor
        return Triplets(a, p, draws[a, rank])
