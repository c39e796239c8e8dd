"""Two gloo processes on CPU against one process on the concatenated batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from deepmetric.losses import build as build_loss
from deepmetric.miners import build as build_miner
from deepmetric.training import all_gather_with_grad, gather_batch, train
from deepmetric.training.distributed import wrap_model

from .common import digits, options, proxy_loss, tiny_model

WORLD = 2
BATCH = 16


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(5)
    return torch.randn(BATCH, 64, generator=gen), torch.arange(BATCH) % 4


def _step(
    model: torch.nn.Module, proxies: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Forward on this rank's rows, the loss and the miner on the global batch, backward."""
    embeddings, all_labels = gather_batch(model(x), labels)
    triplet = build_loss({"name": "triplet", "margin": 0.5})
    indices = build_miner({"name": "semi_hard", "margin": 0.5})(embeddings, all_labels)
    value = triplet(embeddings, all_labels, indices=indices) + proxies(embeddings, all_labels)
    value.backward()
    return value.detach()


def _grads(model: torch.nn.Module, proxies: torch.nn.Module) -> dict[str, torch.Tensor]:
    named = [*model.named_parameters(), *(("proxy." + k, v) for k, v in proxies.named_parameters())]
    return {name: param.grad.clone() for name, param in named if param.grad is not None}


def _uneven_gather(rank: int) -> dict[str, torch.Tensor]:
    """Rank 0 holds 5 rows and rank 1 holds 3: gather, then backward a weighted sum."""
    rows = 5 if rank == 0 else 3
    local = (torch.arange(rows * 2.0).reshape(rows, 2) + 100 * rank).requires_grad_(True)
    gathered = all_gather_with_grad(local)
    weight = torch.arange(16.0).reshape(8, 2)
    (gathered * weight).sum().backward()
    return {"gathered": gathered.detach(), "grad": local.grad.clone()}  # type: ignore[union-attr]


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    try:
        model, proxies = tiny_model(), proxy_loss()
        x, labels = _batch()
        share = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
        net = wrap_model(model, torch.device("cpu"), find_unused=False)
        value = _step(net, proxies, x[share], labels[share])
        out = {"loss": value, **_grads(model, proxies), **_uneven_gather(rank)}
        trained = tiny_model()
        result = train(trained, digits(), loss=proxy_loss(), options=options(epochs=1),
                       out_dir=Path(out_dir) / "run")  # fmt: skip
        out["steps"] = torch.tensor(result.steps)
        out.update({f"trained.{k}": v for k, v in trained.state_dict().items()})
        torch.save(out, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, torch.Tensor]]:
    """What each of the two processes computed."""
    folder = tmp_path_factory.mktemp("distributed")
    mp.spawn(_worker, args=(str(folder / "init"), str(folder)), nprocs=WORLD, join=True)
    return [torch.load(folder / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


def test_two_gloo_processes_match_one_process_on_the_concatenated_batch(ranks) -> None:  # type: ignore[no-untyped-def]
    model, proxies = tiny_model(), proxy_loss()
    x, labels = _batch()
    expected_loss = _step(model, proxies, x, labels)
    expected = _grads(model, proxies)
    assert len(expected) == len(list(model.parameters())) + 1
    for out in ranks:
        torch.testing.assert_close(out["loss"], expected_loss, rtol=1e-6, atol=1e-7)
        for name, grad in expected.items():
            torch.testing.assert_close(out[name], grad, rtol=1e-5, atol=1e-7, msg=name)


def test_the_gather_handles_uneven_shares_and_sums_gradients(ranks) -> None:  # type: ignore[no-untyped-def]
    expected = torch.cat([torch.arange(10.0).reshape(5, 2), torch.arange(6.0).reshape(3, 2) + 100])
    weight = torch.arange(16.0).reshape(8, 2)
    for rank, out in enumerate(ranks):
        assert torch.equal(out["gathered"], expected)
        rows = slice(0, 5) if rank == 0 else slice(5, 8)
        assert torch.equal(out["grad"], WORLD * weight[rows])  # DDP's average then gives weight


def test_train_under_two_processes_shares_each_batch_and_keeps_ranks_in_step(ranks) -> None:  # type: ignore[no-untyped-def]
    single = train(tiny_model(), digits(), loss=proxy_loss(), options=options(epochs=1))
    assert all(int(out["steps"]) == single.steps for out in ranks)  # each rank: a slice a step
    trained = [k for k in ranks[0] if k.startswith("trained.")]
    assert trained and all(torch.equal(ranks[0][k], ranks[1][k]) for k in trained)
