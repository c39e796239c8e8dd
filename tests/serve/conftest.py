"""The serve tests use the index tests' tiny model, images and one-thread setting, and an
index of those images served with writes on."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deepmetric.index import build_index
from deepmetric.serve import create_app
from tests.index.conftest import image_dir, model_dir, one_thread

TOKEN = "s3cret-token"


@pytest.fixture
def index_dir(tmp_path: Path, model_dir: Path, image_dir: Path) -> Path:
    build_index(model_dir, str(image_dir), far=0.1).save(tmp_path / "idx")
    return tmp_path / "idx"


@pytest.fixture
def client(index_dir: Path) -> TestClient:
    return TestClient(create_app(index_dir, writes=True, token=TOKEN, max_upload_bytes=20_000))


__all__ = ["TOKEN", "client", "image_dir", "index_dir", "model_dir", "one_thread"]
