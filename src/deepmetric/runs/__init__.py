"""Runs: a config turned into a trained, evaluated, reported model, and the demo.

- ``run_training(config, resume=...)``: datasets, model, loss, miner, ``train``, test metrics,
  report; ``build_data``, ``build_model``, ``build_loss``, ``build_miner`` for the parts.
- ``evaluate_embeddings(embeddings, dataset, evaluation)``: the retrieval, clustering,
  few-shot, re-id or verification protocol.
"""

from __future__ import annotations

from .data import RunData, build_data
from .protocols import evaluate_embeddings, label_pairs
from .train import (
    CONFIG_FILE,
    RunOutcome,
    build_loss,
    build_miner,
    build_model,
    embed_test,
    eval_transform,
    image_preprocessing,
    run_training,
    saved_eval_transform,
    seeded,
)

__all__ = [
    "CONFIG_FILE",
    "RunData",
    "RunOutcome",
    "build_data",
    "build_loss",
    "build_miner",
    "build_model",
    "embed_test",
    "eval_transform",
    "evaluate_embeddings",
    "image_preprocessing",
    "label_pairs",
    "run_training",
    "saved_eval_transform",
    "seeded",
]
