"""build_report: one self-contained page whose numbers and query lists match independent oracles."""

from __future__ import annotations

import base64
import re
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from deepmetric import _atomic
from deepmetric.evaluation import clustering_metrics, retrieval_metrics
from deepmetric.report import EmbeddingSet, build_report, environment_info, plots
from tests.reference.retrieval import naive_metrics, naive_ranking

HEADINGS = (
    "Results",
    "Training curves",
    "Distance monitor",
    "Recall@K",
    "Embedding projection",
    "Retrieval examples",
    "Worst queries",
    "Configuration",
    "Environment",
)
KS = (1, 2, 4, 8)


def digits_sets() -> tuple[EmbeddingSet, EmbeddingSet, EmbeddingSet]:
    """200 digits (8x8 images, 10 classes): raw pixels, a random projection, a noisy class code."""
    digits = load_digits()
    images, labels = digits.images[:200], digits.target[:200].astype(np.int64)
    pixels = images.reshape(200, 64)
    rng = np.random.default_rng(0)
    before = pixels @ rng.normal(size=(64, 16))
    after = np.eye(16)[labels] * 2.0 + rng.normal(scale=0.6, size=(200, 16))
    names = [f"digit {c}" for c in range(10)]
    return (
        EmbeddingSet(pixels, labels),
        EmbeddingSet(torch.tensor(before, dtype=torch.float32), torch.from_numpy(labels)),
        EmbeddingSet(after, labels, images=images, class_names=names),
    )


HISTORY = [
    *[
        {"kind": "step", "step": s, "epoch": s // 4, "loss": 1.0 / (s + 1), "lr": 0.1}
        for s in range(8)
    ],
    *[
        {
            "epoch": e,
            "loss": 1.0 - 0.2 * e,
            "lr": 0.1 * 0.5**e,
            "val/map_at_r": 0.2 + 0.1 * e,
            "val_recall_at_1": 0.5 + 0.1 * e,
            "monitor/pos_distance": 0.5 - 0.1 * e,
            "monitor/neg_distance": 0.9 + 0.05 * e,
            "monitor/violation_fraction": 0.3 / (e + 1),
        }
        for e in range(3)
    ],
]
CONFIG = {"loss": {"name": "triplet", "margin": 0.2}, "note": "<script>alert('x')</script>"}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, tuple[EmbeddingSet, ...]]:
    baseline, before, after = digits_sets()
    path = tmp_path_factory.mktemp("report") / "report.html"
    out = build_report(path, history=HISTORY, before=before, after=after, config=CONFIG,
                       baseline=baseline, projection="pca", title="digits <run>")  # fmt: skip
    assert out == path
    return path.read_text(encoding="utf-8"), (baseline, before, after)


def _section(page: str, anchor: str) -> str:
    match = re.search(rf'<section id="{anchor}">(.*?)</section>', page, re.S)
    assert match, anchor
    return match.group(1)


def _small_sets(images: bool = True) -> tuple[EmbeddingSet, EmbeddingSet]:
    rng = np.random.default_rng(1)
    labels = np.arange(30) % 3
    pictures = rng.integers(0, 256, size=(30, 6, 6, 3), dtype=np.uint8) if images else None
    before = EmbeddingSet(rng.normal(size=(30, 4)), labels, pictures)
    after = EmbeddingSet(np.eye(4)[labels] + rng.normal(scale=0.5, size=(30, 4)), labels, pictures)
    return before, after


def test_single_self_contained_file(report: tuple[str, tuple[EmbeddingSet, ...]]) -> None:
    page, _ = report
    assert page.startswith("<!DOCTYPE html>")
    assert "http://" not in page and "https://" not in page
    for forbidden in ("<script", "<link", "@import", "url("):
        assert forbidden not in page.lower()
    assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', page))
    images = re.findall(r"<img [^>]*>", page)
    assert len(images) >= 8  # curves, monitor, histograms, recall, projection, two grids
    for tag in images:
        (src,) = re.findall(r'src="([^"]*)"', tag)
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_section_heading_and_link(report: tuple[str, tuple[EmbeddingSet, ...]]) -> None:
    page, _ = report
    for heading in HEADINGS:
        assert f"<h2>{heading}</h2>" in page
    for anchor in re.findall(r'href="#([^"]*)"', page):
        assert f'<section id="{anchor}">' in page


def test_headline_numbers_equal_retrieval_metrics(
    report: tuple[str, tuple[EmbeddingSet, ...]], oracle: Oracle
) -> None:
    page, sets = report
    y = torch.as_tensor(sets[2].labels)
    naive, _ = naive_metrics(oracle[0], y, y, KS)  # the after set, by a full sort
    for name, s in zip(("baseline", "before", "after"), sets, strict=True):
        direct = retrieval_metrics(s.embeddings, s.labels, ks=KS, metric="cosine")
        nmi = clustering_metrics(np.asarray(s.embeddings), np.asarray(s.labels), metric="cosine")
        keys = [f"recall_at_{k}" for k in KS] + ["r_precision", "map_at_r"]
        for key in keys:
            pattern = rf'data-metric="{key}" data-set="{name}" data-value="([^"]*)"'
            shown = [float(v) for v in re.findall(pattern, page)]
            assert shown and all(v == direct[key] for v in shown), (name, key)
            if name == "after":
                assert shown[0] == pytest.approx(np.mean(naive[key]), abs=1e-9)
        pattern = rf'data-metric="nmi" data-set="{name}" data-value="([^"]*)"'
        assert float(re.findall(pattern, page)[0]) == nmi["nmi"]
    cards = re.findall(r'class="value" data-metric="(\w+)" data-set="after"', page)
    assert cards == ["recall_at_1", "map_at_r"]


Oracle = tuple[list[list[int]], list[float]]


@pytest.fixture(scope="module")
def oracle(report: tuple[str, tuple[EmbeddingSet, ...]]) -> Oracle:
    """Full-sort rankings and per-query MAP@R of the after set (tests/reference/retrieval.py)."""
    after = report[1][2]
    x, y = torch.as_tensor(after.embeddings).double(), torch.as_tensor(after.labels)
    ranking = naive_ranking(x, None, "cosine")
    per_query, _ = naive_metrics(ranking, y, y, (1,))
    return ranking, per_query["map_at_r"]


def test_worst_queries_are_the_lowest_map_at_r(
    report: tuple[str, tuple[EmbeddingSet, ...]], oracle: Oracle
) -> None:
    page, _ = report
    ranking, ap = oracle
    expected = sorted(range(len(ap)), key=lambda i: (round(ap[i], 12), i))[:8]
    worst = _section(page, "worst")
    shown = [int(q) for q in re.findall(r'data-query="(\d+)"', worst)]
    assert shown == expected
    assert ap[expected[0]] < np.mean(ap)  # the list is not trivially the first items
    rows = worst.split("<tr>")[2:]
    for query, row in zip(shown, rows, strict=True):
        assert [int(i) for i in re.findall(r'data-item="(\d+)"', row)] == ranking[query][:5]


def test_retrieval_examples_show_the_exact_nearest_neighbours(
    report: tuple[str, tuple[EmbeddingSet, ...]], oracle: Oracle
) -> None:
    page, (_, _, after) = report
    ranking, _ = oracle
    part = _section(page, "retrieval")
    queries = [int(q) for q in re.findall(r'data-query="(\d+)"', part)]
    assert len(queries) == 8 and queries == sorted(set(queries))
    labels = np.asarray(after.labels)
    for query, row in zip(queries, part.split("<tr>")[2:], strict=True):
        items = [int(i) for i in re.findall(r'data-item="(\d+)"', row)]
        assert items == ranking[query][:5]
        kinds = re.findall(r'class="chip (hit|miss)"', row)
        assert kinds == ["hit" if labels[i] == labels[query] else "miss" for i in items]
    assert part.count("<img ") == 1  # the thumbnail grid


def test_user_text_is_escaped(report: tuple[str, tuple[EmbeddingSet, ...]]) -> None:
    page, _ = report
    assert "<script>" not in page and "alert(" not in page.split('<section id="config">')[0]
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<title>digits &lt;run&gt;</title>" in page
    assert "<td>loss.margin</td><td>0.2</td>" in page


def test_hostile_names_and_keys_are_escaped(tmp_path: Path) -> None:
    before, after = _small_sets()
    names = ['<img src=x onerror="1">', "b&b", "c"]
    after = EmbeddingSet(after.embeddings, after.labels, after.images, names)
    page = build_report(tmp_path / "r.html", history=[{"<b>": 1.0, "epoch": 0}], before=before,
                        after=after, config={"<k>": {"x": "</td>"}}, environment={"a": "<i>"},
                        projection="pca", ks=(1,)).read_text()  # fmt: skip
    assert "<img src=x" not in page and "<b>" not in page and "<k>" not in page
    assert "&lt;img src=x onerror=&quot;1&quot;&gt;" in page
    assert "<td>&lt;k&gt;.x</td><td>&lt;/td&gt;</td>" in page
    assert "<td>&lt;i&gt;</td>" in page


def test_empty_history_gives_notes_not_a_crash(tmp_path: Path) -> None:
    before, after = _small_sets()
    page = build_report(tmp_path / "r.html", history=[], before=before, after=after, config={},
                        projection="pca", ks=(1, 2)).read_text()  # fmt: skip
    assert "No training history was recorded." in _section(page, "training")
    monitor = _section(page, "monitor")
    assert "No monitor statistics were recorded" in monitor
    assert monitor.count("<img ") == 1  # the before/after histograms still appear
    assert "Nothing recorded." in _section(page, "config")
    assert "<td>torch</td>" in _section(page, "environment")  # environment_info() by default


def test_without_images_a_table_replaces_the_grid(tmp_path: Path) -> None:
    before, after = _small_sets(images=False)
    backend, params = matplotlib.get_backend(), dict(matplotlib.rcParams)
    had_pyplot = "matplotlib.pyplot" in sys.modules
    page = build_report(tmp_path / "r.html", history=HISTORY, before=before, after=after,
                        config={}, projection="pca", ks=(1,)).read_text()  # fmt: skip
    # matplotlib's global state is untouched: no backend switch, no rcParams, no pyplot
    assert matplotlib.get_backend() == backend
    assert dict(matplotlib.rcParams) == params
    assert ("matplotlib.pyplot" in sys.modules) == had_pyplot
    for anchor in ("retrieval", "worst"):
        part = _section(page, anchor)
        assert "<img " not in part
        assert len(re.findall(r'data-query="\d+"', part)) == 8
        assert len(re.findall(r'class="chip (?:hit|miss)"', part)) == 8 * 5
    assert "<td>0</td>" in _section(page, "worst")  # labels stand in for class names


def test_failures_leave_the_previous_report_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before, after = _small_sets()
    path = tmp_path / "report.html"
    path.write_text("previous report", encoding="utf-8")

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(_atomic.os, "replace", fail)
        with pytest.raises(OSError, match="disk full"):
            build_report(path, history=[], before=before, after=after, config={},
                         projection="pca", ks=(1,))  # fmt: skip
    with monkeypatch.context() as patch:
        patch.setattr(plots, "histograms_figure", fail)
        with pytest.raises(OSError, match="disk full"):
            build_report(path, history=[], before=before, after=after, config={},
                         projection="pca", ks=(1,))  # fmt: skip
    assert path.read_text(encoding="utf-8") == "previous report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_environment_info_describes_this_process() -> None:
    info = environment_info()
    assert info["torch"] == torch.__version__ and info["numpy"] == np.__version__
    assert info["python"] == ".".join(map(str, sys.version_info[:3]))
    assert info["torch_threads"] == torch.get_num_threads()
    assert set(info) >= {"faiss", "platform", "cpu_count", "cuda", "scikit-learn", "matplotlib"}


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    before, after = _small_sets()
    path = tmp_path / "r.html"

    def build(**changes: object) -> None:
        args: dict[str, object] = {"history": [], "before": before, "after": after, "config": {},
                                   "projection": "pca", "ks": (1,)}  # fmt: skip
        args.update(changes)
        build_report(path, **args)  # type: ignore[arg-type]

    shuffled = EmbeddingSet(after.embeddings, np.roll(np.asarray(after.labels), 1))
    with pytest.raises(ValueError, match="after.labels must equal before.labels"):
        build(after=shuffled)
    with pytest.raises(ValueError, match=r"before.images must have shape \(30, H, W\)"):
        build(before=EmbeddingSet(before.embeddings, before.labels, np.zeros((30, 4, 4, 2))))
    with pytest.raises(ValueError, match="after.labels must index after.class_names"):
        build(after=EmbeddingSet(after.embeddings, after.labels, class_names=["a", "b"]))
    with pytest.raises(ValueError, match=r"ks must lie in \[1, 29\] for 30 items; got \[30\]"):
        build(ks=(30,))
    with pytest.raises(ValueError, match="ks must be a non-empty sequence of integers"):
        build(ks=())
    with pytest.raises(TypeError, match="history must be a sequence of mappings"):
        build(history={"loss": 1.0})
    with pytest.raises(ValueError, match="metric must be one of"):
        build(metric="manhattan")
    with pytest.raises(ValueError, match="projection must be 'auto', 'tsne' or 'pca'"):
        build(projection="umap")
    with pytest.raises(ValueError, match="before.embeddings must be finite"):
        bad = np.asarray(before.embeddings).copy()
        bad[0, 0] = np.nan
        build(before=EmbeddingSet(bad, before.labels))
    with pytest.raises(ValueError, match="must hold at least 3 items"):
        build(before=EmbeddingSet(np.eye(2), [0, 0]), after=EmbeddingSet(np.eye(2), [0, 0]))
    assert not path.exists()
