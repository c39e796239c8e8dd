"""The model directory: round trips, atomic replacement, no code execution, errors, fingerprints."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import deepmetric
from deepmetric import _atomic
from deepmetric.models import (
    Embedder,
    check_preprocessing,
    io,
    load_model,
    model_fingerprint,
    read_model_config,
    save_model,
)

ARCH = {
    "backbone": {"name": "conv4", "channels": 8},
    "pooling": "gem",
    "embedding_dim": 4,
    "batchnorm": True,
}
PREP = {"image_size": [32, 32], "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.2], "channels": 3}


def trained_model(seed: int = 0) -> Embedder:
    """A small model whose weights and BatchNorm statistics moved away from their defaults."""
    torch.manual_seed(seed)
    model = Embedder(ARCH)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.rand(4, 3, 32, 32)).sum().backward()
    optimizer.step()
    return model.eval()


def test_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    model, x = trained_model(), torch.rand(3, 3, 32, 32)
    save_model(model, tmp_path / "m", metrics={"recall_at_1": 0.5}, preprocessing=PREP)
    loaded = load_model(tmp_path / "m")
    assert not loaded.training and loaded.config == model.config
    assert torch.equal(loaded(x), model(x))
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert loaded.preprocessing == PREP


def test_directory_contents(tmp_path: Path) -> None:
    model = trained_model()

    class TrainConfig:  # duck-types a pydantic model: save_model calls model_dump(mode="json")
        def model_dump(self, mode: str) -> dict:
            assert mode == "json"
            return {"lr": 0.1, "epochs": 3}

    path = save_model(model, tmp_path / "m", metrics={"map_at_r": 0.25}, train_config=TrainConfig())
    assert path == tmp_path / "m"
    files = sorted(p.name for p in path.iterdir())
    assert files == ["config.json", "metrics.json", "model.safetensors", "train_config.json"]
    card = json.loads((path / "config.json").read_text())
    assert card == {
        "format_version": 1,
        "library_version": deepmetric.__version__,
        "architecture": model.config.to_dict(),
        "embedding_dim": 4,
        "normalize": True,
        "preprocessing": None,
        "weights_sha256": hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest(),
    }
    assert json.loads((path / "metrics.json").read_text()) == {"map_at_r": 0.25}
    assert json.loads((path / "train_config.json").read_text()) == {"epochs": 3, "lr": 0.1}
    weights = load_file(path / "model.safetensors")  # plain safetensors, no pickle
    assert set(weights) == set(model.state_dict())
    assert not list(tmp_path.glob(".m.*"))  # no staging folder left behind


def test_loading_never_unpickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_model(trained_model(), tmp_path / "m")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.load must not be called")

    monkeypatch.setattr(torch, "load", refuse)
    assert isinstance(load_model(tmp_path / "m"), Embedder)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_failed_write_leaves_the_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_model(trained_model(0), tmp_path / "m", metrics={"v": 1})
    before = snapshot(tmp_path / "m")

    def crash(filename: Path, blob: bytes) -> None:
        Path(filename).write_bytes(blob[:10])
        raise OSError("disk full")

    monkeypatch.setattr(io, "_write_weights", crash)
    with pytest.raises(OSError, match="disk full"):
        save_model(trained_model(1), tmp_path / "m", metrics={"v": 2})
    assert snapshot(tmp_path / "m") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_a_failed_swap_restores_the_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_model(trained_model(0), tmp_path / "m")
    before = snapshot(tmp_path / "m")
    monkeypatch.setattr(_atomic, "_exchange", lambda first, second: False)  # two-rename path
    real_rename, calls = _atomic.os.rename, []

    def rename(source: object, destination: object) -> None:
        calls.append((Path(str(source)).name, Path(str(destination)).name))
        if len(calls) == 2:  # the staged folder moving into place
            raise OSError("killed")
        real_rename(source, destination)

    monkeypatch.setattr(_atomic.os, "rename", rename)
    with pytest.raises(OSError, match="killed"):
        save_model(trained_model(1), tmp_path / "m")
    assert calls[0][0] == "m" and calls[0][1].startswith(".m.old-")
    assert snapshot(tmp_path / "m") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


@pytest.mark.parametrize("exchange", [True, False])
def test_overwrite_replaces_managed_files_and_keeps_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool
) -> None:
    if not exchange:
        monkeypatch.setattr(_atomic, "_exchange", lambda first, second: False)
    save_model(trained_model(0), tmp_path / "m", metrics={"v": 1})
    (tmp_path / "m" / "checkpoint.pt").write_bytes(b"resume state")
    new = trained_model(1)
    save_model(new, tmp_path / "m")
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert files == ["checkpoint.pt", "config.json", "model.safetensors"]  # stale metrics gone
    assert (tmp_path / "m" / "checkpoint.pt").read_bytes() == b"resume state"
    assert model_fingerprint(tmp_path / "m") == model_fingerprint(new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_unrelated_paths_are_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"jpg")
    with pytest.raises(
        ValueError, match="is not a model directory \\(no config.json\\); it is never overwritten"
    ):
        save_model(trained_model(), tmp_path / "photos")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file; a model directory path must be a directory"):
        save_model(trained_model(), tmp_path / "file")
    (tmp_path / "empty").mkdir()
    save_model(trained_model(), tmp_path / "empty")  # an empty folder is fine
    assert (tmp_path / "empty" / "config.json").is_file()


def test_bad_save_arguments(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="model must be a deepmetric Embedder; got Linear"):
        save_model(torch.nn.Linear(2, 2), tmp_path / "m")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="metrics must be JSON-serialisable .*NaN"):
        save_model(trained_model(), tmp_path / "m", metrics={"auc": float("nan")})
    with pytest.raises(TypeError, match="train_config must be a mapping .*; got list"):
        save_model(trained_model(), tmp_path / "m", train_config=[1])
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("prep", "message"),
    [
        ({"size": 3}, r"unknown preprocessing key\(s\) \['size'\]"),
        ({"image_size": 0}, "image_size must be an int or \\[height, width\\] > 0; got 0"),
        ({"mean": "0.5"}, "mean must be a non-empty list of numbers; got '0.5'"),
        ({"std": [0.0]}, r"std must be > 0; got \[0.0\]"),
        ({"mean": [0.5, 0.5], "channels": 3}, r"mean must have one value per channel \(3\); got 2"),
        ({"channels": 0}, "channels must be an integer >= 1; got 0"),
    ],
)
def test_preprocessing_errors(prep: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_preprocessing(prep)


def test_loading_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist; save one with"):
        load_model(tmp_path / "nothing")
    save_model(trained_model(), tmp_path / "m")
    with pytest.raises(NotADirectoryError, match="is a file; a model is a directory"):
        load_model(tmp_path / "m" / "config.json")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors' is missing"):
        load_model(tmp_path / "m")


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    save_model(trained_model(), tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF  # one flipped bit inside a tensor: still a readable safetensors file
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="model.safetensors' does not match the sha256 recorded"):
        load_model(tmp_path / "m")


def rewrite_config(folder: Path, **changes: object) -> None:
    card = json.loads((folder / "config.json").read_text())
    card.update(changes)
    (folder / "config.json").write_text(json.dumps(card))


def test_config_problems(tmp_path: Path) -> None:
    folder = save_model(trained_model(), tmp_path / "m")
    rewrite_config(folder, format_version=99)
    with pytest.raises(ValueError, match="has format_version 99; this deepmetric reads format 1"):
        load_model(folder)
    rewrite_config(folder, format_version=1, embedding_dim=5)
    with pytest.raises(ValueError, match="embedding_dim is 5 but the architecture gives 4"):
        load_model(folder)
    rewrite_config(folder, embedding_dim=4, architecture={**ARCH, "backbone": {"name": "conv9"}})
    with pytest.raises(
        ValueError, match="cannot build the architecture: .*unknown backbone 'conv9'"
    ):
        load_model(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json' is not valid JSON"):
        read_model_config(folder)


def test_weights_that_do_not_match_the_config_are_named(tmp_path: Path) -> None:
    folder = save_model(trained_model(), tmp_path / "m")
    weights = load_file(folder / "model.safetensors")
    del weights["neck_bn.running_var"]
    weights["head.extra"] = torch.zeros(2)
    save_file(weights, folder / "model.safetensors")
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    rewrite_config(folder, weights_sha256=digest)  # consistent files, wrong weights
    with pytest.raises(
        ValueError,
        match=r"missing keys: 1 \('neck_bn.running_var'\); unexpected keys: 1 \('head.extra'\)",
    ):
        load_model(folder)


def test_fingerprint_follows_weights_and_architecture(tmp_path: Path) -> None:
    model = trained_model()
    first = model_fingerprint(model)
    assert len(first) == 64 and int(first, 16) >= 0
    assert model_fingerprint(save_model(model, tmp_path / "a")) == first
    assert model_fingerprint(save_model(model, tmp_path / "b", metrics={"x": 1.0})) == first
    with torch.no_grad():
        model.projection.weight[0, 0] += 1e-3
    assert model_fingerprint(model) != first
    with torch.no_grad():
        model.projection.weight[0, 0] -= 1e-3
    assert model_fingerprint(model) == first
    other = Embedder({**ARCH, "normalize": False})
    other.load_state_dict(model.state_dict())
    assert model_fingerprint(other) != first


def test_a_config_asking_for_a_giant_model_fails_on_the_header_before_allocating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json as _json

    from deepmetric.models import io as model_io

    model = Embedder({"backbone": {"name": "mlp", "in_features": 4, "hidden_sizes": [8]},
                      "embedding_dim": 2})  # fmt: skip
    folder = save_model(model, tmp_path / "m")
    card = _json.loads((folder / "config.json").read_text())
    card["architecture"]["backbone"]["hidden_sizes"] = [2**20, 2**20]  # ~4 TB of float32
    (folder / "config.json").write_text(_json.dumps(card))
    built: list[str] = []
    real = model_io.Embedder
    monkeypatch.setattr(
        model_io, "Embedder",
        lambda *a, **k: built.append(str(torch.empty(0).device)) or real(*a, **k),
    )  # fmt: skip
    with pytest.raises(ValueError, match="do not match the model: .*shape mismatches"):
        load_model(folder)
    assert built == ["meta"]  # only the shape skeleton was ever built
