"""Weight files: read a state dict without executing code, check it against a module, load it.

Two formats are read: safetensors (``*.safetensors``) and weights-only torch files (anything
else, read with ``torch.load(path, weights_only=True)``, which refuses pickled Python objects).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import Tensor, nn

_SHOWN = 5  # how many offending keys an error message lists


def read_state_dict(path: str | PathLike[str]) -> dict[str, Tensor]:
    """The ``{name: tensor}`` mapping stored in ``path``, on CPU, without running any code.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not safetensors / a weights-only torch file, or it does not hold
            a flat mapping of names to tensors.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"weights file {str(file)!r} does not exist (or is not a file)")
    if file.suffix == ".safetensors":
        try:
            return load_file(file, device="cpu")
        except (SafetensorError, OSError, ValueError) as err:
            raise ValueError(f"{str(file)!r} is not a readable safetensors file: {err}") from None
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise ValueError(
            f"{str(file)!r} is not a weights-only torch file ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); save it with "
            "torch.save(model.state_dict(), path) or convert it to safetensors"
        ) from None
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        keys = list(state)[:_SHOWN] if isinstance(state, Mapping) else type(state).__name__
        raise ValueError(
            f"{str(file)!r} must hold a flat mapping of parameter names to tensors; got {keys!r} "
            "(if the state dict is nested, e.g. under 'state_dict' or 'model', save that part)"
        )
    return dict(state)


def header_shapes(path: str | PathLike[str]) -> dict[str, Tensor]:
    """The names and shapes a safetensors file holds, read from its header only, as tensors on
    the ``meta`` device (nothing allocated), for :func:`check_state_dict`."""
    try:
        with safe_open(str(path), framework="pt") as file:
            shapes = {key: file.get_slice(key).get_shape() for key in file.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{str(path)!r} is not a readable safetensors file: {err}") from None
    return {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}


def _listed(keys: Sequence[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:_SHOWN])
    return f"{len(keys)} ({shown}{', ...' if len(keys) > _SHOWN else ''})"


def check_state_dict(module: nn.Module, state: Mapping[str, Tensor], *, source: str) -> None:
    """``ValueError`` unless ``state`` has exactly the keys and shapes of ``module.state_dict()``.

    The message names the first missing, unexpected and mis-shaped keys and their counts;
    ``source`` (a file name, usually) says where ``state`` came from.
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: {tuple(state[k].shape)} in {source}, {tuple(v.shape)} in the model"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if not (missing or unexpected or shapes):
        return
    problems = []
    if missing:
        problems.append(f"missing keys: {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listed(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches: {len(shapes)} ({'; '.join(shapes[:_SHOWN])})")
        if any(s.startswith("conv1.weight:") for s in shapes):
            problems.append(
                "conv1 differs: pretrained ImageNet weights need in_channels=3 and "
                "small_input=False; they cannot load into another stem"
            )
    raise ValueError(f"weights in {source} do not match the model: " + "; ".join(problems))


def load_pretrained(
    module: nn.Module, path: str | PathLike[str], *, skip_prefixes: Sequence[str] = ("fc.",)
) -> nn.Module:
    """Load a state dict file into ``module`` strictly, dropping keys under ``skip_prefixes``.

    Made for torchvision ResNet checkpoints (their classifier ``fc.*`` is dropped) and for a
    backbone saved on its own; for an ``Embedder`` pass ``embedder.backbone``. Every other key
    must match by name and shape, or nothing is loaded and a ``ValueError`` lists the first
    offending keys. Returns ``module``.

    Example:
        >>> import tempfile, os
        >>> from safetensors.torch import save_file
        >>> from deepmetric.models import ResNet18
        >>> state = ResNet18().state_dict()
        >>> state.update({"fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)})
        >>> path = os.path.join(tempfile.mkdtemp(), "resnet18.safetensors")
        >>> save_file(state, path)
        >>> type(load_pretrained(ResNet18(), path)).__name__
        'ResNet18'
    """
    source = repr(str(path))
    state = {
        k: v for k, v in read_state_dict(path).items() if not k.startswith(tuple(skip_prefixes))
    }
    check_state_dict(module, state, source=source)
    module.load_state_dict(state, strict=True)
    return module


__all__ = ["check_state_dict", "header_shapes", "load_pretrained", "read_state_dict"]
