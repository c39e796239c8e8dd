"""embed(): equal to one forward pass in eval mode, any input container, modes restored."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from deepmetric.models import Embedder, embed


def model_and_inputs() -> tuple[Embedder, torch.Tensor]:
    torch.manual_seed(0)
    model = Embedder(
        {
            "backbone": {"name": "conv4", "channels": 8},
            "embedding_dim": 4,
            "batchnorm": True,
            "dropout": 0.5,
        }
    )
    return model, torch.rand(7, 3, 16, 16)


@pytest.mark.parametrize("batch_size", [1, 3, 7, 100])
def test_equals_a_single_eval_forward(batch_size: int) -> None:
    model, x = model_and_inputs()
    with torch.no_grad():
        expected = model.eval()(x)
    model.train()
    out = embed(model, x, batch_size=batch_size)
    assert out.dtype == torch.float32 and out.device.type == "cpu"
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    assert model.training  # restored


def test_arrays_datasets_and_tuples_give_the_same() -> None:
    model, x = model_and_inputs()
    reference = embed(model, x, batch_size=4)
    from_numpy = embed(model, x.double().numpy(), batch_size=4)  # float64 cast to the model's dtype
    labelled = embed(model, TensorDataset(x, torch.arange(7)), batch_size=4)
    bare = embed(model, TensorDataset(x), batch_size=4, device="cpu")
    for out in (from_numpy, labelled, bare):
        torch.testing.assert_close(out, reference)


class Items(Dataset):
    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.x[i]


def test_dataset_of_bare_inputs_and_empty_data() -> None:
    model, x = model_and_inputs()
    torch.testing.assert_close(embed(model, Items(x), batch_size=2), embed(model, x))
    empty = embed(model, x[:0])
    assert empty.shape == (0, 4)
    assert embed(model, Items(x[:0])).shape == (0, 4)


class Lengths(nn.Module):
    """A toy text model: one feature, the string length."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, texts: list[str]) -> torch.Tensor:
        return torch.tensor([[float(len(t))] for t in texts]) * self.scale


def test_lists_of_strings_are_batched() -> None:
    out = embed(Lengths(), ["a", "abc", "ab"], batch_size=2)
    assert out.tolist() == [[1.0], [3.0], [2.0]]


def test_result_is_an_ordinary_tensor_without_grad() -> None:
    model, x = model_and_inputs()
    out = embed(model, x)
    assert not out.requires_grad and not out.is_inference()
    out /= 2  # in-place use after embedding works


def test_mixed_modes_are_restored_even_after_an_error() -> None:
    model, x = model_and_inputs()
    model.train()
    model.neck_bn.eval()
    modes = {name: m.training for name, m in model.named_modules()}
    embed(model, x)
    assert {name: m.training for name, m in model.named_modules()} == modes
    with pytest.raises(ValueError, match="images must have shape"):
        embed(model, torch.rand(2, 1, 16, 16))
    assert {name: m.training for name, m in model.named_modules()} == modes


def test_progress_with_and_without_tqdm(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    model, x = model_and_inputs()
    reference = embed(model, x)
    torch.testing.assert_close(embed(model, x, batch_size=2, progress=True), reference)
    assert "4/4" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "tqdm", None)
    torch.testing.assert_close(embed(model, x, batch_size=2, progress=True), reference)
    assert capsys.readouterr().err == ""


def test_bad_arguments() -> None:
    model, x = model_and_inputs()
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1; got 0"):
        embed(model, x, batch_size=0)
    with pytest.raises(ValueError, match="num_workers must be an integer >= 0; got -1"):
        embed(model, x, num_workers=-1)
    with pytest.raises(TypeError, match="data must be a Tensor, .*; got dict"):
        embed(model, {"x": x})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="leading batch axis"):
        embed(model, np.zeros(()))
    with pytest.raises(ValueError, match=r"must return \(batch, dim\) embeddings; got \(2, 3, 1\)"):
        embed(nn.Unflatten(1, (3, 1)), torch.zeros(2, 3))
