"""The parcel manifest PDF (GET /v1/parcels/{reference}.pdf) through the real app, a real SQLite store and the
real (tiny) ONNX model: real reports of drawn tray photos, read back with pypdf (pages, text, fonts).

Text is read as pypdf extracts it: a line's runs come out in the order they stand on the page (left to right),
so an Urdu line mixed with Latin values is not one logical string, but each Urdu run is: the headings and
labels are found word for word, in logical order, which a PDF of unshaped or reversed letters would fail.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest

pytest.register_assert_rewrite("serve_support")

from bundle_fixture import draw_tray, encode  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from pypdf import PdfReader  # noqa: E402
from serve_support import create_key, make_settings, stone, upload  # noqa: E402

from gemid.report import Report  # noqa: E402
from gemid.serve import manifest  # noqa: E402
from gemid.serve.app import create_app  # noqa: E402
from gemid.serve.catalogue import catalogues  # noqa: E402
from gemid.serve.images import ImageStore  # noqa: E402
from gemid.serve.store import ReportStore  # noqa: E402

pytest_plugins = ["serve_support"]

NASTALIQ = manifest.FONT_ROOT / "noto" / "NotoNastaliqUrdu-Regular.ttf"
# what a desk writes for each conclusion, in English (the page's catalogue, js/messages.js)
HEADS = {"identified": "Identified: {label}", "uncertain": "Uncertain — most likely {label}",
         "refer": "Refer to a laboratory", "rejected": "Not a gemstone, or the photo is too poor to judge"}


def _trays(n: int) -> list[tuple[str, bytes]]:
    """`n` different tray photos of six drawn stones each (the background shade makes each photo its own)."""
    return [(f"tray{k}.png", encode(draw_tray(background=(245 - k, 245 - k, 245)))) for k in range(n)]


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory, tiny_bundle: Path, identifier):
    """An app with two parcels issued at desk-1: 20 stones (3 trays, a ruby, a blank photo) and 50 (8 trays, a
    ruby, a blank photo); a key of desk-1's technician, one of desk-2's."""
    settings = make_settings(tmp_path_factory.mktemp("manifest") / "data", tiny_bundle)
    own, other = create_key(settings, "technician", "desk-1"), create_key(settings, "technician", "desk-2")
    blank = ("blank.png", encode(np.full((200, 300, 3), 245, np.uint8)))
    with TestClient(create_app(settings, identifier=identifier), base_url="http://localhost",
                    headers={"Authorization": f"Bearer {own}"}) as c:
        for reference, trays in (("LOT 20", 3), ("PK/50", 8)):
            photos = [*_trays(trays), ("ruby.png", stone("Ruby")), blank]
            r = c.post("/v1/identify", files=[upload(n, b, "image/png") for n, b in photos],
                       data={"reference": reference})
            assert r.status_code == 200, r.text
        yield c, settings, other


def _parcel(c: TestClient, reference: str) -> list[Report]:
    r = c.get(f"/v1/parcels/{quote(reference, safe='')}")
    assert r.status_code == 200, r.text
    return [Report.model_validate(x) for x in r.json()["reports"]]


def _pdf(c: TestClient, reference: str, query: str = "", **kw) -> PdfReader:
    r = c.get(f"/v1/parcels/{quote(reference, safe='')}.pdf{query}", **kw)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf" and r.content.startswith(b"%PDF-")
    assert "attachment" in r.headers["content-disposition"] and ".pdf" in r.headers["content-disposition"]
    return PdfReader(io.BytesIO(r.content))


def _text(page) -> str:
    """A page's text with the zero-width spaces of Nastaliq's mark glyphs and the bidi isolates removed, and
    runs of white space made one space."""
    return re.sub(r"\s+", " ", re.sub(r"[\u200b\u2066-\u2069]", "", page.extract_text()))


def _codes(settings, reports: list[Report]) -> list[str]:
    store = ReportStore.open(settings.database_url)
    try:
        return [store.verify_code(r.report_id) for r in reports]
    finally:
        store.close()


def _a4(page) -> bool:
    w, h = float(page.mediabox.width), float(page.mediabox.height)
    return abs(w - 595.28) < 1 and abs(h - 841.89) < 1


def test_twenty_stones_on_one_a4_page_with_each_stone_s_card(desk):
    c, settings, _ = desk
    reports = _parcel(c, "LOT 20")
    assert len(reports) == 20
    pdf = _pdf(c, "LOT 20")
    assert len(pdf.pages) == 1 and _a4(pdf.pages[0])
    text = _text(pdf.pages[0])
    en = catalogues()["en"]
    assert "Parcel manifest LOT 20" in text and "Desk: desk-1" in text and "Page 1 of 1" in text
    decisions = [r.conclusion.decision for r in reports if r.conclusion]
    counts = " · ".join(f"{decisions.count(d)} {en[f'decision.{d}']}" for d in HEADS if decisions.count(d))
    assert f"20 stones in 5 photos: {counts}" in text
    assert reports[0].disclaimer in text

    def grade(g, words: str) -> str:
        if g is None:
            return "—"
        return words if g.status == "graded" else en[f"grade.{g.status}"]

    # every stone, in the parcel's order: its number, conclusion, grades, hash, model and verification code
    at = 0
    for n, (r, code) in enumerate(zip(reports, _codes(settings, reports), strict=True), start=1):
        c_ = r.conclusion
        assert c_ is not None and code
        found = text.find(f"Code {code}", at)
        assert found > at, (n, code)
        card, at = text[at:found + 80], found
        assert f"{n} {HEADS[c_.decision].format(label=(c_.label or '').replace('_', ' '))}" in card, (n, card)
        assert f"Photo {r.image.sha256[:12]} · model {r.model.version}" in card
        colour = r.colour and r.colour.tone and f"{r.colour.hue}, tone {r.colour.tone.value}"
        assert f"Colour: {grade(r.colour, colour or '')}" in card, (n, card)
        assert f"Clarity: {grade(r.clarity, r.clarity.grade if r.clarity else '')}" in card, (n, card)
        assert "Next test: " in card
        if r.stone and r.stone.count > 1:
            assert f"Code {code} · {r.file} · stone {r.stone.index}/{r.stone.count}" in card
    assert "Not a gemstone" in text  # the blank photo's card
    # the verification link the codes complete, and one QR code per stone (20 drawn, sharp squares)
    assert "http://localhost/verify/" in text


def test_fifty_stones_on_three_pages_in_order(desk):
    c, settings, _ = desk
    reports = _parcel(c, "PK/50")
    assert len(reports) == 50
    pdf = _pdf(c, "PK/50")
    assert len(pdf.pages) == 3 and all(_a4(p) for p in pdf.pages)
    codes = _codes(settings, reports)
    for k, page in enumerate(pdf.pages):
        text = _text(page)
        assert f"Page {k + 1} of 3" in text and "Parcel manifest PK/50" in text  # the header on every page
        assert "50 stones in 10 photos" in text and reports[0].disclaimer in text
        mine = codes[k * 20:(k + 1) * 20]
        assert [text.find(f"Code {code}") for code in mine] == sorted(text.find(f"Code {code}") for code in mine)
        assert all(f"Code {code}" in text for code in mine), k
        assert not any(f"Code {code}" in text for code in codes if code not in mine)


def test_urdu_manifest_is_shaped_right_to_left_in_nastaliq(desk):
    c, settings, _ = desk
    installed = manifest.Fonts.find()  # `make test` installs Noto Nastaliq Urdu (scripts/browser-deps.sh)
    if installed.arabic is None:  # a system without any: the clear refusal (the fallbacks are tested below)
        r = c.get(f"/v1/parcels/{quote('LOT 20')}.pdf?lang=ur")
        assert r.status_code == 503 and r.json()["error"]["code"] == "font_missing"
        return
    assert installed.arabic[0] == NASTALIQ or not NASTALIQ.is_file()
    reports = _parcel(c, "LOT 20")
    pdf = _pdf(c, "LOT 20", "?lang=ur")
    assert len(pdf.pages) == 1
    fonts = {str(f.get_object()["/BaseFont"]) for f in pdf.pages[0]["/Resources"]["/Font"].values()}
    assert any(installed.arabic[0].stem.split("-")[0] in f for f in fonts), fonts
    text = _text(pdf.pages[0])
    ur = catalogues()["ur"]
    # the Urdu headings and labels, word for word in logical order
    for key in ("pdf.title", "stones.col.colour", "stones.col.clarity", "stones.col.next"):
        assert ur[key] in text, (key, ur[key])
    assert ur["disclaimer.title"].strip().rstrip("۔") in text
    assert ur["pdf.page"].split(" ")[0] in text  # "page" (its figures are runs of their own)
    # right to left: the title's first words stand at the right, the reference after them to their left, so
    # the page's left-to-right reading finds the reference first (in English it comes after the title)
    assert text.index("LOT 20") < text.index(ur["pdf.title"]) < 40
    # each stone's conclusion in Urdu: the decision's words and the species as written
    for r in reports:
        assert r.conclusion is not None
        if r.conclusion.decision == "identified":
            assert ur["conclusion.identified"].split(":")[0] in text and r.conclusion.label in text
        else:
            assert re.split(r"[،—{:]", ur[f"conclusion.{r.conclusion.decision}"])[0].strip() in text
    for code in _codes(settings, reports):
        assert code in text
    # the colour's hue in Urdu words, not the English GIA name (an open point of issue 32)
    hues = {r.colour.hue for r in reports if r.colour and r.colour.status == "graded"}
    assert hues and all(ur[f"hue.{hue}"] in text and hue not in text for hue in hues), hues
    # Accept-Language picks Urdu when ?lang is not given, and ?lang wins over it
    by_header = _text(_pdf(c, "LOT 20", headers={"Accept-Language": "ur-PK, en;q=0.5"}).pages[0])
    assert ur["pdf.title"] in by_header
    by_query = _text(_pdf(c, "LOT 20", "?lang=en", headers={"Accept-Language": "ur"}).pages[0])
    assert "Parcel manifest" in by_query and ur["pdf.title"] not in by_query


def test_access_and_errors_are_the_csv_s(desk):
    c, _settings, other = desk
    for tail in (".pdf", ".csv"):
        path = f"/v1/parcels/{quote('LOT 20')}{tail}"
        r = c.get(path, headers={"Authorization": ""})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorised", tail
        # another desk's technician: the parcel is not there for it (its ids are not confirmed)
        r = c.get(path, headers={"Authorization": f"Bearer {other}"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "parcel_not_found", tail
        r = c.get(f"/v1/parcels/NO-SUCH-LOT{tail}")
        assert r.status_code == 404 and r.json() == {"error": {
            "code": "parcel_not_found", "message": "no report is stored under the reference 'NO-SUCH-LOT'"}}
    r = c.get(f"/v1/parcels/{quote('LOT 20')}.pdf?lang=fr")
    assert r.status_code == 422 and r.json()["error"]["code"]


def test_without_nastaliq_urdu_falls_back_and_without_arabic_fonts_is_a_clear_503(desk, tmp_path, monkeypatch):
    c, _settings, _ = desk
    reports = _parcel(c, "LOT 20")[:3]
    cards = [manifest.Card(report=r, thumbnail=None, code="x" * 22, url="http://desk/verify/" + "x" * 22)
             for r in reports]
    when = datetime(2026, 12, 6, tzinfo=UTC)
    # no Nastaliq: Urdu in Noto Naskh Arabic (shaped, every Urdu letter), Latin in DejaVu Sans; the system's
    # fonts copied into a font folder of the test's own (those of them this system has)
    for name in ("noto/NotoNaskhArabic-Regular.ttf", "dejavu/DejaVuSans.ttf"):
        if (manifest.FONT_ROOT / name).is_file():
            (tmp_path / name).parent.mkdir(exist_ok=True)
            (tmp_path / name).write_bytes((manifest.FONT_ROOT / name).read_bytes())
    fonts = manifest.Fonts.find(tmp_path)
    if (tmp_path / "noto" / "NotoNaskhArabic-Regular.ttf").is_file():
        assert fonts.arabic is not None and fonts.arabic[0].name == "NotoNaskhArabic-Regular.ttf"
        body = manifest.build_pdf("LOT 20", cards, lang="ur", printed_at=when, fonts=fonts)
        text = _text(PdfReader(io.BytesIO(body)).pages[0])
        assert catalogues()["ur"]["pdf.title"] in text and catalogues()["ur"]["stones.col.clarity"] in text
        (tmp_path / "noto" / "NotoNaskhArabic-Regular.ttf").unlink()
    # DejaVu Sans alone lacks Urdu letters (heh goal, the Urdu full stop): not taken for Urdu
    assert manifest.Fonts.find(tmp_path).arabic is None
    # no font at all: English in the PDF's own Helvetica; Urdu refused by name
    bare = manifest.Fonts.find(tmp_path / "none")
    assert bare == manifest.Fonts(arabic=None, latin=None)
    english = _text(PdfReader(io.BytesIO(manifest.build_pdf("LOT 20", cards, printed_at=when, fonts=bare))).pages[0])
    assert "Parcel manifest LOT 20" in english and "Identified: " in english
    with pytest.raises(manifest.FontMissing, match="fonts-noto-core"):
        manifest.build_pdf("LOT 20", cards, lang="ur", printed_at=when, fonts=bare)
    # through the service, a system without those fonts: a 503 that says what to install, never a 500
    monkeypatch.setattr(manifest, "FONT_ROOT", tmp_path / "none")
    r = c.get(f"/v1/parcels/{quote('LOT 20')}.pdf?lang=ur")
    assert r.status_code == 503 and r.json()["error"]["code"] == "font_missing"
    assert "fonts-noto-core" in r.json()["error"]["message"]
    assert c.get(f"/v1/parcels/{quote('LOT 20')}.pdf?lang=en").status_code == 200


def test_every_catalogue_key_the_manifest_asks_for_exists_in_both_languages():
    source = Path(manifest.__file__).read_text(encoding="utf-8")
    keys = set(re.findall(r"""translate\(\w+, ["']([\w.]+)["']""", source))
    assert {"pdf.title", "pdf.code", "pdf.page", "disclaimer", "stones.col.colour"} <= keys
    for lang, table in catalogues().items():
        assert sorted(keys - set(table)) == [], lang


def test_a_lost_photo_leaves_its_cards_without_a_picture_not_an_error(desk):
    c, settings, _ = desk
    r = c.post("/v1/identify", files=[upload("ruby.png", stone("Ruby")), upload("e.png", stone("Emerald"))],
               data={"reference": "LOST-1"})
    assert r.status_code == 200, r.text
    lost, kept = (Report.model_validate(x) for x in r.json()["reports"])
    store = ReportStore.open(settings.database_url)
    try:
        sha, ext, _name = store.image_of(lost.report_id)
    finally:
        store.close()
    path = ImageStore(settings.images_dir).get(sha, ext)
    assert path is not None
    path.unlink()
    pdf = _pdf(c, "LOST-1")
    text = _text(pdf.pages[0])
    assert lost.conclusion is not None and kept.conclusion is not None
    assert f"{HEADS[lost.conclusion.decision].format(label=lost.conclusion.label)}" in text  # its card is there
    assert f"Photo {lost.image.sha256[:12]}" in text and f"Photo {kept.image.sha256[:12]}" in text
    assert len(pdf.pages[0].images) == 1  # the kept photo's thumbnail only
