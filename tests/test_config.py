"""Run configs: every example config validates; bad keys and values give one readable line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deepmetric.config import ConfigError, build_config, load_config, parse_overrides, save_config
from deepmetric.training import OptimizerOptions

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_the_example_configs_are_there() -> None:
    names = {p.stem for p in CONFIGS}
    assert {"digits", "omniglot", "cub200_resnet50", "sop", "market1501", "lfw"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_example_config_loads_and_round_trips(path: Path, tmp_path: Path) -> None:
    config = load_config(path)
    options = config.train_options()
    assert options.epochs == config.epochs and options.batch_size == config.sampler.batch_size
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
        ({"loss": {"name": "proxy_anchor", "num_classes": 3}}, [], "unknown key 'num_classes'"),
        ({}, ["miner.name=batch_hrd"], "did you mean 'batch_hard'"),
        ({}, ["model.backbone.name=resnt50"], "did you mean 'resnet50'"),
        ({}, ["data.train.name=cub"], "data.train: unknown dataset 'cub'; did you mean 'cub200'"),
        ({}, ["augmentation.sise=3"], "augmentation: .*'sise' \\(did you mean 'size'\\?\\)"),
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
        (["optimizer.lr=-1"], "optimizer: optimizer.lr must be a finite number > 0; got -1"),
        (["sampler.batch_size=30"], "batch_size must be a multiple of m_per_class"),
        (["evaluation.select=recall_at_3"], "validation.metric must be one of"),
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
