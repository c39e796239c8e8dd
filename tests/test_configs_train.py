"""Every benchmark config in configs/ trains end to end on a tiny copy of its dataset's layout.

Each case writes its dataset in the native on-disk layout (``tests/data/fixtures.py``), then
rewrites the images at several sizes, smaller and larger than the config's ``image_size``, as in
the real data sets; without the dataset specs' ``image_size`` the first batch cannot be
stacked, so a config that loses it fails here. The config is loaded with overrides that only
make the run small and local: the data roots, one epoch, a tiny Conv-4 backbone with the specs'
channels, no pretrained file, CPU without AMP or workers, 4-item batches of 2 per class, the
output in ``tmp_path`` and no report. Retrieval ``ks`` keep the config's values that the fixture's
test set can answer (the protocol rejects a k past the gallery). The specs' ``image_size``, the
augmentation, the loss, miner, optimiser, schedule, head and evaluation protocol stay the
config's own, at the config's image sizes. ``digits``, ``omniglot_npz`` and ``faces`` are trained
by tests/test_config.py and tests/data/test_npz.py; ``omniglot`` trains on the bundled set and is
tested below on the native layout of its test split.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from deepmetric.config import EvaluationConfig, load_config
from deepmetric.data import build_augmentation, build_dataset
from deepmetric.evaluation import reid_metrics, reid_metrics_from_distances
from deepmetric.models import load_model
from deepmetric.runs import evaluate_embeddings, run_training
from deepmetric.search.rerank import alpha_query_expansion, k_reciprocal_distances
from tests.data import fixtures as fx

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TRAINED_ELSEWHERE = {"digits", "omniglot_npz", "omniglot", "omniglot_ssl", "faces", "shapes_clip"}
SIZES = {(8, 8), (13, 9), (7, 12), (300, 270)}  # (width, height), cycled over the files
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def _cub(root: Path) -> list[str]:
    fx.make_cub(root)  # test: 4 images of 2 classes
    return [f"data.train.root={root}", f"data.test.root={root}"]


def _sop(root: Path) -> list[str]:
    fx.make_sop(root)  # test: 3 images of 2 products
    return [f"data.train.root={root}", f"data.test.root={root}"]


def _market(root: Path) -> list[str]:
    """The fixture plus 45 distractors (identity 0): the reid protocol ranks 50 deep."""
    fx.make_market(root)
    for j in range(45):
        name = f"0000_c{1 + j % 6}s1_{j:06d}_01.jpg"
        fx.write_image(root / "bounding_box_test" / name, seed=4000 + j)
    return [f"data.train.root={root}", f"data.test.root={root}"]


def _lfw(root: Path) -> list[str]:
    fx.make_folder(root / "faces_train", {"Ann_Bell": 2, "Ben_Cole": 2, "Cid_Dunn": 2})
    fx.make_lfw(root / "lfw")
    return [f"data.train.root={root / 'faces_train'}", f"data.test.root={root / 'lfw'}"]


@dataclass(frozen=True)
class Case:
    """A config's fixture writer, what its model must record, and its test set's gallery."""

    write: Callable[[Path], list[str]]
    preprocessing: dict[str, Any]
    gallery: int  # items each test query ranks; retrieval ks above it are dropped


CASES = {
    "cub200_resnet50": Case(_cub, {"image_size": [224, 224], "channels": 3, **IMAGENET}, 3),
    "sop": Case(_sop, {"image_size": [224, 224], "channels": 3, **IMAGENET}, 2),
    "market1501": Case(_market, {"image_size": [256, 128], "channels": 3, **IMAGENET}, 50),
    "lfw": Case(
        _lfw, {"image_size": [112, 112], "channels": 3, "mean": [0.5] * 3, "std": [0.5] * 3}, 7
    ),
}


def vary_image_sizes(root: Path) -> set[tuple[int, int]]:
    """Rewrite every image under ``root`` at one of ``SIZES`` in turn; the sizes now there."""
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    for i, path in enumerate(files):
        fx.write_image(path, seed=7000 + i, size=sorted(SIZES)[i % len(SIZES)])
    sizes = set()
    for path in files:
        with Image.open(path) as image:
            sizes.add(image.size)
    return sizes


def small_and_local(name: str, data_roots: list[str], out_dir: Path) -> list[str]:
    """The ``--set`` overrides of a case: data roots, size and place only."""
    config = load_config(CONFIGS / f"{name}.yaml")
    in_channels = config.data.train.get("channels", 3)
    sets = [
        *data_roots,
        f"model.backbone={{name: conv4, in_channels: {in_channels}, channels: 4, num_blocks: 2}}",
        "pretrained=null",
        "epochs=1",
        "runtime.device=cpu",
        "runtime.amp=none",
        "runtime.num_workers=0",
        "runtime.progress=false",
        "sampler.batch_size=4",
        "sampler.m_per_class=2",
        f"output.dir={out_dir}",
        "output.report=false",
    ]
    if config.evaluation.protocol == "retrieval":
        ks = [k for k in config.evaluation.ks if k <= CASES[name].gallery]
        sets.append(f"evaluation.ks={ks}")
    return sets


def protocol_keys(evaluation: EvaluationConfig) -> set[str]:
    """The metric names each protocol reports, written down from its documentation."""
    ks = evaluation.ks
    if evaluation.protocol == "retrieval":
        fixed = {"precision_at_1", "r_precision", "map_at_r", "map", "mrr"}
        per_k = {f"{m}_at_{k}" for m in ("recall", "ndcg") for k in ks}
        return fixed | per_k | {"num_queries", "num_excluded"}
    if evaluation.protocol == "reid":
        return {f"rank_{k}" for k in ks} | {"map", "minp"}
    assert evaluation.protocol == "verification"
    fars = {f"tar_at_far_{far}" for far in ("1e-04", "1e-03", "1e-02", "1e-01")}
    return {"auc", "eer", "eer_threshold", "accuracy", "accuracy_std"} | fars


def check_metrics(metrics: dict[str, float], evaluation: EvaluationConfig) -> None:
    """The protocol's metrics, finite; TAR at a FAR below 1/(different pairs) is NaN."""
    assert set(metrics) == protocol_keys(evaluation)
    for key, value in metrics.items():
        if key.startswith("tar_at_far_") and math.isnan(value):
            continue  # documented: too few different pairs to measure that FAR
        assert math.isfinite(value), (key, value)
        if not key.startswith("num_") and key != "eer_threshold":
            assert 0.0 <= value <= 1.0, (key, value)


def test_every_benchmark_config_has_a_case() -> None:
    names = {path.stem for path in CONFIGS.glob("*.yaml")}
    assert names - TRAINED_ELSEWHERE == set(CASES)


@pytest.mark.filterwarnings("ignore:FARs below:UserWarning")  # 8 LFW images: 8 different pairs
@pytest.mark.filterwarnings("ignore:.*no relevant item:UserWarning")  # SOP's 1-image test product
@pytest.mark.parametrize("name", sorted(CASES))
def test_config_trains_end_to_end_on_its_layout(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    data_roots = case.write(tmp_path / "data")
    assert vary_image_sizes(tmp_path / "data") == SIZES  # the batches cannot stack unresized
    out_dir = tmp_path / "run"
    config = load_config(CONFIGS / f"{name}.yaml", small_and_local(name, data_roots, out_dir))

    outcome = run_training(config)

    assert outcome.result.epochs == 1 and outcome.result.steps >= 1
    assert math.isfinite(outcome.result.history[-1]["loss"])
    check_metrics(outcome.metrics, config.evaluation)
    saved = json.loads((out_dir / "test_metrics.json").read_text())  # strict JSON: NaN is null
    assert saved == {k: v if math.isfinite(v) else None for k, v in outcome.metrics.items()}
    card = json.loads((out_dir / "model" / "config.json").read_text())
    assert card["preprocessing"] == case.preprocessing
    assert load_model(out_dir / "model").preprocessing == case.preprocessing
    # oracle: the size the config's eval pipeline shows the model
    assert config.augmentation is not None
    item = build_dataset(config.data.test)[0][0]
    shown = build_augmentation(config.augmentation, "eval")(item[None])
    assert list(shown.shape[1:]) == [
        card["preprocessing"]["channels"],
        *case.preprocessing["image_size"],
    ]


def _market_scores(tmp_path: Path, sets: list[str]) -> tuple[dict[str, float], tuple]:  # type: ignore[type-arg]
    """The reid protocol's metrics on the Market fixture (2 queries, a gallery of 5) with
    random embeddings, and ``(query x, gallery x, ids and cameras)`` to check them with."""
    fx.make_market(tmp_path)
    roots = [f"data.train.root={tmp_path}", f"data.test.root={tmp_path}"]
    config = load_config(CONFIGS / "market1501.yaml", [*roots, *sets])
    test = build_dataset(config.data.test)
    x = torch.randn(len(test), 8, generator=torch.Generator().manual_seed(0))
    metrics = evaluate_embeddings(x, test, config.evaluation)
    q, g = (np.asarray(test.extra[key], dtype=bool) for key in ("is_query", "is_gallery"))
    pid, cam = test.extra["pid"], test.extra["camera"]
    return metrics, (x[torch.from_numpy(q)], x[torch.from_numpy(g)], pid[q], pid[g], cam[q], cam[g])


def test_reid_protocol_ranks_to_the_configs_ks(tmp_path: Path) -> None:
    metrics, (xq, xg, *ids) = _market_scores(tmp_path, ["evaluation.ks=[1, 2, 5]"])
    whole = reid_metrics(xq, xg, *ids, metric="cosine", max_rank=5)
    want = {f"rank_{k}": float(whole.cmc[k - 1]) for k in (1, 2, 5)}
    assert metrics == pytest.approx({**want, "map": whole.map, "minp": whole.minp})


def test_reid_protocol_re_ranks_with_query_expansion_and_k_reciprocal(tmp_path: Path) -> None:
    sets = [
        "evaluation.ks=[1, 2]",
        "evaluation.rerank=k_reciprocal",
        "evaluation.query_expansion=2",
    ]
    metrics, (xq, xg, *ids) = _market_scores(tmp_path, sets)
    expanded = alpha_query_expansion(xq, xg, n=2)
    d = k_reciprocal_distances(expanded, torch.nn.functional.normalize(xg), metric="cosine")
    whole = reid_metrics_from_distances(d, *ids, max_rank=2)
    assert metrics == pytest.approx(
        {"rank_1": whole.cmc[0], "rank_2": whole.cmc[1], "map": whole.map, "minp": whole.minp}
    )


def test_omniglot_recipe_trains_on_the_bundled_set_and_tests_on_the_native_layout(
    tmp_path: Path,
) -> None:
    fx.make_omniglot(tmp_path / "data")  # evaluation: 2 drawings of 2 Korean characters
    vary_image_sizes(tmp_path / "data")
    config = load_config(
        CONFIGS / "omniglot.yaml",
        [f"data.test.root={tmp_path / 'data'}", "data.train.alphabets=[Latin, Greek]",
         "model.backbone.channels=4", "sampler.batch_size=20", "sampler.classes_per_group=5",
         "epochs=1", "evaluation.ways=2", "evaluation.episodes=5", "runtime.progress=false",
         f"output.dir={tmp_path / 'run'}", "output.report=false"],
    )  # fmt: skip
    outcome = run_training(config)
    assert outcome.result.steps >= 1 and math.isfinite(outcome.result.history[-1]["loss"])
    assert {"fewshot_accuracy", "map_at_r", "recall_at_1"} <= set(outcome.metrics)
    assert set(outcome.baselines) == {"raw inputs", "untrained network"}
    card = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert card["preprocessing"] == {"image_size": [28, 28], "channels": 1}
    test = build_dataset(config.data.test)
    assert test[0][0].shape == (1, 28, 28) and float(test[0][0].mean()) < 0.5  # white on black


def test_the_self_supervised_omniglot_config_trains_without_labels(tmp_path: Path) -> None:
    fx.make_omniglot(tmp_path / "data")
    config = load_config(
        CONFIGS / "omniglot_ssl.yaml",
        [f"data.test.root={tmp_path / 'data'}", "data.train.alphabets=[Latin]",
         "model.backbone.channels=4", "sampler.batch_size=32", "epochs=1", "evaluation.ways=2",
         "evaluation.episodes=5", "runtime.progress=false", f"output.dir={tmp_path / 'run'}",
         "output.report=false"],
    )  # fmt: skip
    outcome = run_training(config)
    drawings = 26 * 20  # Latin: 26 characters, 20 drawings, each a class of its own, 2 views
    assert outcome.result.steps == drawings * 2 // 32 + 1
    assert {"fewshot_accuracy", "map_at_r"} <= set(outcome.metrics)


def test_the_shapes_config_trains_a_dual_encoder_that_text_queries_use(tmp_path: Path) -> None:
    from deepmetric.index import Encoder
    from deepmetric.models import load_text_model

    config = load_config(
        CONFIGS / "shapes_clip.yaml",
        ["data.train.n=64", "data.test.n=32", "model.backbone.channels=4",
         "model.backbone.num_blocks=2", "text_model.backbone.dim=8",
         "text_model.backbone.heads=2", "sampler.batch_size=16", "epochs=1",
         "data.val_set=test", "runtime.progress=false", f"output.dir={tmp_path / 'run'}"],
    )  # fmt: skip
    outcome = run_training(config)
    assert outcome.result.steps == 4 and "val_map_at_r" in outcome.result.history[-1]
    assert {"text_to_image_recall_at_1", "image_to_text_recall_at_5"} <= set(outcome.metrics)
    model_dir = tmp_path / "run" / "model"
    assert "a" in load_text_model(model_dir).backbone.vocab  # vocab: auto, from the captions
    assert Encoder(model_dir).encode_texts(["a red circle"]).shape == (1, 64)
    with pytest.raises(ValueError, match="text_model: data.train must be captioned images"):
        run_training(
            load_config(
                CONFIGS / "shapes_clip.yaml",
                ["data.train={name: digits, as_vectors: false}", f"output.dir={tmp_path / 'x'}"],
            )
        )
    with pytest.raises(ValueError, match="a dual encoder has no run report"):
        load_config(CONFIGS / "shapes_clip.yaml", ["output.report=true"])
