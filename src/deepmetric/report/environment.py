"""What a run ran on: library versions, CPU and threads, the CUDA device, the platform."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform

import numpy as np
import torch

from .._version import __version__


def _version(module: str, distribution: str) -> str:
    """The installed version of a package, or ``"not installed"``."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        return str(getattr(importlib.import_module(module), "__version__", "unknown"))
    except ImportError:
        return "not installed"


def environment_info() -> dict[str, str | int]:
    """Versions and hardware of the current process, for the report and run records.

    Returns:
        ``python``, ``platform``, ``deepmetric``, ``torch``, ``numpy``, ``faiss``,
        ``scikit-learn``, ``matplotlib`` (versions, ``"not installed"`` when missing),
        ``cpu_count``, ``torch_threads``, and ``cuda``: the first device's name and the device
        count, or ``"not available"``.

    Example:
        >>> info = environment_info()
        >>> info["numpy"] == np.__version__, isinstance(info["cpu_count"], int)
        (True, True)
    """

    cuda = "not available"
    if torch.cuda.is_available():
        cuda = f"{torch.cuda.get_device_name(0)} ({torch.cuda.device_count()} device(s))"
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "deepmetric": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "faiss": _faiss_version(),
        "scikit-learn": _version("sklearn", "scikit-learn"),
        "matplotlib": _version("matplotlib", "matplotlib"),
        "cpu_count": os.cpu_count() or 0,
        "torch_threads": torch.get_num_threads(),
        "cuda": cuda,
    }


def _faiss_version() -> str:
    for distribution in ("faiss-cpu", "faiss-gpu", "faiss"):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return _version("faiss", "faiss")
