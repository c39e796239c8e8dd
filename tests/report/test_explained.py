"""The report's "Why pairs match" section: which pairs, drawn from real explanations."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import torch

from deepmetric.explain import explain_pairs
from deepmetric.models import Embedder
from deepmetric.report import EmbeddingSet, build_report


def explained_sets() -> tuple[EmbeddingSet, EmbeddingSet, object]:
    """30 images of 3 colour classes, a tiny conv model, and its explainer."""
    rng = np.random.default_rng(0)
    labels = np.arange(30) % 3
    pictures = rng.integers(0, 120, size=(30, 16, 16, 3))
    pictures[np.arange(30), :, :, labels] += 100  # the class's colour channel
    pictures[:, 4:8, 4:8] = rng.integers(0, 255, size=(30, 1, 1, 3))  # a patch of any colour
    pictures = pictures.astype(np.uint8)
    torch.manual_seed(0)
    model = Embedder({"backbone": {"name": "conv4", "channels": 8, "num_blocks": 2},
                      "embedding_dim": 8}).eval()  # fmt: skip
    x = torch.as_tensor(pictures).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        after = EmbeddingSet(model(x).numpy(), labels, pictures)
    before = EmbeddingSet(rng.normal(size=(30, 8)), labels, pictures)

    def explain(query, others):
        return explain_pairs(model, x[query], x[list(others)])

    return before, after, explain


def test_the_worst_and_good_queries_get_pair_maps(tmp_path: Path) -> None:
    before, after, explain = explained_sets()
    page = build_report(tmp_path / "r.html", history=[], before=before, after=after, config={},
                        environment={}, projection="pca", explain=explain)  # fmt: skip
    html = page.read_text()
    section = html.split('id="explain"', 1)[1].split("<section", 1)[0]
    pairs = re.findall(r'data-query="(\d+)" data-match="(\d+)" data-method="(\w+)"', section)
    assert 1 <= len(pairs) <= 6 and {m for _, _, m in pairs} == {"exact"}
    worst = re.findall(
        r'data-query="(\d+)"', html.split('id="worst"', 1)[1].split("<section", 1)[0]
    )
    assert [q for q, _, _ in pairs[:3]] == worst[:3]  # the worst queries come first
    assert "100% accounted" in section
    for src in re.findall(r'src="([^"]*)"', section):
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    plain = build_report(tmp_path / "p.html", history=[], before=before, after=after, config={},
                         environment={}, projection="pca")  # fmt: skip
    assert 'id="explain"' not in plain.read_text()


def test_the_largest_clusters_are_drawn_when_there_are_images(tmp_path: Path) -> None:
    before, after, _ = explained_sets()
    page = build_report(tmp_path / "r.html", history=[], before=before, after=after, config={},
                        environment={}, projection="pca")  # fmt: skip
    section = page.read_text().split('id="clusters"', 1)[1].split("<section", 1)[0]
    assert "k-means" in section and len(re.findall(r"<img ", section)) == 1
    blind = EmbeddingSet(after.embeddings, after.labels)  # no images: no contact sheet
    plain = build_report(tmp_path / "p.html", history=[], before=blind, after=blind, config={},
                         environment={}, projection="pca")  # fmt: skip
    assert 'id="clusters"' not in plain.read_text()
