"""Optimisers and schedules against torch's own schedulers and optimiser classes."""

from __future__ import annotations

import pytest
import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR, StepLR

from deepmetric.training import OptimizerOptions, ScheduleOptions, build_optimizer, lr_factor

from .common import proxy_loss, tiny_model


def _torch_factors(make, steps: int) -> list[float]:  # type: ignore[no-untyped-def]
    """The factors a torch scheduler gives over ``steps`` steps (base lr 1)."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = make(optimizer)
    factors = []
    for _ in range(steps):
        factors.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return factors


@pytest.mark.parametrize(("warmup", "total", "floor"), [(3, 20, 0.0), (5, 12, 0.1), (1, 7, 0.0)])
def test_warmup_then_cosine_matches_torch_schedulers(warmup: int, total: int, floor: float) -> None:
    def make(opt):  # type: ignore[no-untyped-def]
        ramp = LinearLR(
            opt, start_factor=1 / warmup, end_factor=1.0, total_iters=max(warmup - 1, 1)
        )
        cosine = CosineAnnealingLR(opt, T_max=total - warmup, eta_min=floor)
        return SequentialLR(opt, [ramp, cosine], milestones=[warmup])

    expected = _torch_factors(make, total)
    options = ScheduleOptions(name="cosine", warmup_steps=warmup, min_lr_ratio=floor)
    ours = [
        lr_factor(s, options=options, steps_per_epoch=5, total_steps=total) for s in range(total)
    ]
    torch.testing.assert_close(torch.tensor(ours), torch.tensor(expected), rtol=1e-6, atol=1e-7)


def test_step_schedule_matches_step_lr() -> None:
    per_epoch, total = 4, 40
    expected = _torch_factors(lambda opt: StepLR(opt, step_size=3 * per_epoch, gamma=0.5), total)
    options = ScheduleOptions(name="step", step_epochs=3, gamma=0.5)
    ours = [
        lr_factor(s, options=options, steps_per_epoch=per_epoch, total_steps=total)
        for s in range(total)
    ]
    torch.testing.assert_close(torch.tensor(ours), torch.tensor(expected))


def test_warmup_in_epochs_and_the_constant_schedule() -> None:
    options = ScheduleOptions(name="constant", warmup_epochs=0.5)
    factors = [lr_factor(s, options=options, steps_per_epoch=8, total_steps=16) for s in range(6)]
    assert factors == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("name", "cls"),
    [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW),
     ("rmsprop", torch.optim.RMSprop)],
)  # fmt: skip
def test_optimizer_names_build_torch_optimizers(name: str, cls: type) -> None:
    optimizer = build_optimizer(tiny_model(), None, OptimizerOptions(name=name))  # type: ignore[arg-type]
    assert type(optimizer) is cls


def test_loss_parameters_get_their_own_learning_rate_and_biases_no_decay() -> None:
    model, loss = tiny_model(), proxy_loss()
    options = OptimizerOptions(lr=1e-3, loss_lr=0.1, weight_decay=0.01)
    groups = {g["name"]: g for g in build_optimizer(model, loss, options).param_groups}
    assert {g["lr"] for n, g in groups.items() if n.startswith("model")} == {1e-3}
    assert groups["loss"]["lr"] == 0.1
    assert [p is loss.proxies for p in groups["loss"]["params"]] == [True]
    decayed = {id(p) for n, g in groups.items() if g["weight_decay"] == 0.01 for p in g["params"]}
    expected = {id(p) for p in [*model.parameters(), *loss.parameters()] if p.dim() >= 2}
    assert decayed == expected
    every = [p for g in groups.values() for p in g["params"]]
    assert len(every) == len({id(p) for p in every}) == len([*model.parameters(), loss.proxies])


def test_a_plain_sgd_step_uses_the_group_rates() -> None:
    """One SGD step without momentum or decay moves each parameter by ``-lr * grad``."""
    model, loss = tiny_model(), proxy_loss()
    options = OptimizerOptions(name="sgd", lr=0.01, loss_lr=1.0, momentum=0.0, weight_decay=0.0)
    optimizer = build_optimizer(model, loss, options)
    before = [p.detach().clone() for p in [*model.parameters(), loss.proxies]]
    x, labels = torch.randn(10, 64), torch.arange(10) % 5
    loss(model(x), labels).backward()
    grads = [p.grad.clone() for p in [*model.parameters(), loss.proxies]]  # type: ignore[union-attr]
    optimizer.step()
    rates = [0.01] * (len(before) - 1) + [1.0]
    after = [p.detach() for p in [*model.parameters(), loss.proxies]]
    for old, new, grad, rate in zip(before, after, grads, rates, strict=True):
        torch.testing.assert_close(new, old - rate * grad)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_fused_optimizers_take_the_same_steps_as_the_plain_ones(name: str) -> None:
    # the fused kernel is the default where torch has one; its update is the textbook one
    model, plain = tiny_model(), tiny_model()
    plain.load_state_dict(model.state_dict())
    options = OptimizerOptions(name=name, lr=0.01, weight_decay=0.0)  # type: ignore[arg-type]
    fused = build_optimizer(model, None, options)
    assert all(group["fused"] for group in fused.param_groups)
    extra = {"momentum": options.momentum} if name == "sgd" else {}
    reference = type(fused)(plain.parameters(), lr=0.01, weight_decay=0.0, **extra)
    x = torch.randn(10, 64)
    target = torch.randn_like(model(x))
    for _ in range(3):
        for net, optimizer in ((model, fused), (plain, reference)):
            optimizer.zero_grad()
            (net(x) * target).sum().backward()
            optimizer.step()
    for a, b in zip(model.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a, b)
