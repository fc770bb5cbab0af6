"""Shared test fixtures: where the real data lives, and a tiny hand-made scene."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tests.helpers import SHARED_DATA, write_tiny_scene  # noqa: E402


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (../shared/data beside the project)")
    return SHARED_DATA


@pytest.fixture
def tiny_scene(tmp_path) -> Path:
    """A valid 3-frame 32x24 scene (no trajectory, no annotations)."""
    return write_tiny_scene(tmp_path / "tiny")
