"""``deepmetric index`` and ``deepmetric search`` through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from deepmetric.cli import index as index_cli
from deepmetric.cli import search as search_cli
from deepmetric.cli import serve as serve_cli
from deepmetric.index import Encoder, ExactIndex, Index

from .fixtures import CLASSES, PER_CLASS, make_model


def cli() -> typer.Typer:
    """The commands as ``deepmetric.cli`` registers them."""
    app = typer.Typer()
    app.add_typer(index_cli.app, name="index")
    app.command("search")(search_cli.search)
    app.command("serve")(serve_cli.serve)
    return app


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli(), [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture
def built(tmp_path: Path, model_dir: Path, image_dir: Path) -> Path:
    code, out = run("index", "build", model_dir, "--data", image_dir, "--out", tmp_path / "idx")
    assert code == 0, out
    assert f"indexed {len(CLASSES) * PER_CLASS} items (Flat, cosine)" in out
    return tmp_path / "idx"


def test_build_indexes_every_image_with_its_class(built: Path, model_dir: Path) -> None:
    index = Index.load(built)
    items = index.items(np.arange(len(index)))
    assert sorted({i.label for i in items if i}) == list(CLASSES)
    assert all(i is not None and Path(str(i.source)).is_file() for i in items)
    assert index.fingerprint == Encoder(model_dir).fingerprint
    code, out = run("index", "info", built)
    assert code == 0 and "Flat" in out and "12 (0 tombstones)" in out


def test_search_images_equals_exact_search_of_their_vectors(
    built: Path, model_dir: Path, image_dir: Path
) -> None:
    files = sorted(str(p) for p in image_dir.rglob("*.png"))
    encoder = Encoder(model_dir)
    exact = ExactIndex(encoder.dim)
    exact.add(encoder.encode_files(files))
    want_scores, want_ids = exact.search(encoder.encode_files(files[:2]), 3)
    code, out = run("search", built, files[0], files[1], "-k", "3", "--json")
    assert code == 0, out
    report = json.loads(out)
    sources = {i.source: i.id for i in Index.load(built).items(np.arange(12)) if i}
    got = [[sources[files[i]] for i in row] for row in want_ids]  # exact ids -> index ids
    assert [[hit["id"] for hit in q["results"]] for q in report] == got
    scores = [[hit["score"] for hit in q["results"]] for q in report]
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5)
    assert report[0]["results"][0]["source"] == files[0]
    code, out = run("search", built, files[0], "-k", "2")
    assert code == 0 and files[0] in out and " 1 " in out


def test_search_with_vectors_add_and_remove(built: Path, image_dir: Path, tmp_path: Path) -> None:
    vectors = np.eye(8, dtype=np.float32)[:2]
    np.save(tmp_path / "q.npy", vectors)
    code, out = run("search", built, tmp_path / "q.npy", "-k", "4", "--json")
    assert code == 0, out
    assert [len(q["results"]) for q in json.loads(out)] == [4, 4]
    code, out = run("index", "add", built, "--data", image_dir / ".." / "images")
    assert code == 0 and "added 12 items (ids 12..23); the index holds 24" in out, out
    code, out = run("index", "remove", built, "0", "5")
    assert code == 0 and "the index holds 22" in out
    assert Index.load(built).items([0, 5, 6])[:2] == [None, None]


def test_bad_input_exits_non_zero_with_one_readable_line(
    built: Path, tmp_path: Path, image_dir: Path
) -> None:
    other_model = make_model(tmp_path / "other", seed=1)
    np.save(tmp_path / "wide.npy", np.ones((1, 5), dtype=np.float32))
    (tmp_path / "notes.txt").write_text("not an image")
    cases = [
        (
            ("index", "build", tmp_path / "nope", "--data", image_dir, "--out", tmp_path / "x"),
            "model directory",
        ),
        (
            (
                "index",
                "build",
                other_model,
                "--data",
                tmp_path / "missing",
                "--out",
                tmp_path / "x",
            ),
            "data must be a folder",
        ),
        (
            (
                "index",
                "build",
                other_model,
                "--data",
                image_dir,
                "--out",
                tmp_path / "x",
                "--metric",
                "dot",
            ),
            "--metric must be cosine or euclidean; got 'dot'",
        ),
        (("search", tmp_path / "nowhere", tmp_path / "wide.npy"), "does not exist"),
        (("search", built, tmp_path / "wide.npy"), "index dim is 8, query dim is 5"),
        (("search", built, tmp_path / "gone.png"), "query file(s) not found"),
        (("search", built, tmp_path / "notes.txt"), "cannot decode image"),
        (
            ("search", built, image_dir / "red" / "0.png", "--model", other_model),
            "but this index holds vectors of model",
        ),
        (("index", "remove", built, "999"), "ids not in the index: [999]"),
    ]
    for args, message in cases:
        code, out = run(*args)
        assert code == 2, (args, out)
        assert message in out, (args, out)
        assert out.strip().startswith("error:") and "Traceback" not in out
    assert len(Index.load(built)) == 12


def test_every_command_has_help() -> None:
    for args in (
        ("index", "build"),
        ("index", "add"),
        ("index", "remove"),
        ("search",),
        ("serve",),
    ):
        code, out = run(*args, "--help")
        assert code == 0 and "Usage" in out
