"""Train a small conv net on Omniglot's background set and validate on unseen alphabets.

    python bench/train_omniglot.py ../shared/data/omniglot/omniglot28_background.npz \
        [--epochs 3] [--channels 32] [--train-alphabets 20] [--loss multi_similarity] [--threads 2]

The 30 background alphabets are split by alphabet (the zero-shot protocol: validation characters
come from alphabets never seen in training): the first ``--train-alphabets`` in the file's id
order train, the rest validate. The model is ``Embedder(conv4, 64-d, L2-normalised)`` on 28x28
greyscale drawings; the loss is multi-similarity with its miner by default. The script prints
the held-out retrieval metrics of the untrained network, the per-epoch curve as it goes (loss,
triplet violation rate, mean pairwise cosine and effective rank of the training embeddings,
held-out MAP@R and P@1, seconds) and the final numbers (the model keeps its best epoch).
"""

# bench: by hand (needs a data path, or runs for hours)

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np  # noqa: E402
import torch  # noqa: E402

from deepmetric.data import ArrayDataset  # noqa: E402
from deepmetric.evaluation import retrieval_metrics  # noqa: E402
from deepmetric.losses import build as build_loss  # noqa: E402
from deepmetric.miners import build as build_miner  # noqa: E402
from deepmetric.models import Embedder, EmbedderConfig, embed  # noqa: E402
from deepmetric.training import (  # noqa: E402
    OptimizerOptions,
    RuntimeOptions,
    SamplerOptions,
    ScheduleOptions,
    State,
    TrainOptions,
    ValidationOptions,
    train,
)

LOSSES = {
    "multi_similarity": ({"name": "multi_similarity"}, {"name": "multi_similarity"}),
    "triplet": ({"name": "triplet", "margin": 0.2}, {"name": "semi_hard", "margin": 0.2}),
    "contrastive": ({"name": "contrastive"}, None),
}


def load(path: Path, train_alphabets: int) -> tuple[ArrayDataset, ArrayDataset]:
    """The alphabet-disjoint ``(train, val)`` split of the 28x28 background set."""
    with np.load(path) as npz:
        images, labels, alphabet = npz["images"], npz["labels"], npz["alphabet"]
    if not 1 <= train_alphabets < int(alphabet.max()) + 1:
        raise SystemExit(f"--train-alphabets must be in [1, {int(alphabet.max())}]")
    train_rows = alphabet < train_alphabets
    return (
        ArrayDataset(images[train_rows], labels[train_rows]),
        ArrayDataset(images[~train_rows], labels[~train_rows]),
    )


def held_out(model: torch.nn.Module, data: ArrayDataset) -> dict[str, float]:
    scores = retrieval_metrics(
        embed(model, data, batch_size=512), data.labels, ks=(1,),
        include=("map_at_r", "precision_at_1", "r_precision"),
    )  # fmt: skip
    return {k: scores[k] for k in ("map_at_r", "precision_at_1", "r_precision")}


def print_epoch(state: State) -> None:
    """A callback: one line of the curve at each epoch's end."""
    if not state.epoch_end:
        return
    r = state.metrics
    print(
        f"{state.epoch:>5} {r['loss']:>8.4f} {r['train_violation_rate']:>6.3f} "
        f"{r['train_mean_cosine']:>6.3f} {r['train_effective_rank']:>8.2f} "
        f"{r['val_map_at_r']:>7.4f} {r['val_precision_at_1']:>7.4f} "
        f"{r['data_time']:>7.2f} {r['epoch_time']:>8.1f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path, help="omniglot28_background.npz")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-alphabets", type=int, default=20)
    parser.add_argument("--loss", choices=sorted(LOSSES), default="multi_similarity")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--m", type=int, default=4)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train_data, val_data = load(args.data, args.train_alphabets)
    print(
        f"train: {len(train_data)} drawings, {train_data.num_classes} characters; "
        f"val: {len(val_data)} drawings, {val_data.num_classes} characters (unseen alphabets)"
    )
    torch.manual_seed(args.seed)
    model = Embedder(
        EmbedderConfig(
            backbone={"name": "conv4", "in_channels": 1, "channels": args.channels},
            embedding_dim=64,
        )
    )
    untrained = held_out(model, val_data)
    print("untrained:", {k: round(v, 4) for k, v in untrained.items()})
    loss_spec, miner_spec = LOSSES[args.loss]
    options = TrainOptions(
        epochs=args.epochs, sampler=SamplerOptions(batch_size=args.batch_size, m_per_class=args.m),
        optimizer=OptimizerOptions(name="adamw", lr=args.lr, weight_decay=1e-4),
        schedule=ScheduleOptions(name="cosine", warmup_epochs=0.25),
        validation=ValidationOptions(select="map_at_r", ks=(1,)),
        runtime=RuntimeOptions(seed=args.seed, progress=False, log_every=20),
    )  # fmt: skip
    print(f"\n{'epoch':>5} {'loss':>8} {'viol.':>6} {'cos':>6} {'eff.rank':>8} "
          f"{'MAP@R':>7} {'P@1':>7} {'data s':>7} {'epoch s':>8}", flush=True)  # fmt: skip
    start = time.perf_counter()
    result = train(
        model, train_data, loss=build_loss(loss_spec),
        miner=None if miner_spec is None else build_miner(miner_spec),
        val_data=val_data, options=options, out_dir=args.out_dir, callbacks=[print_epoch],
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    final = held_out(model, val_data)
    print(f"\nbest epoch {result.best_epoch + 1 if result.best_epoch is not None else '-'}; "
          f"{result.steps} steps in {elapsed:.0f} s")  # fmt: skip
    print("untrained:", {k: round(v, 4) for k, v in untrained.items()})
    print("trained:  ", {k: round(v, 4) for k, v in final.items()})
    print(f"MAP@R x{final['map_at_r'] / untrained['map_at_r']:.2f}, "
          f"P@1 {untrained['precision_at_1']:.3f} -> {final['precision_at_1']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
