"""Cross-batch memory against a list-based reference of the same semantics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepmetric.losses.contrastive import ContrastiveLoss
from deepmetric.losses.ntxent import NTXentLoss
from deepmetric.losses.triplet import TripletMarginLoss
from deepmetric.losses.xbm import CrossBatchMemory
from deepmetric.tuples import all_triplets
from tests.helpers import batch, value_and_grad
from tests.reference import ssl_losses as ref

INNER = {
    "contrastive": lambda: ContrastiveLoss(pos_margin=0.2, neg_margin=2.0),
    "triplet": lambda: TripletMarginLoss(margin=0.5, reduction="sum"),
    "ntxent": lambda: NTXentLoss(temperature=0.5),
}


def _batches(steps: int, n: int = 5) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [batch(n=n, dim=4, classes=3, seed=step) for step in range(steps)]


@pytest.mark.parametrize("name", sorted(INNER))
def test_matches_reference_over_steps_with_wraparound(name: str) -> None:
    inner = INNER[name]()
    xbm = CrossBatchMemory(inner, embedding_dim=4, memory_size=12, weight=0.7).double()
    oracle = ref.Memory(inner, size=12, weight=0.7)
    # 35 items through 12 slots; each backward runs after the forward overwrote the memory
    for step, (x, y) in enumerate(_batches(7)):
        ours_value, ours_grad = value_and_grad(lambda e, y=y: xbm(e, y), x)
        ref_value, ref_grad = value_and_grad(lambda e, y=y: oracle(e, y), x)
        torch.testing.assert_close(ours_value, ref_value)
        torch.testing.assert_close(ours_grad, ref_grad)
        assert len(xbm) == min(5 * (step + 1), 12)
    assert int(xbm.pointer) == 35 % 12


def test_empty_memory_gives_the_batch_term_only() -> None:
    x, y = batch(n=6, dim=4, classes=2)
    inner = ContrastiveLoss()
    xbm = CrossBatchMemory(inner, embedding_dim=4, memory_size=8).double()
    torch.testing.assert_close(xbm(x, y), inner(x, y))
    xbm.reset()
    assert len(xbm) == 0 and int(xbm.pointer) == 0
    torch.testing.assert_close(xbm(x, y), inner(x, y))


def test_no_gradient_flows_into_the_memory() -> None:
    (x1, y1), (x2, y2) = _batches(2)
    x1, x2 = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
    xbm = CrossBatchMemory(ContrastiveLoss(), embedding_dim=4, memory_size=10).double()
    xbm(x1, y1)
    assert not xbm.memory.requires_grad
    grad1, grad2 = torch.autograd.grad(xbm(x2, y2), [x1, x2], allow_unused=True)
    assert grad1 is None and grad2 is not None


def test_state_dict_round_trip() -> None:
    steps = _batches(3)
    xbm = CrossBatchMemory(NTXentLoss(), embedding_dim=4, memory_size=7).double()
    for x, y in steps[:2]:
        xbm(x, y)
    state = xbm.state_dict()
    assert {"memory", "memory_labels", "pointer", "filled"} <= set(state)
    copy = CrossBatchMemory(NTXentLoss(), embedding_dim=4, memory_size=7).double()
    copy.load_state_dict(state)
    assert len(copy) == 7 and int(copy.pointer) == 10 % 7
    x, y = steps[2]
    torch.testing.assert_close(copy(x, y), xbm(x, y))


def test_buffers_follow_dtype_and_compare_in_the_embeddings_dtype() -> None:
    xbm = CrossBatchMemory(ContrastiveLoss(), embedding_dim=4, memory_size=6)
    assert xbm.memory.dtype == torch.float32
    x, y = batch(n=4, dim=4, classes=2)  # float64 embeddings against float32 storage
    xbm(x, y)
    assert xbm(x, y).dtype == torch.float64
    assert xbm.double().memory.dtype == torch.float64 and xbm.memory_labels.dtype == torch.long


def test_eval_mode_reads_but_does_not_enqueue() -> None:
    (x1, y1), (x2, y2) = _batches(2)
    xbm = CrossBatchMemory(ContrastiveLoss(), embedding_dim=4, memory_size=10).double()
    xbm(x1, y1)
    xbm.eval()
    inner = ContrastiveLoss()
    expected = inner(x2, y2) + inner(x2, y2, ref_embeddings=x1, ref_labels=y1)
    torch.testing.assert_close(xbm(x2, y2), expected)
    assert len(xbm) == 5


def test_batch_larger_than_memory_keeps_its_last_items() -> None:
    x, y = batch(n=9, dim=4, classes=3)
    xbm = CrossBatchMemory(ContrastiveLoss(), embedding_dim=4, memory_size=4).double()
    xbm(x, y)
    torch.testing.assert_close(xbm.memory, x[-4:])
    assert torch.equal(xbm.memory_labels, y[-4:])


def test_mined_indices_go_to_the_batch_term_only() -> None:
    (x1, y1), (x2, y2) = _batches(2, n=8)
    inner = TripletMarginLoss(margin=0.5)
    xbm = CrossBatchMemory(inner, embedding_dim=4, memory_size=10, weight=2.0).double()
    xbm(x1, y1)
    trip = all_triplets(y2)
    expected = inner(x2, y2, indices=trip) + 2.0 * inner(x2, y2, ref_embeddings=x1, ref_labels=y1)
    torch.testing.assert_close(xbm(x2, y2, indices=trip), expected)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match=r"memory_size must be an integer >= 1; got 0"):
        CrossBatchMemory(ContrastiveLoss(), embedding_dim=4, memory_size=0)
    with pytest.raises(ValueError, match=r"embedding_dim must be an integer >= 1; got 2.5"):
        CrossBatchMemory(ContrastiveLoss(), embedding_dim=2.5, memory_size=8)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"weight must be >= 0; got -1.0"):
        CrossBatchMemory(ContrastiveLoss(), embedding_dim=4, memory_size=8, weight=-1.0)
    with pytest.raises(ValueError, match=r"loss reduction must be 'mean' or 'sum'; got 'none'"):
        CrossBatchMemory(ContrastiveLoss(reduction="none"), embedding_dim=4, memory_size=8)
    with pytest.raises(TypeError, match=r"loss must be an nn.Module; got function"):
        CrossBatchMemory(lambda e, y: e.sum(), embedding_dim=4, memory_size=8)  # type: ignore[arg-type]
    xbm = CrossBatchMemory(ContrastiveLoss(), embedding_dim=4, memory_size=8)
    with pytest.raises(ValueError, match=r"embeddings must have dim 4 \(embedding_dim\); got 3"):
        xbm(torch.randn(5, 3), torch.zeros(5, dtype=torch.long))


def test_is_a_module_not_a_registered_loss() -> None:
    from deepmetric.losses._common import LOSSES

    assert isinstance(CrossBatchMemory(ContrastiveLoss(), 4, 8), nn.Module)
    assert "xbm" not in LOSSES and "cross_batch_memory" not in LOSSES
