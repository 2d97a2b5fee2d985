"""The printable scale card: its markers where gemid.vision.scale expects them, to the hundredth of a
millimetre; its words from the catalogue in English and Urdu; served open at GET /v1/scale-card.pdf and
written by `gemid scale-card`."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest

pytest.register_assert_rewrite("serve_support")

from fastapi.testclient import TestClient  # noqa: E402
from pypdf import PdfReader  # noqa: E402
from serve_support import make_settings  # noqa: E402

from gemid.cli import main as gemid  # noqa: E402
from gemid.serve import scale_card  # noqa: E402
from gemid.serve.app import create_app  # noqa: E402
from gemid.serve.catalogue import catalogues  # noqa: E402
from gemid.vision.scale import CARD, MARKER_IDS, MODULES, marker_image  # noqa: E402

pytest_plugins = ["serve_support"]

PT = 72 / 25.4  # PDF points per mm
PAGE_H = 297.0


def filled_rects(pdf: bytes) -> list[tuple[float, float, float, float]]:
    """The page's filled rectangles (x, y, w, h) in mm from the page's top left: the markers' modules."""
    data = PdfReader(io.BytesIO(pdf)).pages[0].get_contents().get_data().decode("latin-1")
    out = []
    for x, y, w, h in re.findall(r"(-?[\d.]+) (-?[\d.]+) (-?[\d.]+) (-?[\d.]+) re f\b", data):
        x, y, w, h = (float(v) / PT for v in (x, y, w, h))
        top = PAGE_H - y if h < 0 else PAGE_H - y - h
        out.append((x, top, w, abs(h)))
    return out


def test_the_markers_are_printed_where_the_detector_expects_them():
    rects = filled_rects(scale_card.build_card_pdf(lang="en"))
    assert rects
    x0, y0 = min(r[0] for r in rects), min(r[1] for r in rects)
    x1, y1 = max(r[0] + r[2] for r in rects), max(r[1] + r[3] for r in rects)
    assert x1 - x0 == pytest.approx(CARD.width_mm, abs=0.01) and y1 - y0 == pytest.approx(CARD.height_mm, abs=0.01)
    module = CARD.marker_mm / MODULES
    for marker in MARKER_IDS:
        ox, oy = CARD.origin(marker)
        grid = np.full((MODULES, MODULES), 255, np.uint8)
        for x, y, w, h in rects:
            col, row = (x - x0 - ox) / module, (y - y0 - oy) / module
            if -0.01 < col < MODULES and -0.01 < row < MODULES:
                assert h == pytest.approx(module, abs=0.01)
                grid[round(row), round(col):round(col + w / module)] = 0
        assert (grid == marker_image(marker)).all(), marker


def test_the_card_speaks_both_languages_from_the_catalogue():
    source = Path(scale_card.__file__).read_text(encoding="utf-8")
    keys = set(re.findall(r"""translate\(\w+, ["']([\w.]+)["']""", source))
    assert {"card.title", "card.print", "card.check", "card.ruler"} <= keys
    for lang, table in catalogues().items():
        assert sorted(keys - set(table)) == [], lang
    en = PdfReader(io.BytesIO(scale_card.build_card_pdf(lang="en"))).pages[0].extract_text()
    assert "gemid scale card" in en and "Print at 100 %" in en and "150 mm apart" in en
    ur = PdfReader(io.BytesIO(scale_card.build_card_pdf(lang="ur"))).pages[0].extract_text().replace("\u200b", "")
    assert "پیمانہ کارڈ" in ur and "ملی میٹر" in ur


def test_the_service_serves_it_to_anyone_in_the_callers_language(tmp_path: Path, tiny_bundle: Path, identifier):
    settings = make_settings(tmp_path / "data", tiny_bundle)
    with TestClient(create_app(settings, identifier=identifier), base_url="http://localhost") as c:
        assert c.get("/v1/reports").status_code == 401  # the rest needs a key
        r = c.get("/v1/scale-card.pdf")
        assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
        assert "gemid-scale-card-en.pdf" in r.headers["content-disposition"]
        ur = c.get("/v1/scale-card.pdf", headers={"Accept-Language": "ur-PK,ur;q=0.9,en;q=0.5"})
        assert "gemid-scale-card-ur.pdf" in ur.headers["content-disposition"]
        assert "پیمانہ" in PdfReader(io.BytesIO(ur.content)).pages[0].extract_text().replace("\u200b", "")
        bad = c.get("/v1/scale-card.pdf?lang=fr")
        assert bad.status_code == 422 and "traceback" not in bad.text.lower()


def test_the_cli_writes_the_card(tmp_path: Path, capsys):
    out = tmp_path / "card.pdf"
    assert gemid(["scale-card", "-o", str(out), "--lang", "ur"]) == 0
    assert out.read_bytes().startswith(b"%PDF") and "wrote" in capsys.readouterr().out
    assert len(filled_rects(out.read_bytes())) > 20
