"""The model directory: ``config.json`` + ``model.safetensors`` (+ ``metrics.json``,
``train_config.json``), written atomically and loaded without executing code.

``config.json`` holds ``format_version``, ``library_version``, ``architecture`` (the
``EmbedderConfig`` dict), ``embedding_dim``, ``normalize`` and ``preprocessing``
(``image_size``, ``mean``, ``std``, ``channels``, or null).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save
from torch import Tensor

from .._atomic import write_directory_atomically
from .._version import __version__
from .embedder import Embedder, EmbedderConfig
from .weights import check_state_dict, header_shapes, read_state_dict

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
TRAIN_CONFIG_FILE = "train_config.json"
TEXT_DIR = "text"  # a dual encoder's text tower, a model directory inside the image tower's
MANAGED_FILES = (CONFIG_FILE, WEIGHTS_FILE, METRICS_FILE, TRAIN_CONFIG_FILE, TEXT_DIR)
PREPROCESSING_KEYS = ("image_size", "mean", "std", "channels")


def _json_text(value: object, name: str) -> str:
    """Pretty, strict JSON (no NaN/Inf) for ``value``; pydantic models are dumped first."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        value = dump(mode="json")
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{name} must be a mapping (or a pydantic model); got {type(value).__name__}"
        )
    try:
        return json.dumps(value, indent=2, sort_keys=True, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{name} must be JSON-serialisable (numbers, strings, lists, dicts; NaN and Inf "
            f"are not allowed, use null): {err}"
        ) from None


def _number_list(value: object, name: str) -> list[float]:
    if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
        raise ValueError(f"preprocessing {name} must be a non-empty list of numbers; got {value!r}")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise ValueError(f"preprocessing {name} must be a non-empty list of numbers; got {value!r}")
    return [float(v) for v in value]


def check_preprocessing(preprocessing: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The validated preprocessing dict (``image_size``, ``mean``, ``std``, ``channels``).

    ``image_size`` is an int or ``[height, width]``; ``mean`` and ``std`` are per-channel lists
    (``std > 0``) whose length equals ``channels`` when given. Every key is optional.

    Example:
        >>> check_preprocessing({"image_size": 32, "mean": [0.5], "std": [0.25], "channels": 1})
        {'image_size': 32, 'mean': [0.5], 'std': [0.25], 'channels': 1}
    """
    if preprocessing is None:
        return None
    if not isinstance(preprocessing, Mapping):
        raise TypeError(f"preprocessing must be a mapping; got {type(preprocessing).__name__}")
    unknown = [k for k in preprocessing if k not in PREPROCESSING_KEYS]
    if unknown:
        raise ValueError(f"unknown preprocessing key(s) {unknown}; known: {PREPROCESSING_KEYS}")
    out: dict[str, Any] = {}
    size = preprocessing.get("image_size")
    if size is not None:
        sizes = list(size) if isinstance(size, list | tuple) else [size]
        if len(sizes) not in (1, 2) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes
        ):
            raise ValueError(
                f"preprocessing image_size must be an int or [height, width] > 0; got {size!r}"
            )
        out["image_size"] = sizes[0] if isinstance(size, int) else sizes
    for key in ("mean", "std"):
        if preprocessing.get(key) is not None:
            out[key] = _number_list(preprocessing[key], key)
    if "std" in out and min(out["std"]) <= 0:
        raise ValueError(f"preprocessing std must be > 0; got {out['std']}")
    channels = preprocessing.get("channels")
    if channels is not None:
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"preprocessing channels must be an integer >= 1; got {channels!r}")
        for key in ("mean", "std"):
            if key in out and len(out[key]) != channels:
                raise ValueError(
                    f"preprocessing {key} must have one value per channel ({channels}); "
                    f"got {len(out[key])}"
                )
        out["channels"] = channels
    return out


def save_model(
    model: Embedder,
    path: str | PathLike[str],
    *,
    metrics: Mapping[str, Any] | None = None,
    train_config: Mapping[str, Any] | Any | None = None,
    preprocessing: Mapping[str, Any] | None = None,
    text: Embedder | None = None,
) -> Path:
    """Write ``model`` as a model directory at ``path``, atomically; returns the path.

    ``text``, the text tower of a dual encoder whose image tower is ``model``, goes to
    ``path/text/`` (a model directory of its own, read by :func:`load_text_model`), so that
    image tools use the directory as they always do and text queries find the same space.

    The directory is built in a hidden temporary sibling and swapped in at the end, so a
    failure or a kill at any instant leaves the previous version intact (see
    ``write_directory_atomically``). Files other than the four this function manages
    (a resume checkpoint, for instance) are carried over from the previous version. Weights go
    to safetensors (never pickle). ``preprocessing`` defaults to ``model.preprocessing``.

    Raises:
        TypeError: ``model`` is not an ``Embedder``.
        ValueError: ``path`` is an existing file or a non-empty directory without
            ``config.json`` (never overwritten); metrics, train_config or preprocessing are not
            valid JSON / fields.
    """
    for part in (model, text):
        if part is not None and not isinstance(part, Embedder):
            raise TypeError(f"model must be a deepmetric Embedder; got {type(part).__name__}")
    prep = check_preprocessing(model.preprocessing if preprocessing is None else preprocessing)
    blob, card = _weights_and_card(model, prep)
    texts = {CONFIG_FILE: _json_text(card, "config")}
    if metrics is not None:
        texts[METRICS_FILE] = _json_text(metrics, "metrics")
    if train_config is not None:
        texts[TRAIN_CONFIG_FILE] = _json_text(train_config, "train_config")
    tower = None if text is None else _weights_and_card(text, None)

    def write(folder: Path) -> None:
        _write_weights(folder / WEIGHTS_FILE, blob)
        for name, content in texts.items():
            (folder / name).write_text(content, encoding="utf-8")
        if tower is not None:
            (folder / TEXT_DIR).mkdir()
            _write_weights(folder / TEXT_DIR / WEIGHTS_FILE, tower[0])
            (folder / TEXT_DIR / CONFIG_FILE).write_text(_json_text(tower[1], "config"))

    return write_directory_atomically(
        path, write, managed=MANAGED_FILES, marker=CONFIG_FILE, what="model directory"
    )


def _weights_and_card(model: Embedder, prep: dict[str, Any] | None) -> tuple[bytes, dict[str, Any]]:
    """The safetensors bytes of ``model`` and its ``config.json`` card."""
    weights = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    blob = save(weights, metadata={"format": "pt"})
    card = {
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "architecture": model.config.to_dict(),
        "embedding_dim": model.embedding_dim,
        "normalize": model.normalize,
        "preprocessing": prep,
        "weights_sha256": hashlib.sha256(blob).hexdigest(),
    }
    return blob, card


def load_text_model(path: str | PathLike[str]) -> Embedder:
    """The text tower saved with a dual encoder's model directory (``path/text``)."""
    folder = _model_dir(path)
    if not (folder / TEXT_DIR / CONFIG_FILE).is_file():
        raise ValueError(
            f"{folder} has no text tower ({TEXT_DIR}/); text queries need a model trained as "
            "an image-text dual encoder"
        )
    return load_model(folder / TEXT_DIR)


def _write_weights(path: Path, blob: bytes) -> None:
    path.write_bytes(blob)


def _model_dir(path: str | PathLike[str]) -> Path:
    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(
            f"model directory {str(folder)!r} does not exist; save one with "
            "deepmetric.models.save_model(model, path)"
        )
    if not folder.is_dir():
        raise NotADirectoryError(
            f"{str(folder)!r} is a file; a model is a directory holding {CONFIG_FILE} and "
            f"{WEIGHTS_FILE}"
        )
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"{str(folder / name)!r} is missing: {str(folder)!r} is not a complete model "
                "directory; write it again with deepmetric.models.save_model"
            )
    return folder


def read_model_config(path: str | PathLike[str]) -> dict[str, Any]:
    """The validated ``config.json`` of the model directory at ``path``."""
    file = _model_dir(path) / CONFIG_FILE
    try:
        card = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{str(file)!r} is not valid JSON ({err}); the file is damaged") from None
    if not isinstance(card, dict):
        raise ValueError(f"{str(file)!r} must hold a JSON object; got {type(card).__name__}")
    version = card.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{str(file)!r} has format_version {version!r}; this deepmetric reads format "
            f"{FORMAT_VERSION} (a newer library wrote it? upgrade deepmetric)"
        )
    for key, kind in (("architecture", dict), ("embedding_dim", int), ("normalize", bool)):
        if not isinstance(card.get(key), kind):
            raise ValueError(
                f"{str(file)!r}: {key} must be a {kind.__name__}; got {card.get(key)!r}"
            )
    return card


def _check_weights_digest(folder: Path, card: dict[str, Any]) -> None:
    """The weights file is byte for byte the one ``save_model`` recorded in ``config.json``."""
    digest = hashlib.sha256((folder / WEIGHTS_FILE).read_bytes()).hexdigest()
    if digest != card.get("weights_sha256"):
        raise ValueError(
            f"{str(folder / WEIGHTS_FILE)!r} does not match the sha256 recorded in {CONFIG_FILE}: "
            "the weights were changed or damaged after saving; save the model again"
        )


def load_model(path: str | PathLike[str]) -> Embedder:
    """The ``Embedder`` saved at ``path``, in eval mode, with ``preprocessing`` restored.

    Reads only JSON and safetensors: no code from the directory runs. Custom backbones must be
    registered (``BACKBONES.register``) before loading.

    Raises:
        FileNotFoundError: no directory, or ``config.json`` / ``model.safetensors`` missing.
        ValueError: an unknown ``format_version``, an invalid architecture, weights that differ
            from the ones saved (their sha256 is in ``config.json``), or weights that do not
            match the architecture (the message names missing and unexpected keys).
    """
    folder = _model_dir(path)
    card = read_model_config(folder)
    source = repr(str(folder / CONFIG_FILE))
    try:
        config = EmbedderConfig.from_dict(card["architecture"])
        with torch.device("meta"):  # shapes only: a config asking for a giant model costs nothing
            skeleton = Embedder(config)
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"{source}: cannot build the architecture: {err}") from None
    for key, value in (
        ("embedding_dim", skeleton.embedding_dim),
        ("normalize", skeleton.normalize),
    ):
        if card[key] != value:
            raise ValueError(
                f"{source}: {key} is {card[key]!r} but the architecture gives {value!r}"
            )
    weights = repr(str(folder / WEIGHTS_FILE))
    check_state_dict(skeleton, header_shapes(folder / WEIGHTS_FILE), source=weights)
    _check_weights_digest(folder, card)
    model = Embedder(config)
    state = read_state_dict(folder / WEIGHTS_FILE)
    check_state_dict(model, state, source=weights)
    model.load_state_dict(state, strict=True)
    model.preprocessing = check_preprocessing(card.get("preprocessing"))
    return model.eval()


def model_fingerprint(source: Embedder | str | PathLike[str]) -> str:
    """A sha256 hex digest of the architecture and weights of a model or model directory.

    Hashes the canonical JSON of the ``EmbedderConfig`` (sorted keys, no spaces) then, for each
    state-dict entry in name order, its name, dtype, shape and raw bytes. A model and the
    directory it was saved to give the same value; any weight change gives another.
    Preprocessing and library version are not part of it.

    Example:
        >>> from deepmetric.models import Embedder
        >>> model = Embedder({"backbone": {"name": "mlp", "in_features": 2, "hidden_sizes": []},
        ...                   "embedding_dim": 2})
        >>> len(model_fingerprint(model))
        64
    """
    if isinstance(source, Embedder):
        arch, state = source.config.to_dict(), source.state_dict()
    else:
        folder = _model_dir(source)
        arch = read_model_config(folder)["architecture"]
        state = read_state_dict(folder / WEIGHTS_FILE)
    digest = hashlib.sha256(json.dumps(arch, sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(state):
        tensor: Tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"\n{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


__all__ = [
    "CONFIG_FILE",
    "FORMAT_VERSION",
    "WEIGHTS_FILE",
    "check_preprocessing",
    "load_model",
    "load_text_model",
    "model_fingerprint",
    "read_model_config",
    "save_model",
]
