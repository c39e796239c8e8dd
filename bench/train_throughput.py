"""Images per second of ``deepmetric.training.train`` against a minimal hand-written
pytorch-metric-learning (PML) loop, with the same model, loss, optimiser, batch and data.

    python bench/train_throughput.py [DATA.npz] [--steps 60] [--batch-size 64] [--threads 2]
        [--backbone conv4|resnet18]

Data: Omniglot 28x28 drawings (``omniglot28_background.npz`` from the shared data folder), or
random 28x28 images with 20 per class when no file is given. Model: ``Embedder(conv4 with 32
channels, 64-d)``, or ResNet-18 (64-d); loss: triplet margin 0.2 over all triplets of the
batch; AdamW. Both loops take m=4 images per class. The PML loop is what its examples do:
PML's ``MPerClassSampler`` with a ``DataLoader`` over a ``TensorDataset`` of float images, then
forward, loss, backward, step. Ours runs ``train`` for one epoch of the same number of steps,
with its default per-step work (monitor on every 10th batch, checks, schedule), once as it
comes (the memory layout the backbone prefers: channels-last for conv4, contiguous for
ResNet-18) and once with the other layout. A last loop runs the model's forward and backward
alone, in the layout ``train`` picks (no loss, no optimiser): no loop with the same model can
beat PML's by more than that one does. Each loop runs twice, alternating, after a warm-up; the
better run of each is reported with the share of its time spent waiting for data.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np  # noqa: E402
import torch  # noqa: E402
from pytorch_metric_learning import losses as pml_losses  # noqa: E402
from pytorch_metric_learning import samplers as pml_samplers  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from deepmetric.data import ArrayDataset  # noqa: E402
from deepmetric.losses import build as build_loss  # noqa: E402
from deepmetric.models import Embedder, EmbedderConfig  # noqa: E402
from deepmetric.training import (  # noqa: E402
    OptimizerOptions,
    RuntimeOptions,
    SamplerOptions,
    ScheduleOptions,
    TrainOptions,
    train,
)

M = 4


def load(path: Path | None, steps: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (n, 28, 28), labels)`` with about ``steps`` batches' worth of classes."""
    classes = steps * batch_size // 20
    if path is None:
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (classes * 20, 28, 28), dtype=np.uint8), np.repeat(
            np.arange(classes), 20
        )
    with np.load(path) as npz:
        images, labels = npz["images"], npz["labels"]
    keep = labels < classes
    return images[keep], labels[keep]


BACKBONES = {
    "conv4": {"name": "conv4", "in_channels": 1, "channels": 32},
    "resnet18": {"name": "resnet18", "in_channels": 1},
}
BACKBONE = "conv4"


def make_model() -> Embedder:
    torch.manual_seed(0)
    return Embedder(EmbedderConfig(backbone=BACKBONES[BACKBONE], embedding_dim=64))


def run_ours(
    images: np.ndarray, labels: np.ndarray, batch_size: int, channels_last: bool | None = None
) -> dict[str, float]:
    model = make_model()
    options = TrainOptions(
        epochs=1, sampler=SamplerOptions(batch_size=batch_size, m_per_class=M),
        optimizer=OptimizerOptions(name="adamw", lr=1e-3, weight_decay=0.0),
        schedule=ScheduleOptions(name="constant"),
        runtime=RuntimeOptions(progress=False, channels_last=channels_last),
    )  # fmt: skip
    start = time.perf_counter()
    result = train(
        model, ArrayDataset(images, labels), loss=build_loss({"name": "triplet", "margin": 0.2}),
        options=options,
    )  # fmt: skip
    wall = time.perf_counter() - start
    record = result.history[0]
    return {"steps": result.steps, "wall": wall, "loop": record["data_time"] + record["step_time"],
            "data": record["data_time"]}  # fmt: skip


def run_pml(
    images: np.ndarray, labels: np.ndarray, batch_size: int, steps: int
) -> dict[str, float]:
    model = make_model()
    loss_fn = pml_losses.TripletMarginLoss(margin=0.2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    start = time.perf_counter()
    dataset = TensorDataset(
        torch.from_numpy(images).float().div_(255).unsqueeze(1), torch.from_numpy(labels)
    )
    sampler = pml_samplers.MPerClassSampler(
        labels, m=M, batch_size=batch_size, length_before_new_iter=steps * batch_size
    )
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True)
    data_time, loop_start = 0.0, time.perf_counter()
    batches = iter(loader)
    done = 0
    while True:
        fetch = time.perf_counter()
        batch = next(batches, None)
        data_time += time.perf_counter() - fetch
        if batch is None:
            break
        x, y = batch
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        done += 1
    end = time.perf_counter()
    return {"steps": done, "wall": end - start, "loop": end - loop_start, "data": data_time}


def run_ceiling(images: np.ndarray, batch_size: int, steps: int) -> dict[str, float]:
    """The model's forward and backward alone (no loss, sampler or optimiser): what any loop
    with the same model and numbers spends at least, so ``PML / this`` bounds every loop's
    speed-up over PML's."""
    model = make_model()
    if getattr(model.backbone, "prefers_channels_last", False):  # as ``train`` runs it
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    x = torch.from_numpy(images[: steps * batch_size]).float().div_(255).unsqueeze(1)
    start = time.perf_counter()
    for batch in x.split(batch_size):
        model.zero_grad()
        model(batch).square().sum().backward()
    end = time.perf_counter()
    return {"steps": steps, "wall": end - start, "loop": end - start, "data": 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path, nargs="?", default=None)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backbone", choices=sorted(BACKBONES), default="conv4")
    args = parser.parse_args()
    global BACKBONE  # noqa: PLW0603 (one model per process, chosen on the command line)
    BACKBONE = args.backbone
    other = not bool(getattr(make_model().backbone, "prefers_channels_last", False))
    torch.set_num_threads(args.threads)
    images, labels = load(args.data, args.steps, args.batch_size)
    small = labels < 2 * args.batch_size // M
    run_ours(images[small], labels[small], args.batch_size)  # warm-up: imports, allocator
    run_pml(images[small], labels[small], args.batch_size, 3)
    ours_cl = f"deepmetric, channels_last={other}"
    ceiling = "forward+backward alone"
    results: dict[str, list[dict[str, float]]] = {
        "deepmetric": [],
        ours_cl: [],
        "PML": [],
        ceiling: [],
    }
    for _ in range(2):
        results["deepmetric"].append(run_ours(images, labels, args.batch_size))
        results[ours_cl].append(run_ours(images, labels, args.batch_size, channels_last=other))
        steps = int(results["deepmetric"][-1]["steps"])
        results["PML"].append(run_pml(images, labels, args.batch_size, steps))
        results[ceiling].append(run_ceiling(images, args.batch_size, steps))
    print(f"{args.backbone}: {len(images)} images, {labels.max() + 1} classes, batch "
          f"{args.batch_size}, {args.threads} threads")  # fmt: skip
    print(f"{'loop':<26} {'steps':>5} {'img/s':>8} {'img/s wall':>10} {'data share':>10}")
    best = {}
    for name, runs in results.items():
        run = max(runs, key=lambda r: r["steps"] / r["loop"])
        best[name] = run["steps"] * args.batch_size / run["loop"]
        print(f"{name:<26} {int(run['steps']):>5} {best[name]:>8.1f} "
              f"{run['steps'] * args.batch_size / run['wall']:>10.1f} "
              f"{run['data'] / run['loop']:>10.1%}")  # fmt: skip
    for name in ("deepmetric", ours_cl, ceiling):
        print(f"{name} / PML: {best[name] / best['PML']:.2f}x")


if __name__ == "__main__":
    main()
