"""Run configs: every example config validates; bad keys and values give one readable line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from deepmetric.config import (
    ConfigError,
    RunConfig,
    build_config,
    load_config,
    parse_overrides,
    save_config,
)
from deepmetric.data import DigitsDataset, build_augmentation
from deepmetric.models import embed, load_model
from deepmetric.runs import RunOutcome, build_loss, build_model, evaluate_embeddings, run_training
from deepmetric.runs.train import image_preprocessing
from deepmetric.training import OptimizerOptions, State

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
DIGITS = Path(__file__).resolve().parents[1] / "configs" / "digits.yaml"


def test_the_example_configs_are_there() -> None:
    names = {p.stem for p in CONFIGS}
    assert {"digits", "omniglot", "cub200_resnet50", "sop", "market1501", "lfw"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_example_config_loads_and_round_trips(path: Path, tmp_path: Path) -> None:
    config = load_config(path)
    options = config.train_options()
    assert options.epochs == config.epochs and options.sampler == config.sampler
    saved = save_config(config, tmp_path / "config.yaml")
    assert load_config(saved) == config  # the resolved file describes the same run


def test_cub_recipe_is_the_standard_one() -> None:
    cub = load_config(next(p for p in CONFIGS if p.stem == "cub200_resnet50"))
    assert cub.model.backbone["name"] == "resnet50" and cub.model.embedding_dim == 512
    assert cub.loss["name"] in ("proxy_anchor", "multi_similarity")


def test_sections_are_the_library_objects() -> None:
    config = build_config({"optimizer": {"name": "sgd", "lr": 0.1}})
    assert config.optimizer == OptimizerOptions(name="sgd", lr=0.1)
    assert config.train_options().optimizer is config.optimizer


@pytest.mark.parametrize(
    ("data", "overrides", "match"),
    [
        ({"schedul": {}}, [], "unknown key 'schedul' in the config; did you mean 'schedule'"),
        ({"optimizer": {"lrr": 1}}, [], "unknown key 'lrr' in optimizer; did you mean 'lr'"),
        ({}, ["model.embeding_dim=3"], "in model; did you mean 'embedding_dim'"),
        ({}, ["data.tset_classes=[1]"], "in data; did you mean 'test_classes'"),
        ({"loss": {"name": "multi_similarty"}}, [], "did you mean 'multi_similarity'"),
        ({"loss": {"name": "proxy_anchor", "margn": 1}}, [], "did you mean 'margin'"),
        (
            {"loss": {"name": "proxy_anchor", "num_classes": 3}},
            [],
            "unknown parameter 'num_classes'",
        ),
        ({}, ["miner.name=batch_hrd"], "did you mean 'batch_hard'"),
        ({}, ["model.backbone.name=resnt50"], "did you mean 'resnet50'"),
        ({}, ["data.train.name=cub"], "data.train: unknown dataset 'cub'; did you mean 'cub200'"),
        ({}, ["augmentation.sise=3"], "augmentation: unknown key 'sise' in augmentation; did you"),
    ],
)
def test_unknown_names_and_keys_suggest_the_close_match(
    data: dict[str, object], overrides: list[str], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        build_config(data, overrides)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["optimizer.lr=-1"], "optimizer: optimizer.lr must be > 0; got -1"),
        (["sampler.batch_size=30"], "sampler.batch_size must be a multiple of sampler.m_per_class"),
        (["validation.select=recall_at_3"], "validation.select must be one of"),
        (["epochs=0"], "epochs must be an integer >= 1; got 0"),
        (["data.test_fraction=1.5"], "data.test_fraction must be in \\(0, 1\\); got 1.5"),
        (["model.embedding_dim=abc"], "model.embedding_dim: .*integer"),
        (["evaluation.protocol=ranking"], "evaluation.protocol: Input should be 'retrieval'"),
        (["epochs"], "--set must look like key.path=value; got 'epochs'"),
        (["loss.name.x=1"], "loss.name is 'multi_similarity', not a mapping"),
    ],
)
def test_bad_values_name_the_field(overrides: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_config({}, overrides)


def test_overrides_are_yaml_scalars_and_apply_in_order() -> None:
    assert parse_overrides(["a=1.5", "b=true", "c=[1, 2]", "d=x=y", "e="]) == [
        (["a"], 1.5),
        (["b"], True),
        (["c"], [1, 2]),
        (["d"], "x=y"),
        (["e"], ""),
    ]
    config = build_config({}, ["epochs=3", "epochs=4", "optimizer.lr=1e-2", "miner.name=all"])
    assert config.epochs == 4 and config.optimizer.lr == 0.01 and config.miner == {"name": "all"}


def test_load_config_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file .*missing.yaml' not found"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: [1, 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="broken.yaml' is not valid YAML"):
        load_config(broken)
    listed = tmp_path / "listed.yaml"
    listed.write_text(yaml.safe_dump([1, 2]), encoding="utf-8")
    with pytest.raises(ConfigError, match="listed.yaml: a config must be a mapping"):
        load_config(listed)
    typo = tmp_path / "typo.yaml"
    typo.write_text("epoch: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="typo.yaml: unknown key 'epoch'.*did you mean 'epochs'"):
        load_config(typo)


def test_save_config_writes_every_default(tmp_path: Path) -> None:
    path = save_config(build_config({}), tmp_path / "run" / "config.yaml")
    saved = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert saved["optimizer"]["name"] == "adamw" and saved["schedule"]["name"] == "cosine"
    assert saved["runtime"]["seed"] == 0 and not list(path.parent.glob(".*tmp"))


# a tiny image run: digits as 1x8x8 images, a 2-block conv4, an augmentation with a
# non-trivial mean/std and the default eval crop (resize to 9, center crop 8)
AUGMENT = {"size": 8, "crop_scale": None, "hflip": 0.0, "mean": [0.3], "std": [0.2]}


def image_config(out_dir: Path, val_set: str = "none") -> RunConfig:
    return build_config(
        {
            "data": {
                "train": {"name": "digits", "split": "train"},
                "test": {"name": "digits", "split": "test"},
                "val_set": val_set,
            },
            "model": {
                "backbone": {"name": "conv4", "in_channels": 1, "channels": 8, "num_blocks": 2},
                "embedding_dim": 16,
            },
            "sampler": {"batch_size": 20, "m_per_class": 4},
            "epochs": 1,
            "augmentation": AUGMENT,
            "runtime": {"progress": False},
            "output": {"dir": str(out_dir), "report": False},
        }
    )


def test_initial_weights_and_proxies_follow_runtime_seed() -> None:
    config = build_config({"loss": {"name": "proxy_anchor"}})
    other = build_config({"loss": {"name": "proxy_anchor"}, "runtime": {"seed": 1}})
    state = torch.random.get_rng_state()
    first, again, reseeded = build_model(config), build_model(config), build_model(other)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left alone
    for name, weight in first.state_dict().items():
        assert torch.equal(weight, again.state_dict()[name]), name
    assert any(not torch.equal(w, reseeded.state_dict()[n]) for n, w in first.state_dict().items())
    proxies = [dict(build_loss(c, 5, 64).named_parameters()) for c in (config, config, other)]
    assert proxies[0].keys() and all(torch.equal(proxies[0][k], proxies[1][k]) for k in proxies[0])
    assert not all(torch.equal(proxies[0][k], proxies[2][k]) for k in proxies[0])


def stop_after_one_step(state: State) -> None:
    state.should_stop = True


def test_two_runs_of_one_config_end_with_the_same_weights(tmp_path: Path) -> None:
    weights = []
    for name in ("a", "b"):
        sets = ["epochs=1", f"output.dir={tmp_path / name}", "output.report=false"]
        config = load_config(DIGITS, [*sets, "runtime.progress=false"])
        outcome = run_training(config, callbacks=[stop_after_one_step])
        assert outcome.result.model_dir is not None
        weights.append(load_model(outcome.result.model_dir).state_dict())
        assert (
            json.loads((outcome.result.model_dir / "config.json").read_text())["preprocessing"]
            is None
        )  # 64-d vectors: nothing to record
    assert all(torch.equal(w, weights[1][k]) for k, w in weights[0].items())


@pytest.mark.parametrize(
    ("augmentation", "item_shape", "want"),
    [
        ({"size": [12, 10], "mean": [0.5] * 3, "std": [0.25] * 3}, (3, 16, 16), [12, 10]),
        ({"size": 6, "mean": None, "std": None, "eval_crop_fraction": 1.0}, (1, 9, 7), [6, 6]),
        (None, (3, 5, 7), [5, 7]),
    ],
)
def test_image_preprocessing_is_the_eval_pipeline_output(
    augmentation: dict[str, object] | None, item_shape: tuple[int, ...], want: list[int]
) -> None:
    item = torch.rand(item_shape)
    prep = image_preprocessing(augmentation, item)
    assert prep is not None and prep["image_size"] == want and prep["channels"] == item_shape[0]
    if augmentation is not None:  # oracle: what the eval pipeline actually outputs
        out = build_augmentation(augmentation, "eval")(item[None])
        assert list(out.shape[-2:]) == prep["image_size"]
    mean = None if augmentation is None else augmentation["mean"]
    assert prep.get("mean") == mean and (mean is None) == ("std" not in prep)
    assert image_preprocessing(None, torch.rand(64)) is None
    with pytest.raises(ValueError, match="mean must have one value per channel \\(1\\)"):
        image_preprocessing({"size": 4}, torch.rand(1, 4, 4))  # ImageNet mean, greyscale


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunConfig, RunOutcome]:
    config = image_config(tmp_path_factory.mktemp("image") / "run", val_set="test")
    return config, run_training(config)


def test_image_model_records_its_preprocessing(
    image_run: tuple[RunConfig, RunOutcome],
) -> None:
    config, _ = image_run
    card = json.loads(Path(config.output.dir, "model", "config.json").read_text())
    assert card["preprocessing"] == {
        "image_size": [8, 8],
        "channels": 1,
        "mean": [0.3],
        "std": [0.2],
    }
    assert load_model(Path(config.output.dir, "model")).preprocessing == card["preprocessing"]


def test_test_metrics_are_those_of_the_eval_pipeline(
    image_run: tuple[RunConfig, RunOutcome],
) -> None:
    config, outcome = image_run
    metrics = outcome.metrics
    model = load_model(Path(config.output.dir, "model"))
    test = DigitsDataset("test")
    # oracle: the eval pipeline built here, the saved model, and the protocol
    by_hand = embed(nn.Sequential(build_augmentation(AUGMENT, "eval"), model), test)
    want = evaluate_embeddings(by_hand, test, config.evaluation)
    saved = json.loads(Path(config.output.dir, "test_metrics.json").read_text())
    assert saved == pytest.approx(metrics) and metrics == pytest.approx(want, abs=1e-6)
    raw = evaluate_embeddings(embed(model, test), test, config.evaluation)
    assert raw["map_at_r"] != pytest.approx(want["map_at_r"], abs=1e-3)


def test_test_metrics_equal_validation_on_the_test_set(
    image_run: tuple[RunConfig, RunOutcome],
) -> None:
    _, outcome = image_run
    last = outcome.result.history[-1]  # validation embeds through the loop's eval pipeline
    for key in ("map_at_r", "precision_at_1", "recall_at_2", "mrr"):
        assert outcome.metrics[key] == pytest.approx(last[f"val_{key}"], abs=1e-6), key


SMALL_OMNIGLOT = [
    "data.train={name: omniglot, alphabets: [Latin, Greek, Korean, Braille, Futurama]}",
    "data.group=alphabet",
]


def test_group_disjoint_splits_rotations_and_hierarchical_options() -> None:
    from deepmetric.runs import build_data

    config = build_config(
        {}, [*SMALL_OMNIGLOT, "data.test_groups=[Korean]", "data.val_set=split",
             "data.val_fraction=0.25", "data.rotate_classes=true",
             "sampler.classes_per_group=4", "sampler.batch_size=16", "sampler.m_per_class=2"],
    )  # fmt: skip
    data = build_data(config)
    assert set(data.test.extra["alphabet"].tolist()) == {"Korean"}
    assert data.val is not None and len(set(data.val.extra["alphabet"].tolist())) == 1
    train_groups = {g.split("@")[0] for g in data.train.extra["alphabet"].tolist()}
    assert not train_groups & ({"Korean"} | set(data.val.extra["alphabet"].tolist()))
    assert len(train_groups) == 3 and data.train.num_classes % 4 == 0
    assert {"Latin@90", "Latin@270"} <= set(data.train.extra["alphabet"].tolist())
    options = config.train_options()
    assert (options.sampler.classes_per_group, options.group) == (4, "alphabet")
    seeded = build_data(build_config({}, [*SMALL_OMNIGLOT, "data.test_fraction=0.4"]))
    assert len(set(seeded.test.extra["alphabet"].tolist())) == 2  # 2 of 5 groups


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["data.test_groups=[Latin]"], "data.test_groups needs data.group"),
        ([*SMALL_OMNIGLOT, "data.test_groups=[Klingon]"], r"\['Klingon'\] are not groups"),
        (["sampler.classes_per_group=2"], "classes_per_group needs group"),
        (["data.rotate_classes=true"], "rotate_classes needs images"),
    ],
)
def test_group_options_that_cannot_work_say_why(overrides: list[str], match: str) -> None:
    from deepmetric.runs import build_data

    with pytest.raises((ConfigError, ValueError), match=match):
        build_data(build_config({}, overrides))


def test_protocol_lists_merge_few_shot_and_retrieval_metrics() -> None:
    from deepmetric.data import bundled_omniglot

    data = bundled_omniglot(["Korean", "Latin"])
    x = data.inputs.flatten(1).float() / 255
    ev = build_config(
        {}, ["evaluation.protocol=[fewshot, retrieval]", "evaluation.ways=20",
             "evaluation.queries=1", "evaluation.episodes=50", "evaluation.group=alphabet",
             "evaluation.source=drawing", "evaluation.metric=euclidean", "evaluation.ks=[1]"],
    ).evaluation  # fmt: skip
    found = evaluate_embeddings(x, data, ev)
    assert found["fewshot_episodes"] == 50 and 0.05 < found["fewshot_accuracy"] < 0.5
    assert {"map_at_r", "recall_at_1", "group_map_at_r", "group_recall_at_1"} <= set(found)
    assert found["group_recall_at_1"] <= found["recall_at_1"] + 0.05


def test_each_yaml_section_is_the_train_option_group_of_its_name() -> None:
    config = build_config(
        {}, ["validation.margin=0.5", "validation.select=recall_at_1", "validation.metric=dot",
             "sampler.m_per_class=2", "augmentation={size: 8}"],
    )  # fmt: skip
    options = config.train_options()
    for name in ("sampler", "optimizer", "schedule", "validation", "runtime", "augmentation"):
        assert getattr(options, name) == getattr(config, name), name
    assert (options.validation.margin, options.validation.select) == (0.5, "recall_at_1")
    assert options.validation.metric == "dot" and config.evaluation.metric == "cosine"


@pytest.mark.parametrize("protocol", ["clustering", "fewshot"])
def test_dot_is_not_turned_into_cosine_behind_the_users_back(protocol: str) -> None:
    from deepmetric.config import EvaluationConfig

    data = DigitsDataset(as_vectors=True).subset(list(range(200)))
    x = torch.randn(len(data), 4)
    ev = EvaluationConfig(protocol=protocol, metric="dot", ways=3, queries=2, episodes=5)
    with pytest.raises(ConfigError, match=f"the {protocol} protocol .*metric 'dot'.*'cosine'"):
        evaluate_embeddings(x, data, ev)
    ev = EvaluationConfig(protocol=protocol, metric="cosine", ways=3, queries=2, episodes=5)
    assert evaluate_embeddings(x, data, ev)


def test_a_single_test_class_fails_before_training(tmp_path: Path) -> None:
    config = build_config({}, ['data.test_classes=["9"]', f"output.dir={tmp_path / 'run'}"])
    with pytest.raises(ConfigError, match="the retrieval protocol needs at least 2 test classes"):
        run_training(config)
    assert not (tmp_path / "run").exists()  # failed before anything was written


def test_the_anomaly_protocol_holds_out_half_the_classes_as_anomalies() -> None:
    from deepmetric.config import EvaluationConfig
    from deepmetric.data import ArrayDataset
    from deepmetric.evaluation import anomaly_metrics

    rng = np.random.default_rng(0)
    labels = np.arange(120) % 6
    x = torch.as_tensor(np.eye(6)[labels] + 0.3 * rng.normal(size=(120, 6)), dtype=torch.float32)
    data = ArrayDataset(x, labels)
    found = evaluate_embeddings(x, data, EvaluationConfig(protocol="anomaly", metric="euclidean"))
    # the documented split, by hand: seed 0, half the classes normal, half their items reference
    split = np.random.default_rng(0)
    normal = split.permutation(np.unique(labels))[:3]
    is_normal = np.isin(labels, normal)
    reference = is_normal & (split.random(120) < 0.5)
    want = anomaly_metrics(x[~reference], ~is_normal[~reference], x[reference], labels[reference])
    assert found == want and found["knn_auroc"] > 0.9
