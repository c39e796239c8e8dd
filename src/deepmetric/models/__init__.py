"""Models: backbones, the ``Embedder``, the model directory and batch embedding.

- Backbones, built by name with ``build_backbone({"name": ..., **params})``: ``conv4``,
  ``mlp``, ``resnet18``, ``resnet34``, ``resnet50`` (torchvision parameter names), ``vit`` (a
  small Vision Transformer), ``text_transformer`` (word tokens), ``timm`` and
  ``sentence_transformer`` (optional extras).
- ``Embedder`` / ``EmbedderConfig``: backbone + pooling (avg, max, GeM, avgmax, attention) +
  projection + optional L2 normalisation.
- ``save_model`` / ``load_model`` / ``model_fingerprint``: the model directory
  (``config.json`` + ``model.safetensors``), written atomically and loaded without code.
- ``load_pretrained``: a torchvision-style state dict file into a backbone.
- ``embed(model, data)``: ``(N, D)`` float32 embeddings in batches.
"""

from __future__ import annotations

from .adapters import SentenceTransformerBackbone, TimmBackbone
from .backbones import BACKBONES, MLP, Conv4, backbone_names, build_backbone
from .dual import DualEncoder
from .embed import embed
from .embedder import Embedder, EmbedderConfig
from .io import (
    CONFIG_FILE,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    check_preprocessing,
    load_model,
    load_text_model,
    model_fingerprint,
    read_model_config,
    save_model,
)
from .pooling import AttentionPool, GeM, GlobalPool
from .resnet import ResNet, ResNet18, ResNet34, ResNet50
from .text import TextTransformer, build_vocab
from .vit import VisionTransformer
from .weights import check_state_dict, load_pretrained, read_state_dict

__all__ = [
    "BACKBONES",
    "CONFIG_FILE",
    "FORMAT_VERSION",
    "MLP",
    "AttentionPool",
    "WEIGHTS_FILE",
    "Conv4",
    "DualEncoder",
    "Embedder",
    "EmbedderConfig",
    "GeM",
    "GlobalPool",
    "ResNet",
    "ResNet18",
    "ResNet34",
    "ResNet50",
    "SentenceTransformerBackbone",
    "TextTransformer",
    "TimmBackbone",
    "VisionTransformer",
    "backbone_names",
    "build_backbone",
    "build_vocab",
    "check_preprocessing",
    "check_state_dict",
    "embed",
    "load_model",
    "load_pretrained",
    "load_text_model",
    "model_fingerprint",
    "read_model_config",
    "read_state_dict",
    "save_model",
]
