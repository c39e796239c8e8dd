"""ResNet-18/34/50: torchvision's names, shapes and parameter counts, weight loading, forward."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor

from deepmetric.models import ResNet, ResNet18, ResNet34, ResNet50, build_backbone, load_pretrained

# torchvision's published totals, classifier included, and the fc layer they include.
TORCHVISION_PARAMS = {
    "resnet18": (11_689_512, 512 * 1000 + 1000),
    "resnet34": (21_797_672, 512 * 1000 + 1000),
    "resnet50": (25_557_032, 2048 * 1000 + 1000),
}
# len(torchvision.models.resnetXX().state_dict()), fc.weight and fc.bias included
TORCHVISION_STATE_KEYS = {"resnet18": 122, "resnet50": 320}


def torchvision_shapes(block: str, layers: tuple[int, ...], in_channels: int = 3) -> dict:
    """torchvision's state-dict names and shapes (fc left out), written from its definition."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(name: str, out_c: int, in_c: int, k: int) -> None:
        shapes[f"{name}.weight"] = (out_c, in_c, k, k)

    def bn(name: str, c: int) -> None:
        for field in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.{field}"] = (c,)
        shapes[f"{name}.num_batches_tracked"] = ()

    conv("conv1", 64, in_channels, 7)
    bn("bn1", 64)
    inplanes = 64
    for stage, (planes, depth) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
        for b in range(depth):
            p = f"layer{stage + 1}.{b}"
            if block == "basic":
                conv(f"{p}.conv1", planes, inplanes, 3), bn(f"{p}.bn1", planes)
                conv(f"{p}.conv2", planes, planes, 3), bn(f"{p}.bn2", planes)
                out = planes
            else:
                conv(f"{p}.conv1", planes, inplanes, 1), bn(f"{p}.bn1", planes)
                conv(f"{p}.conv2", planes, planes, 3), bn(f"{p}.bn2", planes)
                conv(f"{p}.conv3", planes * 4, planes, 1), bn(f"{p}.bn3", planes * 4)
                out = planes * 4
            if b == 0 and (stage > 0 or inplanes != out):
                conv(f"{p}.downsample.0", out, inplanes, 1), bn(f"{p}.downsample.1", out)
            inplanes = out
    return shapes


def model_shapes(model: torch.nn.Module) -> dict:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize(
    ("cls", "name", "block", "layers"),
    [
        (ResNet18, "resnet18", "basic", (2, 2, 2, 2)),
        (ResNet34, "resnet34", "basic", (3, 4, 6, 3)),
        (ResNet50, "resnet50", "bottleneck", (3, 4, 6, 3)),
    ],
)
def test_names_shapes_and_counts_match_torchvision(cls, name, block, layers) -> None:
    model = cls()
    assert model_shapes(model) == torchvision_shapes(block, layers)
    total, fc = TORCHVISION_PARAMS[name]
    assert sum(p.numel() for p in model.parameters()) == total - fc
    if name in TORCHVISION_STATE_KEYS:
        assert len(model.state_dict()) == TORCHVISION_STATE_KEYS[name] - 2
    assert model.num_features == (2048 if block == "bottleneck" else 512)


def test_spot_checks_written_out() -> None:
    r18, r50 = model_shapes(ResNet18()), model_shapes(ResNet50())
    assert "layer1.0.downsample.0.weight" not in r18
    assert r18["layer2.0.downsample.0.weight"] == (128, 64, 1, 1)
    assert r18["layer4.1.conv2.weight"] == (512, 512, 3, 3)
    assert r50["layer1.0.downsample.0.weight"] == (256, 64, 1, 1)
    assert r50["layer4.2.conv3.weight"] == (2048, 512, 1, 1)
    assert r50["layer3.5.bn2.running_var"] == (256,)
    assert not any(k.startswith("fc.") for k in r50)


def random_torchvision_state(block: str, layers: tuple[int, ...], fc_in: int) -> dict[str, Tensor]:
    """What a torchvision checkpoint holds: every tensor, classifier included, random values."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in torchvision_shapes(block, layers).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.1
    state["fc.weight"] = torch.randn(1000, fc_in, generator=gen)
    state["fc.bias"] = torch.randn(1000, generator=gen)
    return state


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_torchvision_state_dict_loads_strictly(tmp_path: Path, suffix: str) -> None:
    state = random_torchvision_state("basic", (2, 2, 2, 2), 512)
    path = tmp_path / f"resnet18{suffix}"
    save_file(state, path) if suffix == ".safetensors" else torch.save(state, path)
    model = load_pretrained(ResNet18(), path)
    loaded = model.state_dict()
    assert set(loaded) == set(state) - {"fc.weight", "fc.bias"}
    for key, value in loaded.items():
        assert torch.equal(value, state[key]), key


def test_missing_and_unexpected_keys_are_named(tmp_path: Path) -> None:
    state = random_torchvision_state("basic", (2, 2, 2, 2), 512)
    del state["layer4.1.bn2.weight"]
    state["layer5.0.conv1.weight"] = torch.zeros(1)
    save_file(state, tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match=r"missing keys: 1 \('layer4.1.bn2.weight'\)") as info:
        load_pretrained(ResNet18(), tmp_path / "w.safetensors")
    assert "unexpected keys: 1 ('layer5.0.conv1.weight')" in str(info.value)
    with pytest.raises(ValueError, match=r"unexpected keys: 3 \(.*'fc.weight'"):
        load_pretrained(ResNet18(), tmp_path / "w.safetensors", skip_prefixes=())


def test_many_missing_keys_are_listed_a_few_at_a_time(tmp_path: Path) -> None:
    save_file({"other": torch.zeros(1)}, tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match=r"missing keys: 120 \('conv1.weight', .*, \.\.\.\)"):
        load_pretrained(ResNet18(), tmp_path / "w.safetensors")


def test_one_channel_stem_cannot_take_pretrained_conv1(tmp_path: Path) -> None:
    model = ResNet18(in_channels=1)
    assert tuple(model(torch.zeros(2, 1, 32, 32)).shape) == (2, 512, 1, 1)
    save_file(random_torchvision_state("basic", (2, 2, 2, 2), 512), tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match=r"conv1.weight: \(64, 3, 7, 7\).*need in_channels=3"):
        load_pretrained(model, tmp_path / "w.safetensors")


class NotWeights:
    pass


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pretrained(ResNet18(), tmp_path / "none.pth")
    torch.save(NotWeights(), tmp_path / "pickle.pth")
    with pytest.raises(ValueError, match="not a weights-only torch file"):
        load_pretrained(ResNet18(), tmp_path / "pickle.pth")
    torch.save({"state_dict": {"a": torch.zeros(1)}}, tmp_path / "nested.pth")
    with pytest.raises(ValueError, match="flat mapping .*'state_dict'"):
        load_pretrained(ResNet18(), tmp_path / "nested.pth")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 5)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_pretrained(ResNet18(), tmp_path / "bad.safetensors")


def reference_forward(state: dict[str, Tensor], x: Tensor, bottleneck: bool) -> Tensor:
    """torchvision's eval-mode ResNet forward, written with functional ops from the state dict."""

    def bn(name: str, t: Tensor) -> Tensor:
        w, b = state[f"{name}.weight"], state[f"{name}.bias"]
        mean, var = state[f"{name}.running_mean"], state[f"{name}.running_var"]
        return F.batch_norm(t, mean, var, w, b, training=False, eps=1e-5)

    x = F.relu(bn("bn1", F.conv2d(x, state["conv1.weight"], stride=2, padding=3)))
    x = F.max_pool2d(x, 3, stride=2, padding=1)
    for stage in range(1, 5):
        p, stride = f"layer{stage}.0", 1 if stage == 1 else 2
        if f"{p}.downsample.0.weight" in state:
            short = bn(
                f"{p}.downsample.1", F.conv2d(x, state[f"{p}.downsample.0.weight"], stride=stride)
            )
        else:
            short = x
        if bottleneck:  # v1.5: the stride sits on the 3x3 convolution
            out = F.relu(bn(f"{p}.bn1", F.conv2d(x, state[f"{p}.conv1.weight"])))
            out = F.relu(
                bn(f"{p}.bn2", F.conv2d(out, state[f"{p}.conv2.weight"], stride=stride, padding=1))
            )
            out = bn(f"{p}.bn3", F.conv2d(out, state[f"{p}.conv3.weight"]))
        else:
            out = F.relu(
                bn(f"{p}.bn1", F.conv2d(x, state[f"{p}.conv1.weight"], stride=stride, padding=1))
            )
            out = bn(f"{p}.bn2", F.conv2d(out, state[f"{p}.conv2.weight"], padding=1))
        x = F.relu(out + short)
    return x


@pytest.mark.parametrize("block", ["basic", "bottleneck"])
def test_forward_matches_functional_torchvision_reference(block: str) -> None:
    model = ResNet(block, (1, 1, 1, 1))
    width = 2048 if block == "bottleneck" else 512
    state = random_torchvision_state(block, (1, 1, 1, 1), width)
    state.pop("fc.weight"), state.pop("fc.bias")
    model.load_state_dict(state)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    expected = reference_forward(state, x, block == "bottleneck")
    torch.testing.assert_close(model.eval()(x), expected, rtol=1e-4, atol=1e-5)
    assert expected.shape == (2, width, 1, 1)


def test_small_input_stem_and_zero_init_residual() -> None:
    model = ResNet18(small_input=True, zero_init_residual=True)
    assert model.state_dict()["conv1.weight"].shape == (64, 3, 3, 3)
    assert tuple(model(torch.zeros(2, 3, 32, 32)).shape) == (2, 512, 4, 4)
    assert torch.count_nonzero(model.layer1[0].bn2.weight) == 0
    assert torch.count_nonzero(ResNet18().layer1[0].bn2.weight) == 64


def test_resnet_registry_and_bad_arguments() -> None:
    assert isinstance(build_backbone({"name": "resnet50", "in_channels": 1}), ResNet50)
    with pytest.raises(KeyError, match="did you mean 'resnet18'"):
        build_backbone("resnet81")
    with pytest.raises(ValueError, match="block must be 'basic' or 'bottleneck'; got 'wide'"):
        ResNet("wide", (1, 1, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"layers must give 4 stage depths; got \[1, 1\]"):
        ResNet("basic", (1, 1))
    with pytest.raises(ValueError, match="in_channels must be an integer >= 1; got 0"):
        ResNet18(in_channels=0)
    with pytest.raises(
        ValueError, match=r"images must have shape \(batch, 3, H, W\); got \(2, 1, 8, 8\)"
    ):
        ResNet18()(torch.zeros(2, 1, 8, 8))
