"""Fixtures shared by the service tests: a tiny real ONNX bundle, drawn stones, apps on a temp data dir.

Imported by tests/serve/test_*.py through `pytest_plugins`; kept out of conftest.py (shared by all areas).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from bundle_fixture import STONE_COLOURS, build_bundle, draw_stone, encode
from fastapi.testclient import TestClient

from gemid.serve import accounts
from gemid.serve.app import create_app
from gemid.serve.images import ImageStore
from gemid.serve.settings import Settings
from gemid.serve.store import ReportStore


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("bundle"), int8=False)


@pytest.fixture(scope="session")
def identifier(tiny_bundle: Path):
    """One loaded model shared by the apps of a session (stateless; the service shares it across threads)."""
    from gemid.vision.pipeline import Identifier

    return Identifier(tiny_bundle)


def make_settings(data_dir: Path, bundle: Path, **overrides) -> Settings:
    return Settings(data_dir=data_dir, model_dir=bundle, inference_concurrency=2, **overrides)


@pytest.fixture
def settings(tmp_path: Path, tiny_bundle: Path) -> Settings:
    return make_settings(tmp_path / "data", tiny_bundle)


def create_key(settings: Settings, role: str = "admin", desk: str | None = None, name: str | None = None) -> str:
    """A new API key on the store of `settings` (as `gemid keys create` makes one); the token."""
    import secrets

    store = ReportStore.open(settings.database_url)
    try:
        return accounts.create_key(store.engine, name or f"test-{role}-{secrets.token_hex(4)}", role, desk)
    finally:
        store.close()


def signed_client(app, role: str = "admin", desk: str | None = None, **kwargs) -> TestClient:
    """A TestClient for `app` that sends a new key of `role` with every request, to a host name the service
    answers to by default (localhost)."""
    key = create_key(app.state.settings, role, desk)
    return TestClient(app, base_url="http://localhost", headers={"Authorization": f"Bearer {key}"}, **kwargs)


@pytest.fixture
def client(settings: Settings, identifier) -> Iterator[TestClient]:
    with signed_client(create_app(settings, identifier=identifier)) as c:
        yield c


def stone(label: str = "Ruby", ext: str = ".png", **kw) -> bytes:
    colour = STONE_COLOURS.get(label, (128, 128, 128))
    return encode(draw_stone(colour, **kw), ext)


def stored(settings: Settings) -> tuple[int, int, int]:
    """(reports, revisions, photo files) actually on disk: what a failed request must leave untouched."""
    store = ReportStore.open(settings.database_url)
    try:
        n_reports, n_revisions = store.counts()
    finally:
        store.close()
    return n_reports, n_revisions, ImageStore(settings.images_dir).count()


def upload(name: str, data: bytes, ctype: str = "application/octet-stream") -> tuple[str, tuple[str, bytes, str]]:
    return ("images", (name, data, ctype))
