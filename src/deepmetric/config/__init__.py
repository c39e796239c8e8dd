"""Run configs (typed, strict, YAML) and the pipeline that turns one into a trained model.

- ``RunConfig`` and its sections; ``load_config(path, overrides)``, ``build_config(mapping,
  overrides)``, ``save_config``; ``ConfigError`` for every config problem (one readable line).
- ``run_training(config, resume=...)``: datasets, model, loss, miner, ``train``, test metrics,
  report; ``build_data``, ``build_model``, ``build_loss``, ``build_miner`` for the parts.
- ``evaluate_embeddings(embeddings, dataset, evaluation)``: the retrieval, clustering,
  few-shot, re-id or verification protocol.
"""

from __future__ import annotations

from .pipeline import (
    CONFIG_FILE,
    RunData,
    RunOutcome,
    build_data,
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
from .protocols import evaluate_embeddings, label_pairs
from .schema import (
    ConfigError,
    DataConfig,
    EvaluationConfig,
    OutputConfig,
    RunConfig,
    SamplerConfig,
    build_config,
    load_config,
    parse_overrides,
    save_config,
)

__all__ = [
    "CONFIG_FILE",
    "ConfigError",
    "DataConfig",
    "EvaluationConfig",
    "OutputConfig",
    "RunConfig",
    "RunData",
    "RunOutcome",
    "SamplerConfig",
    "build_config",
    "build_data",
    "build_loss",
    "build_miner",
    "build_model",
    "embed_test",
    "eval_transform",
    "evaluate_embeddings",
    "image_preprocessing",
    "label_pairs",
    "load_config",
    "parse_overrides",
    "run_training",
    "save_config",
    "saved_eval_transform",
    "seeded",
]
