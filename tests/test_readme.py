"""The README runs as written: its Python blocks, and the command lines of its sh blocks.

The commands are read from the README itself, so the text and the test cannot drift apart: every
``deepmetric`` line must parse (its subcommand and options exist), the quick-start lines run in a
temporary directory with tiny settings appended (``serve`` and ``bench`` are only parsed), and
the benchmark-config lines print the config they name, with their overrides applied.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer.main
import yaml
from typer.testing import CliRunner

from deepmetric.cli import app
from deepmetric.data import DigitsDataset
from deepmetric.models import embed, load_model
from tests.index.fixtures import make_images, make_model

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
TEXT = README.read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)
SH_BLOCKS = re.findall(r"```sh\n(.*?)```", TEXT, flags=re.S)
Line = tuple[dict[str, str], list[str]]
runner = CliRunner()


def command_lines(block: str) -> list[Line]:
    """Each command of an sh block as ``(environment assignments, words)``; continuation lines
    are joined and comments dropped, as the shell does."""
    lines = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        env = {}
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
            name, _, value = words.pop(0).partition("=")
            env[name] = value
        if words:
            lines.append((env, words))
    return lines


def block_with(text: str) -> list[Line]:
    (block,) = [b for b in SH_BLOCKS if text in b]
    return command_lines(block)


ALL = [line for block in SH_BLOCKS for line in command_lines(block)]
DEEPMETRIC = [words for _, words in ALL if words[0] == "deepmetric"]
QUICKSTART = block_with("deepmetric demo")
CONFIG_LINES = [words for _, words in block_with("configs/cub200_resnet50.yaml")]
# appended to the quick-start lines so that they run in seconds
TINY = {
    "demo": ["--epochs", "1", "--no-report"]
    + [
        f"--set={s}"
        for s in (
            "data.train={name: omniglot, alphabets: [Latin, Greek, Korean]}",
            "data.test_groups=[Korean]",
            "data.rotate_classes=false",
            "sampler.batch_size=20",
            "sampler.classes_per_group=5",
            "evaluation.episodes=20",
        )
    ],  # fmt: skip
    "train": ["--set", "epochs=1", "--set", "output.report=false"],
}


def parse(args: list[str]) -> tuple[str, dict[str, Any]]:
    """The subcommand path and parameters of ``deepmetric ARGS``, as the command line parses
    them (an unknown subcommand, option or a missing argument raises); nothing runs."""
    command, words, path = typer.main.get_command(app), list(args), []
    while hasattr(command, "commands"):  # a group: the next word names a subcommand
        name = words.pop(0)
        assert name in command.commands, f"no subcommand {name!r}; known: {command.commands}"
        command, path = command.commands[name], [*path, name]
    context = command.make_context(" ".join(path), words)
    return " ".join(path), context.params


def overrides(words: list[str]) -> list[tuple[list[str], Any]]:
    """The ``--set key.path=value`` pairs of a train line, values read as YAML."""
    pairs = [words[i + 1].partition("=") for i, word in enumerate(words) if word == "--set"]
    return [(key.split("."), yaml.safe_load(value)) for key, _, value in pairs]


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_runs(code: str) -> None:
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})


def test_readme_opens_with_the_two_commands() -> None:
    head = README.read_text()[:1500]
    assert "make demo" in head and "make test" in head


def test_sh_blocks_hold_only_make_and_deepmetric_commands() -> None:
    assert {words[0] for _, words in ALL} == {"make", "deepmetric"}
    used = {parse(words[1:])[0].split()[0] for words in DEEPMETRIC}
    assert used == set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert [" ".join(words) for _, words in ALL[:2]] == ["make demo", "make test"]


@pytest.mark.parametrize("words", DEEPMETRIC, ids=[" ".join(w[1:3]) for w in DEEPMETRIC])
def test_every_command_line_parses(words: list[str]) -> None:
    name, params = parse(words[1:])
    assert name and params


def test_resume_repeats_the_overrides_of_the_run_it_resumes() -> None:
    trains = [words for _, words in QUICKSTART if words[1] == "train"]
    (first, resume) = trains
    assert "--resume" in resume and overrides(resume) == overrides(first)


def test_bench_and_serve_lines_name_what_exists() -> None:
    (bench,) = [w for w in DEEPMETRIC if w[1] == "bench"]
    result = runner.invoke(app, [*bench[1:], "--dir", str(REPO / "bench"), "--list"])
    assert result.exit_code == 0, result.output
    assert set(parse(bench[1:])[1]["only"]) <= set(result.stdout.split())
    (serve,) = [(env, w) for env, w in QUICKSTART if w[1] == "serve"]
    assert parse(serve[1][1:])[1]["writes"] and "DEEPMETRIC_TOKEN" in serve[0]
    (build,) = [w for _, w in QUICKSTART if w[1:3] == ["index", "build"]]
    assert str(parse(serve[1][1:])[1]["index_dir"]) == str(parse(build[1:])[1]["out"])


def _prepare(name: str, params: dict[str, Any], images: list[Path]) -> None:
    """Create what a quick-start line names as input and nothing in the README creates: the
    image model and photo folder of ``index build``, the query image of ``search``."""
    if name == "index build":
        make_model(Path(params["run"]))
        images.extend(sorted(make_images(Path(params["data"])).rglob("*.png")))
    if name == "search":
        for query in params["queries"]:
            shutil.copyfile(images[5], query)


def _check(name: str, params: dict[str, Any], stdout: str, images: list[Path]) -> None:
    """What each quick-start command must have produced, checked independently."""
    if name == "demo":
        assert "done in" in stdout and Path(params["out_dir"], "model", "config.json").is_file()
    if name == "train":
        assert Path("runs/digits/model/model.safetensors").is_file() and "map_at_r" in stdout
    if name == "evaluate":  # the run's own test set: the digits that training never saw
        scores = json.loads(stdout)
        held_out = yaml.safe_load((REPO / "configs" / "digits.yaml").read_text())["data"]
        digits = DigitsDataset(as_vectors=True)
        names = np.asarray(digits.class_names)[digits.labels]
        expected = int(np.isin(names, held_out["test_classes"]).sum())
        assert 0.0 <= scores["map_at_r"] <= 1.0 and scores["num_queries"] == expected
    if name == "embed":
        with np.load(params["out"]) as saved:
            digits = DigitsDataset(as_vectors=True)
            want = embed(load_model(params["run"]), digits).numpy()
            np.testing.assert_allclose(saved["embeddings"], want, atol=1e-5)
            assert saved["labels"].tolist() == digits.labels.tolist()
    if name == "index build":
        assert f"indexed {len(images)} items" in stdout and Path(params["out"]).is_dir()
    if name == "search":
        (found,) = json.loads(stdout)
        assert len(found["results"]) == params["k"]
        best = found["results"][0]  # the query is a copy of an indexed image
        assert (
            Path(best["source"]).name == images[5].name and best["label"] == images[5].parent.name
        )
        assert best["score"] == pytest.approx(1.0, abs=1e-4)
    if name == "explain":  # the query's 3 nearest items and the nearest of another class
        assert stdout.count("\n#") == 2 and "why not:" in stdout and "100% accounted" in stdout
        assert Path(params["out"]).is_file()


def test_quickstart_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(REPO / "configs")
    images: list[Path] = []
    ran = []
    for env, words in QUICKSTART:
        if words[0] != "deepmetric" or words[1] in ("serve", "bench"):  # long-running; parsed
            continue
        args = [*words[1:], *TINY.get(words[1], [])]
        name, params = parse(args)
        _prepare(name, params, images)
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 0, (args, result.output)
        _check(name, params, result.stdout, images)
        ran.append(name)
    assert ran == [
        "demo", "train", "train", "evaluate", "embed", "index build", "search", "explain"
    ]  # fmt: skip


@pytest.mark.parametrize("words", CONFIG_LINES, ids=[w[2] for w in CONFIG_LINES])
def test_config_lines_print_their_config(words: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = runner.invoke(app, [*words[1:], "--print-config"])
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)
    expected = yaml.safe_load(Path(words[2]).read_text())
    for path, value in overrides(words):
        node = expected
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    assert_contains(printed, expected)


def assert_contains(printed: Any, expected: Any, where: str = "") -> None:
    """Every value of ``expected`` is in ``printed`` (which also holds the defaults)."""
    if isinstance(expected, dict):
        for key, value in expected.items():
            assert isinstance(printed, dict) and key in printed, f"{where}.{key} not printed"
            assert_contains(printed[key], value, f"{where}.{key}")
    else:
        assert printed == expected, f"{where}: printed {printed!r}, expected {expected!r}"
