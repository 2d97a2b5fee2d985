"""Shared fixtures. Tests run without ../shared; those that need the real photos are marked `shared`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

REPO = Path(__file__).resolve().parents[1]
GEMS68 = Path(os.environ.get("GEMID_GEMS68", REPO.parent / "shared" / "data" / "gems68" / "train"))


def pytest_collection_modifyitems(config, items):
    if GEMS68.is_dir():
        return
    skip = pytest.mark.skip(reason=f"needs the gems68 photos at {GEMS68} (absent here)")
    for item in items:
        if "shared" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def gems68_dir() -> Path:
    if not GEMS68.is_dir():
        pytest.skip(f"needs the gems68 photos at {GEMS68} (absent here)")
    return GEMS68


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO
