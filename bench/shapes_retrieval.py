"""Image-text retrieval of colour-shape pairs a dual encoder never saw together.

    python bench/shapes_retrieval.py [--seeds 0,1,2] [--epochs 15] [--threads 2]

A ``DualEncoder`` (Conv-4 image tower, a 2-block word transformer as text tower, 64-d space)
trains with the clip loss on 4,000 generated captioned shapes (``deepmetric.data.Shapes``)
whose training split leaves out four colour-shape pairs (a red triangle, a green cross, a blue
circle, a yellow square; every word still occurs). On 1,280 test images (10 of each of the 128
captions) it is scored both ways, separately for the 32 held-out captions and the 96 seen ones:
text -> image Recall@1/5 (a query hits when an image with its exact caption is among the k
nearest of all 1,280 images) and image -> text Recall@1 (the image's own caption first among
all 128). The untrained network is the floor; chance for text -> image R@1 is 10 / 1280.
"""

# bench: by hand (a few minutes a seed)

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from deepmetric.data import Shapes
from deepmetric.evaluation import cross_modal_metrics
from deepmetric.losses import ClipLoss
from deepmetric.models import DualEncoder, build_vocab
from deepmetric.training import (
    OptimizerOptions,
    RuntimeOptions,
    SamplerOptions,
    ScheduleOptions,
    TrainOptions,
    train,
)

AUGMENT = {"size": 32, "crop_scale": None, "hflip": 0.0, "mean": None, "std": None}


def model_for(vocab: list[str], seed: int) -> DualEncoder:
    torch.manual_seed(seed)
    return DualEncoder(
        {"backbone": {"name": "conv4", "channels": 64, "num_blocks": 4}, "embedding_dim": 64},
        {"backbone": {"name": "text_transformer", "vocab": vocab, "dim": 64, "heads": 4,
                      "depth": 2}, "embedding_dim": 64},
    )  # fmt: skip


def scores(model: DualEncoder, test: Shapes) -> dict[str, float]:
    """Recall both ways, for held-out and for seen captions."""
    model.eval()
    with torch.no_grad():
        images = model.embed_images(test.images())
        texts = model.embed_texts(test.class_names)
    held = test.extra["held_out"]
    names = np.array(test.class_names)
    held_captions = np.isin(np.arange(len(names)), np.unique(test.labels[held]))
    out = {}
    for part, keep_images, keep_texts in (("held-out", held, held_captions),
                                          ("seen", ~held, ~held_captions)):  # fmt: skip
        t2i = cross_modal_metrics(images, test.labels, texts[keep_texts],
                                  np.flatnonzero(keep_texts), ks=(1, 5),
                                  directions=["text_to_image"])  # fmt: skip
        i2t = cross_modal_metrics(images[keep_images], test.labels[keep_images], texts,
                                  np.arange(len(names)), ks=(1,),
                                  directions=["image_to_text"])  # fmt: skip
        out[f"{part} t2i R@1"] = t2i["text_to_image_recall_at_1"]
        out[f"{part} t2i R@5"] = t2i["text_to_image_recall_at_5"]
        out[f"{part} i2t R@1"] = i2t["image_to_text_recall_at_1"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    train_set, test_set = Shapes("train", n=4000, seed=0), Shapes("test", n=1280, seed=0)
    vocab = build_vocab(train_set.captions)
    rows: dict[str, list[dict[str, float]]] = {"untrained": [], "trained": []}
    for seed in (int(s) for s in args.seeds.split(",")):
        model = model_for(vocab, seed)
        rows["untrained"].append(scores(model, test_set))
        start = time.perf_counter()
        options = TrainOptions(
            epochs=args.epochs, sampler=SamplerOptions(batch_size=64, m_per_class=1),
            optimizer=OptimizerOptions(name="adamw", lr=1e-3, weight_decay=0.05),
            schedule=ScheduleOptions(name="cosine", warmup_epochs=1.0), augmentation=AUGMENT,
            runtime=RuntimeOptions(seed=seed, threads=args.threads, progress=False),
        )  # fmt: skip
        train(model, train_set, loss=ClipLoss(), options=options)
        rows["trained"].append({**scores(model, test_set), "seconds": time.perf_counter() - start})
        print(json.dumps({"seed": seed, **rows["trained"][-1]}), flush=True)
    keys = [k for k in rows["trained"][0] if k != "seconds"]
    print("| model | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for name, runs in rows.items():
        cells = [f"{np.mean([r[k] for r in runs]):.3f} ± {np.std([r[k] for r in runs]):.3f}"
                 for k in keys]  # fmt: skip
        print(f"| {name} | {' | '.join(cells)} |")
    print(f"training: {np.mean([r['seconds'] for r in rows['trained']]):.0f} s a seed")


if __name__ == "__main__":
    main()
