"""The serve tests use the index tests' tiny model, images and one-thread setting."""

from tests.index.conftest import image_dir, model_dir, one_thread

__all__ = ["image_dir", "model_dir", "one_thread"]
