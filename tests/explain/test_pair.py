"""Pair explanations: the exact decomposition against the model's own similarity (the oracle),
integrated gradients' completeness, the method choice, and that the maps point at what matched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepmetric.distances import paired
from deepmetric.explain import NoSpatialMapError, explain_pair, explain_pairs
from deepmetric.models import Embedder

from .glyphs import CLASSES, GLYPH, SIZE, glyphs, paste, trained_model

METRICS = ("cosine", "dot", "squared_euclidean", "euclidean")


def _model(backbone: dict, steps: int = 0, **head: object) -> Embedder:
    """A random model, or one moved by ``steps`` Adam steps on random data (BN statistics
    and weights away from their initial values)."""
    torch.manual_seed(1)
    model = Embedder({"backbone": backbone, "embedding_dim": 8, **head})
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    channels = backbone.get("in_channels", 3)
    for _ in range(steps):
        x = torch.rand(8, channels, 48, 48)
        optimizer.zero_grad()
        out = model(x)
        torch.nn.functional.cosine_similarity(out[:4], out[4:]).mean().backward()
        optimizer.step()
    return model.eval()


def _own(model: Embedder, a: torch.Tensor, b: torch.Tensor, metric: str) -> tuple[float, float]:
    """What the maps must add up to, from the model's own forward pass, and the float32
    tolerance of that value: relative to the sizes it is computed from (|a|^2 + |b|^2 for a
    squared distance, which cancels; |a| |b| for a product)."""
    with torch.no_grad():
        ea, eb = model(a[None]), model(b[None])
    na, nb = float(ea.norm()), float(eb.norm())
    if metric in ("euclidean", "squared_euclidean"):
        own = -float(paired(ea, eb, "squared_euclidean")[0])
        return own, 1e-5 * max(1.0, na**2 + nb**2)
    return float(paired(ea, eb, metric)[0]), 1e-5 * max(1.0, na * nb)  # type: ignore[arg-type]


CONV4 = {"name": "conv4", "channels": 8, "num_blocks": 3}
RESNET18 = {"name": "resnet18"}


@pytest.mark.parametrize(
    "backbone, steps, sizes",
    [
        (CONV4, 0, [(32, 32), (40, 56)]),
        (CONV4, 20, [(32, 32), (64, 48)]),
        (RESNET18, 0, [(64, 64), (96, 80)]),
        (RESNET18, 3, [(64, 64), (128, 96)]),
    ],
    ids=["conv4-random", "conv4-trained", "resnet18-random", "resnet18-trained"],
)
@pytest.mark.parametrize("normalize, batchnorm", [(True, False), (False, True)])
def test_exact_maps_sum_to_the_models_own_similarity(backbone, steps, sizes, normalize, batchnorm):
    model = _model(backbone, steps, normalize=normalize, batchnorm=batchnorm)
    g = torch.Generator().manual_seed(0)
    for size in sizes:
        a, b = torch.rand(2, 3, *size, generator=g)
        for metric in METRICS:
            e = explain_pair(model, a, b, metric=metric, method="exact")
            own, tolerance = _own(model, a, b, metric)
            assert e.pairs is not None and e.pairs.shape == (e.map_a.size, e.map_b.size)
            assert abs(e.pairs.sum() - own) < tolerance, (size, metric)
            assert abs(e.map_a.sum() - own) < tolerance and abs(e.map_b.sum() - own) < tolerance
            assert np.allclose(e.map_a.ravel(), e.pairs.sum(1))
            assert e.map_a.shape == e.map_b.shape and e.map_a.size > 1
            assert e.completeness_error < tolerance and e.accounted == pytest.approx(1.0)


def test_exact_maps_of_different_input_sizes_and_the_trained_glyph_model():
    model = trained_model()
    a, b = torch.rand(1, 32, 32), torch.rand(1, 48, 40)
    e = explain_pair(model, a, b, method="exact")
    assert e.map_a.shape == (4, 4) and e.map_b.shape == (6, 5)
    own, tolerance = _own(model, a, b, "cosine")
    assert e.pairs.sum() == pytest.approx(own, abs=tolerance)
    assert e.score == pytest.approx(own, abs=tolerance)


def test_explain_pairs_is_explain_pair_for_each():
    model = _model(CONV4)
    query, others = torch.rand(3, 32, 32), torch.rand(4, 3, 32, 32)
    batch = explain_pairs(model, query, others, metric="squared_euclidean")
    for other, together in zip(others, batch, strict=True):
        alone = explain_pair(model, query, other, metric="squared_euclidean")
        assert np.allclose(alone.pairs, together.pairs, atol=1e-6)
        assert alone.score == pytest.approx(together.score, abs=1e-6)


def test_correspondences_are_the_largest_cells_in_pixel_coordinates():
    model = _model(CONV4, 20)
    e = explain_pair(model, torch.rand(3, 32, 32), torch.rand(3, 32, 32), method="exact")
    found = e.correspondences(3)
    best = np.sort(e.pairs.ravel())[::-1][:3]
    assert [c for _, _, c in found] == pytest.approx(best[best > 0].tolist())
    i, j = np.unravel_index(np.argmax(e.pairs), e.pairs.shape)
    (ya, xa), (yb, xb), _ = found[0]
    assert (ya, xa) == ((i // 4 + 0.5) * 8, (i % 4 + 0.5) * 8)
    assert (yb, xb) == ((j // 4 + 0.5) * 8, (j % 4 + 0.5) * 8)


@pytest.mark.parametrize(
    "config, why",
    [
        ({"backbone": CONV4, "pooling": "gem", "embedding_dim": 8}, "'gem'"),
        ({"backbone": CONV4, "pooling": "max", "embedding_dim": 8}, "'max'"),
        ({"backbone": CONV4, "projection": "mlp", "embedding_dim": 8}, "MLP"),
        (
            {
                "backbone": {"name": "mlp", "in_features": 6, "hidden_sizes": [8]},
                "embedding_dim": 4,
            },
            "vectors",
        ),
    ],
    ids=["gem", "max", "mlp-head", "vector-backbone"],
)
def test_exact_refuses_other_models_and_auto_uses_gradients(config, why):
    torch.manual_seed(0)
    model = Embedder(config).eval()
    shape = (6,) if config["backbone"]["name"] == "mlp" else (3, 32, 32)
    a, b = torch.rand(*shape), torch.rand(*shape)
    with pytest.raises(NoSpatialMapError, match=why) as caught:
        explain_pair(model, a, b, method="exact")
    assert "gradient" in str(caught.value)
    e = explain_pair(model, a, b, steps=128)
    assert (
        e.method == "gradient"
        and e.pairs is None
        and e.map_a.shape == shape[-2:] * (len(shape) == 3) + shape * (len(shape) == 1)
    )
    assert e.completeness_error < 2e-3 * max(1.0, abs(e.explained - e.baseline_a))


def test_one_cell_maps_use_gradients_unless_exact_is_asked():
    model = _model(CONV4)
    a, b = torch.rand(2, 3, 8, 8)  # 3 blocks: a 1x1 map
    assert explain_pair(model, a, b).method == "gradient"
    assert explain_pair(model, a, b, method="exact").map_a.shape == (1, 1)


def test_gradient_completeness_error_is_reported_and_shrinks_with_steps():
    torch.manual_seed(0)
    model = Embedder({"backbone": CONV4, "pooling": "gem", "embedding_dim": 8}).eval()
    a, b = torch.rand(2, 3, 32, 32)
    errors = [
        explain_pair(model, a, b, method="gradient", steps=s).completeness_error for s in (4, 64)
    ]
    assert errors[1] < errors[0]
    e = explain_pair(model, a, b, method="gradient", steps=64)
    # a's attributions add up to what a adds to the similarity over the baseline
    assert e.map_a.sum() == pytest.approx(
        e.explained - e.baseline_a, abs=e.completeness_error + 1e-7
    )
    assert e.map_b.sum() == pytest.approx(
        e.explained - e.baseline_b, abs=e.completeness_error + 1e-7
    )
    assert e.completeness_error < 1e-2 * abs(e.explained - e.baseline_a)
    assert e.accounted == pytest.approx(1.0, abs=1e-2)  # of the change from the baseline
    zero = explain_pair(model, a, b, method="gradient", baseline=a, steps=8)
    assert np.allclose(zero.map_a, 0) and zero.baseline_a == pytest.approx(zero.explained)


def test_gradient_maps_of_vector_inputs_are_per_feature():
    torch.manual_seed(0)
    model = Embedder(
        {"backbone": {"name": "mlp", "in_features": 5, "hidden_sizes": [16]}, "embedding_dim": 3,
         "normalize": False}
    ).eval()  # fmt: skip
    a, b = torch.rand(5), torch.rand(5)
    e = explain_pair(model, a, b, metric="squared_euclidean", steps=256)
    assert e.map_a.shape == (5,) and e.score == pytest.approx(-e.explained, rel=1e-5)
    assert abs(e.map_a.sum() - (e.explained - e.baseline_a)) <= e.completeness_error + 1e-6


def test_bad_input_and_modes_restored():
    model = _model(CONV4)
    model.train()
    with pytest.raises(ValueError, match="do not match"):
        explain_pairs(model, torch.rand(2, 3, 32, 32), torch.rand(3, 3, 32, 32))
    with pytest.raises(ValueError, match="do not match"):
        explain_pair(model, torch.rand(1, 32, 32), torch.rand(3, 32, 32))
    vectors = Embedder({"backbone": {"name": "mlp", "in_features": 5, "hidden_sizes": [4]},
                        "embedding_dim": 2}).eval()  # fmt: skip
    with pytest.raises(ValueError, match="do not match"):
        explain_pair(vectors, torch.rand(5), torch.rand(6))
    with pytest.raises(TypeError, match="text inputs are not explained"):
        explain_pairs(vectors, ["a sentence"], ["another"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="metric"):
        explain_pair(model, torch.rand(3, 32, 32), torch.rand(3, 32, 32), metric="manhattan")
    with pytest.raises(ValueError, match="method"):
        explain_pair(model, torch.rand(3, 32, 32), torch.rand(3, 32, 32), method="lime")
    e = explain_pair(model, torch.rand(3, 32, 32), torch.rand(3, 32, 32))
    assert e.method == "exact" and model.training  # evaluated in eval mode, mode given back


# --- the sanity check: paste a patch of B into a blank or unrelated A' ---------------------


def _pasted(trial: int, background: str) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    g = torch.Generator().manual_seed(trial)
    shape = glyphs()[trial % CLASSES]
    b = paste(0.1 * torch.rand(1, SIZE, SIZE, generator=g), shape, 3, 20)
    top, left = (int(v) for v in torch.randint(SIZE - GLYPH + 1, (2,), generator=g))
    blank = torch.zeros(1, SIZE, SIZE)
    canvas = blank if background == "blank" else 0.1 * torch.rand(1, SIZE, SIZE, generator=g)
    return paste(canvas, shape, top, left), b, top, left


def test_the_trained_model_tells_the_glyphs_apart():
    model = trained_model()
    from .glyphs import sample

    x, y, _ = sample(200, seed=99)
    with torch.no_grad():
        e = model(x)
    s = e @ e.T
    s.fill_diagonal_(-2)
    assert (y[s.argmax(1)] == y).float().mean() > 0.95


@pytest.mark.parametrize("background", ["blank", "noise"])
def test_exact_map_puts_most_mass_on_the_pasted_patch(background):
    """The 4x4 map of A' (a patch of B pasted into an empty canvas) holds on average over 60%
    of its positive mass in the 1-4 cells the patch touches (15% of the map), and its largest
    cell is always one of them."""
    model, shares, peaks = trained_model(), [], []
    for trial in range(24):
        a, b, top, left = _pasted(trial, background)
        cells = np.zeros((4, 4), bool)
        cells[top // 8 : (top + GLYPH - 1) // 8 + 1, left // 8 : (left + GLYPH - 1) // 8 + 1] = True
        found = explain_pair(model, a, b, method="exact").map_a
        positive = np.clip(found, 0, None)
        shares.append(positive[cells].sum() / positive.sum())
        peaks.append(cells.ravel()[found.argmax()])
    assert np.mean(shares) > 0.5 and np.mean(peaks) == 1.0


def test_gradient_map_puts_most_mass_on_the_pasted_patch():
    """On a noisy canvas, the 36 patch pixels (3.5% of A') get over 60% of the positive mass."""
    model, shares = trained_model(), []
    for trial in range(12):
        a, b, top, left = _pasted(trial, "noise")
        found = np.clip(explain_pair(model, a, b, method="gradient", steps=32).map_a, 0, None)
        shares.append(found[top : top + GLYPH, left : left + GLYPH].sum() / found.sum())
    assert np.mean(shares) > 0.6 and min(shares) > 0.35
