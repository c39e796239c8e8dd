"""Run configs: one typed, strict description of a training run, loaded from YAML.

A ``RunConfig`` has the sections ``data``, ``model``, ``loss``, ``miner``, ``sampler``,
``optimizer``, ``epochs``, ``schedule``, ``augmentation``, ``validation``, ``evaluation``,
``runtime`` and ``output``. The training sections are exactly the option groups that
``train()`` takes (``TrainOptions.sampler``, ``.optimizer``, ... are ``SamplerOptions``,
``OptimizerOptions``, ...; ``model`` is an ``EmbedderConfig``), so every name, rule and default
lives in one place. As everywhere in deepmetric, ``metric`` names how embeddings are compared
(``cosine``, ``euclidean``, ...) and ``validation.select`` the score that picks the best epoch.
``loss`` and ``miner`` are registry specs ``{"name": ..., **params}`` checked against the
registered class's signature. Every mapping rejects unknown keys with a close-match suggestion.
``--set key.path=value`` overrides are parsed as YAML scalars. ``save_config`` writes the
resolved config (every default filled in) next to a run's outputs.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .._atomic import write_text_atomically
from .._checks import unknown
from ..models import EmbedderConfig
from ..models.text import text_tower
from ..training import options as opt
from .overrides import ConfigError, apply_override, parse_overrides

Metric = Literal["cosine", "euclidean", "squared_euclidean", "dot"]
Protocol = Literal[
    "retrieval", "verification", "reid", "fewshot", "clustering", "anomaly", "cross_modal"
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_spec(kind: str, spec: Mapping[str, Any], *, injected: Sequence[str] = ()) -> None:
    """A registry spec's name is registered and its keys are parameters of that class."""
    from .. import losses, miners
    from ..data import DATASETS
    from ..models import BACKBONES

    registries: dict[str, Any] = {
        "loss": losses.LOSSES,
        "miner": miners.MINERS,
        "dataset": DATASETS,
        "backbone": BACKBONES,
    }
    registry = registries[kind]
    if not isinstance(spec.get("name"), str):
        raise ValueError(f"a {kind} spec needs a string 'name' key; got {dict(spec)!r}")
    try:
        registry.check(spec, supplied=injected)
    except KeyError as err:
        raise ValueError(str(err.args[0])) from None


_INJECTED = ("num_classes", "embedding_dim")


def _augment(values: Mapping[str, Any]) -> None:
    from ..data import AugmentConfig

    AugmentConfig.from_mapping(values)


class DataConfig(_Section):
    """Where the training and test items come from.

    ``train`` and ``test`` are ``deepmetric.data.build_dataset`` specs. Without ``test``, the
    classes named in ``test_classes`` (or, when that is empty, a seeded ``test_fraction`` of
    the classes, see ``class_disjoint_split``) are held out of ``train`` as the test set.
    ``val_set`` picks the set used for best-model selection during training: ``"none"``
    (train for the given epochs), ``"split"`` (a ``val_fraction`` of the training classes,
    held out of training) or ``"test"`` (the test set; common in papers, optimistic).

    ``group`` names a coarse label among the items' ``extra`` fields (an alphabet, a product
    super-class). With it the splits hold out whole groups: ``test_groups`` by name, else a
    seeded ``test_fraction`` of the groups, and ``val_set: split`` a ``val_fraction`` of the
    training groups; ``sampler.classes_per_group`` builds batches from it and the miner
    ``{name: within_group}`` mines inside each group of a batch. ``rotate_classes``
    adds each training image turned by 90, 180 and 270 degrees as new classes
    (``deepmetric.data.with_rotated_classes``); validation and test stay upright.

    ``train_labels: false`` trains without the class labels of ``train`` (self-supervised:
    every item a class of its own, two augmented views of it per batch; held-out test and
    validation classes are carved out first and keep their labels, to score the model).
    ``unlabelled`` is a dataset spec whose items join training without labels
    (semi-supervised: SupCon on the labelled part); see ``deepmetric.data.unlabelled``.

    ``search`` marks a trial of a hyper-parameter search (``deepmetric tune``): the test split
    is never loaded (``test`` is not opened; held-out test classes or groups are dropped), and a
    seeded ``val_fraction`` of the remaining training classes (groups) is both the validation
    set and what the run scores at the end.
    """

    train: dict[str, Any] = {"name": "digits", "as_vectors": True}
    test: dict[str, Any] | None = None
    test_classes: list[str] = []
    group: str | None = None
    test_groups: list[str] = []
    test_fraction: float = 0.3
    split_seed: int = 0
    val_set: Literal["none", "split", "test"] = "none"
    val_fraction: float = 0.2
    rotate_classes: bool = False
    train_labels: bool = True
    unlabelled: dict[str, Any] | None = None
    search: bool = False

    @field_validator("train", "test", "unlabelled")
    @classmethod
    def _dataset(cls, spec: dict[str, Any] | None) -> dict[str, Any] | None:
        if spec is not None:
            _check_spec("dataset", spec)
        return spec

    @model_validator(mode="after")
    def _fractions(self) -> DataConfig:
        for name in ("test_fraction", "val_fraction"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"data.{name} must be in (0, 1); got {getattr(self, name)!r}")
        if self.test_groups and self.group is None:
            raise ValueError("data.test_groups needs data.group, the field that holds the groups")
        if self.test_groups and self.test_classes:
            raise ValueError("data.test_classes and data.test_groups exclude each other; use one")
        return self


class EvaluationConfig(_Section):
    """How the test embeddings are compared and scored after training (``validation``, a
    ``ValidationOptions``, says how during training).

    ``protocol`` is one protocol or a list of them (their metrics are merged). The few-shot
    protocol draws ``episodes`` seeded ``ways``-way ``shots``-shot episodes with ``queries``
    queries per class; ``group`` (an ``extra`` field, e.g. ``alphabet``) draws each episode's
    classes from one group and ``source`` (e.g. ``drawing``, the drawer) takes the support
    and query items from different sources. With ``group``, retrieval adds ``group_*``
    metrics, each query ranking only the items of its own group. The reid protocol can re-rank:
    ``query_expansion`` (alpha-QE over that many gallery neighbours, 0 for none) and then
    ``rerank: k_reciprocal`` (Zhong et al. 2017, k1 20, k2 6, lambda 0.3)."""

    protocol: Protocol | list[Protocol] = "retrieval"
    metric: Metric = "cosine"
    ks: list[int] = [1, 2, 4, 8]
    batch_size: int = 256
    ways: int = 5
    shots: int = 1
    queries: int = 15
    episodes: int = 600
    group: str | None = None
    source: str | None = None
    rerank: Literal["k_reciprocal"] | None = None
    query_expansion: Annotated[int, Field(ge=0)] = 0

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol(cls, value: Any) -> Any:
        names = typing.get_args(Protocol)
        for item in value if isinstance(value, list) else [value]:
            if item not in names:
                allowed = ", ".join(repr(n) for n in names[:-1]) + f" or {names[-1]!r}"
                raise ValueError(f"Input should be {allowed}, or a list of them; got {item!r}")
        return value

    def protocols(self) -> list[str]:
        """``protocol`` as a list."""
        return [self.protocol] if isinstance(self.protocol, str) else list(self.protocol)


class OutputConfig(_Section):
    """Where the run writes: ``dir`` gets config.yaml, checkpoints/, metrics.jsonl, model/.

    ``baselines`` also scores the test set's raw inputs (flattened, after the eval transform)
    and the untrained network, into ``baselines.json`` and the report."""

    dir: str = "runs/run"
    report: bool = True
    baselines: bool = False


class RunConfig(_Section):
    """A whole training run; see the module docstring and ``configs/*.yaml``.

    Example:
        >>> cfg = RunConfig()
        >>> cfg.data.train["name"], cfg.train_options().sampler.batch_size
        ('digits', 32)
    """

    data: DataConfig = DataConfig()
    model: EmbedderConfig = EmbedderConfig(
        backbone={"name": "mlp", "in_features": 64, "hidden_sizes": [256]}, embedding_dim=64
    )
    text_model: dict[str, Any] | None = None
    pretrained: str | None = None
    loss: dict[str, Any] = {"name": "multi_similarity"}
    miner: dict[str, Any] | None = None
    sampler: opt.SamplerOptions = opt.SamplerOptions()
    optimizer: opt.OptimizerOptions = opt.OptimizerOptions()
    epochs: int = 10
    schedule: opt.ScheduleOptions = opt.ScheduleOptions()
    augmentation: dict[str, Any] | None = None
    validation: opt.ValidationOptions = opt.ValidationOptions()
    evaluation: EvaluationConfig = EvaluationConfig()
    runtime: opt.RuntimeOptions = opt.RuntimeOptions()
    output: OutputConfig = OutputConfig()

    @model_validator(mode="after")
    def _components(self) -> RunConfig:
        checks = [
            ("model.backbone", lambda: _check_spec("backbone", self.model.backbone)),
            ("text_model", self._check_text_model),
            ("loss", lambda: _check_spec("loss", self.loss, injected=_INJECTED)),
            ("miner", lambda: _check_spec("miner", self.miner) if self.miner else None),
            ("augmentation", lambda: _augment(self.augmentation) if self.augmentation else None),
            ("", self.train_options),  # the trainer's checks name their own fields
        ]
        for where, check in checks:
            try:
                check()
            except (KeyError, TypeError, ValueError) as err:
                message = str(err.args[0] if err.args else err)
                raise ValueError(f"{where}: {message}" if where else message) from None
        return self

    def _check_text_model(self) -> None:
        """A dual encoder's text tower (``vocab: auto``: the training captions'); no report."""
        if self.text_model is not None:
            EmbedderConfig.from_dict(text_tower(self.text_model, []))
            if self.output.report or self.output.baselines:
                raise ValueError("a dual encoder has no run report or baselines yet; set "
                                 "output.report: false and output.baselines: false")  # fmt: skip

    def train_options(self) -> opt.TrainOptions:
        """The ``TrainOptions`` this config describes: its sections of the same names."""
        return opt.TrainOptions(
            epochs=self.epochs,
            sampler=self.sampler,
            optimizer=self.optimizer,
            schedule=self.schedule,
            validation=self.validation,
            runtime=self.runtime,
            augmentation=self.augmentation,
            group=self.data.group,
        )

    def to_dict(self) -> dict[str, Any]:
        """Every field, defaults included, as plain YAML/JSON-ready containers."""
        return _plain(self.model_dump(mode="json"))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _fields(kind: Any) -> dict[str, Any] | None:
    """The field types of a pydantic model or dataclass, or None for anything else."""
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return {name: f.annotation for name, f in kind.model_fields.items()}
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return dict(typing.get_type_hints(kind))
    return None


def _check_keys(data: Any, kind: Any, where: str) -> None:
    """Reject unknown keys anywhere in ``data`` with a did-you-mean, before validation."""
    for option in typing.get_args(kind) or (kind,):
        fields = _fields(option)
        if fields is None or not isinstance(data, Mapping):
            continue
        for key, value in data.items():
            if key not in fields:
                raise ConfigError(unknown("key", key, list(fields), where or "the config"))
            _check_keys(value, fields[key], f"{where}.{key}" if where else str(key))


def _error_line(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    if not where:
        return message
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{where}: {message}{more}"


def build_config(data: Mapping[str, Any], overrides: Sequence[str] = ()) -> RunConfig:
    """Validate a config mapping (with ``--set`` overrides applied); ``ConfigError`` if bad.

    Example:
        >>> build_config({}, ["epochs=2"]).epochs
        2
        >>> build_config({"schedul": {}})
        Traceback (most recent call last):
        ...
        deepmetric.config.ConfigError: unknown key 'schedul' in the config; did you mean \
'schedule'? (known: data, model, text_model, pretrained, loss, miner, sampler, optimizer, epochs, \
schedule, augmentation, validation, evaluation, runtime, output)
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"a config must be a mapping of sections; got {type(data).__name__}")
    merged = _plain(data)
    defaults = RunConfig().to_dict()
    for path, value in parse_overrides(overrides):
        apply_override(merged, path, value, defaults)
    _check_keys(merged, RunConfig, "")
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as err:
        raise ConfigError(_error_line(err)) from None


def load_config(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> RunConfig:
    """Read a YAML run config, apply ``key.path=value`` overrides, validate it."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {str(file)!r} not found; see configs/ for examples")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        line = getattr(getattr(err, "problem_mark", None), "line", None)
        at = f" (line {line + 1})" if line is not None else ""
        raise ConfigError(f"{str(file)!r} is not valid YAML{at}; fix the file") from None
    try:
        return build_config({} if data is None else data, overrides)
    except ConfigError as err:
        raise ConfigError(f"{file}: {err}") from None


def save_config(config: RunConfig, path: str | os.PathLike[str]) -> Path:
    """Write the resolved config as YAML, atomically (temporary file, then rename)."""
    target = Path(path)
    write_text_atomically(target, yaml.safe_dump(config.to_dict(), sort_keys=False))
    return target


__all__ = [
    "ConfigError",
    "DataConfig",
    "EvaluationConfig",
    "OutputConfig",
    "RunConfig",
    "build_config",
    "load_config",
    "parse_overrides",
    "save_config",
]
