"""The web page's server side, through the real app (no browser): the page and its assets are served by the
app itself with no external URL, the short link and the QR code open a stored report, and the display
preview has the report's orientation so the outline overlays it."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import cv2
import numpy as np
import pytest

pytest.register_assert_rewrite("serve_support")

from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402
from serve_support import make_settings, signed_client, stone, upload  # noqa: E402

from gemid.serve.app import create_app  # noqa: E402
from gemid.serve.routes.page import STATIC_DIR  # noqa: E402

pytest_plugins = ["serve_support"]

EXTERNAL = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.I)  # http://, https://, protocol-relative //


class _Refs(HTMLParser):
    """Every src/href/action attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href", "action", "srcset", "poster", "data") and value is not None:
                self.refs.append((tag, name, value))


def page_refs(html: str) -> list[tuple[str, str, str]]:
    parser = _Refs()
    parser.feed(html)
    return parser.refs


def identify(c: TestClient, data: bytes, name: str = "ruby.png", **form) -> dict:
    r = c.post("/v1/identify", files=[upload(name, data)], data=form)
    assert r.status_code == 200, r.text
    return r.json()["reports"][0]


def svg_qr_matrix(svg: str) -> np.ndarray:
    """Rasterise the QR SVG the qrcode package writes (a path of unit squares 'Mx,yH..V..H..z') so OpenCV
    can read it back: proves the code encodes what we claim, not just that an SVG came back."""
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    _, _, w, h = (float(v) for v in root.get("viewBox").split())
    path = next(el for el in root.iter() if el.tag.endswith("path"))
    grid = np.full((int(h), int(w)), 255, np.uint8)
    for x, y in re.findall(r"M(\d+),(\d+)H", path.get("d")):
        grid[int(y), int(x)] = 0
    return cv2.resize(grid, None, fx=8, fy=8, interpolation=cv2.INTER_NEAREST)


def read_qr(svg: str) -> str:
    """Decode with OpenCV's two detectors at a few scales: the classic one alone misses ~1 code in 10
    (measured on 200 random report URLs), which made this check flaky; together they missed none."""
    grid = svg_qr_matrix(svg)
    for scale in (1, 2, 3):
        image = cv2.resize(grid, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) if scale > 1 else grid
        for detector in (cv2.QRCodeDetector(), cv2.QRCodeDetectorAruco()):
            text, _points, _ = detector.detectAndDecode(image)
            if text:
                return text
    return ""


# --- the page -----------------------------------------------------------------------------------------


def test_page_is_served_with_only_local_assets(client: TestClient):
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    refs = page_refs(r.text)
    assets = [v for tag, name, v in refs if tag in ("script", "link", "img")]
    assert {"static/app.js", "static/app.css", "static/icon.svg"} <= set(assets), assets
    external = [v for _t, _n, v in refs if EXTERNAL.match(v)]
    assert external == [], f"the page must not load anything from elsewhere: {external}"

    expected_types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for asset in assets:
        a = client.get("/" + asset)
        assert a.status_code == 200, asset
        assert a.headers["content-type"].startswith(expected_types[asset[asset.rfind("."):]]), asset
        assert a.headers["x-content-type-options"] == "nosniff"


def test_scripts_and_styles_reach_nothing_outside_the_app():
    css = (STATIC_DIR / "app.css").read_text()
    assert "@import" not in css
    assert not re.search(r"url\(\s*['\"]?(?:[a-z]+:)?//", css, re.I), "the stylesheet loads a remote resource"
    scripts = sorted(STATIC_DIR.rglob("*.js"))  # app.js and any module it imports
    assert STATIC_DIR / "app.js" in scripts
    for script in scripts:
        js = script.read_text()
        urls = set(re.findall(r"[a-z]+://[^\s'\"`)]+", js, re.I))
        assert urls <= {"http://www.w3.org/2000/svg"}, f"{script.name} mentions remote URLs: {urls}"  # SVG namespace
        assert not re.search(r"\.(?:inner|outer)HTML\s*=|insertAdjacentHTML|document\.write", js), \
            f"{script.name}: data from the API must be written as text, never as markup"


def test_static_assets_refuse_traversal_and_unknown_files(client: TestClient):
    for bad in ("/static/../web.py", "/static/%2e%2e/web.py", "/static/..%2fweb.py", "/static/nope.js",
                "/static/app.py", "/static/"):
        r = client.get(bad)
        assert r.status_code == 404, bad
        assert r.json()["error"]["code"] == "not_found", bad


def test_assets_are_revalidated_cheaply(client: TestClient):
    first = client.get("/static/app.js")
    tag = first.headers["etag"]
    again = client.get("/static/app.js", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b""
    assert client.get("/", headers={"If-None-Match": '"stale"'}).status_code == 200


def test_ui_config_reports_the_service_limits(tmp_path, tiny_bundle, identifier):
    settings = make_settings(tmp_path / "d", tiny_bundle, max_bytes=1234567, public_url="https://lab.example/gemid/")
    with signed_client(create_app(settings, identifier=identifier)) as c:
        cfg = c.get("/ui-config.json").json()
    assert cfg["max_bytes"] == 1234567
    assert cfg["public_url"] == "https://lab.example/gemid"
    assert cfg["labels"] == list(identifier.bundle.labels)
    assert cfg["model"]["name"] == identifier.bundle.name


# --- short link, QR code ------------------------------------------------------------------------------


def test_short_link_opens_the_stored_report(client: TestClient):
    rid = identify(client, stone("Ruby"))["report_id"]
    r = client.get(f"/r/{rid}", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"../#/report/{rid}"
    followed = client.get(f"/r/{rid}")  # ../ from /r/<id> is the page at /
    assert followed.status_code == 200 and 'src="static/app.js"' in followed.text

    p = client.get(f"/r/{rid}/print", follow_redirects=False)
    assert p.status_code == 303 and p.headers["location"] == f"../../#/report/{rid}/print"


def test_odd_asset_names_are_not_found_not_a_server_error(client: TestClient):
    for name in ("%00", "a%00.js", "x" * 5000 + ".css", "..%2F..%2Fpyproject.toml", ".hidden.js"):
        r = client.get(f"/static/{name}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", name
        assert "\x00" not in r.json()["error"]["message"]
    assert client.get("/static/app.css").status_code == 200


def test_short_link_to_an_unknown_report_says_so(client: TestClient):
    r = client.get("/r/<script>forged")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "Report not found" in r.text
    assert "&lt;script&gt;forged" in r.text and "<script>forged" not in r.text
    assert client.get("/r/nope/print").status_code == 404


def test_qr_code_encodes_the_verification_link(client: TestClient):
    rid = identify(client, stone("Emerald"), name="em.png")["report_id"]
    r = client.get(f"/v1/reports/{rid}/qr.svg")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("image/svg+xml")
    url = r.headers["x-verification-url"]
    code = url.removeprefix("http://localhost/verify/")
    assert url.startswith("http://localhost/verify/") and rid not in url
    assert len(code) >= 22  # 128 random bits in base64url
    assert read_qr(r.text) == url
    assert client.get(f"/verify/{code}").status_code == 200  # the public page of this report


def test_qr_code_uses_the_public_url(tmp_path, tiny_bundle, identifier):
    settings = make_settings(tmp_path / "d", tiny_bundle, public_url="https://lab.example/gemid/")
    with signed_client(create_app(settings, identifier=identifier)) as c:
        rid = identify(c, stone("Ruby"))["report_id"]
        svg = c.get(f"/v1/reports/{rid}/qr.svg").text
    assert read_qr(svg).startswith("https://lab.example/gemid/verify/")


def test_qr_code_of_an_unknown_report_is_404(client: TestClient):
    r = client.get("/v1/reports/does-not-exist/qr.svg")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "report_not_found"


# --- display preview ----------------------------------------------------------------------------------


def test_preview_has_the_report_orientation(client: TestClient):
    """A phone JPEG stored sideways with EXIF orientation 6: the report's pixel coordinates are upright, and
    so must be the preview the page draws the outline on."""
    rgb = np.zeros((120, 200, 3), np.uint8)
    rgb[:] = 245
    cv2.circle(rgb, (60, 60), 40, (200, 20, 40), -1)
    buf = io.BytesIO()
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    im.save(buf, "JPEG", quality=92, exif=exif.tobytes())
    report = identify(client, buf.getvalue(), name="sideways.jpg")
    assert (report["image"]["width"], report["image"]["height"]) == (120, 200)

    r = client.get(f"/v1/reports/{report['report_id']}/preview.jpg")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    shown = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    assert shown.shape[:2] == (200, 120)
    # the red disc sits where the report's stone box says it is
    x, y, w, h = report["quality"]["stone"]["bbox"]
    inside = shown[y + h // 2, x + w // 2]
    assert inside[2] > 150 and inside[1] < 90, inside  # BGR: red

    again = client.get(f"/v1/reports/{report['report_id']}/preview.jpg", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304


def test_preview_shows_formats_browsers_cannot(client: TestClient):
    """A 16-bit TIFF from a desk scanner: stored as uploaded, shown to the browser as an 8-bit JPEG."""
    rgb16 = np.full((90, 160, 3), 60000, np.uint16)
    cv2.circle(rgb16, (80, 45), 30, (52000, 5000, 9000), -1)
    ok, tiff = cv2.imencode(".tiff", cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    assert ok
    report = identify(client, tiff.tobytes(), name="scan.tif")
    assert report["image"]["format"] == "TIFF"
    original = client.get(f"/v1/reports/{report['report_id']}/image")
    assert original.headers["content-type"] == "image/tiff" and original.content == tiff.tobytes()
    r = client.get(f"/v1/reports/{report['report_id']}/preview.jpg")
    assert r.headers["content-type"] == "image/jpeg"
    shown = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    assert shown.dtype == np.uint8 and shown.shape == (90, 160, 3)
    b, g, red = shown[45, 80]
    assert red > 180 and g < 60, shown[45, 80]


def test_preview_shrinks_large_photos_and_404s_unknown(client: TestClient):
    big = stone("Ruby", size=(1600, 1200))
    rid = identify(client, big)["report_id"]
    small = client.get(f"/v1/reports/{rid}/preview.jpg?size=300")
    img = cv2.imdecode(np.frombuffer(small.content, np.uint8), cv2.IMREAD_COLOR)
    assert max(img.shape[:2]) == 512  # rounded up to a cached size, never larger than asked + one step
    assert client.get("/v1/reports/unknown/preview.jpg").status_code == 404
    assert client.get(f"/v1/reports/{rid}/preview.jpg?size=10").status_code == 422


def _catalogues() -> dict[str, dict[str, str]]:
    """js/messages.js's catalogues, read as text: one `'key': 'text'` a line inside each language's block."""
    text = (STATIC_DIR / "js" / "messages.js").read_text(encoding="utf-8")
    blocks = re.split(r"^  (en|ur): \{$", text, flags=re.M)
    assert blocks[1::2] == ["en", "ur"], "messages.js holds the en and ur catalogues, in that order"
    pair = re.compile(r"^    '([^']+)': '((?:[^'\\]|\\.)*)',$", re.M)
    return {lang: dict(pair.findall(body)) for lang, body in zip(blocks[1::2], blocks[2::2], strict=True)}


def test_every_catalogue_key_has_its_urdu_and_every_used_key_exists():
    cat = _catalogues()
    en, ur = cat["en"], cat["ur"]
    assert len(en) > 150
    assert sorted(set(en) ^ set(ur)) == [], "keys in one catalogue only"
    assert [k for k, v in {**en, **ur}.items() if not v.strip()] == [], "empty texts"
    # a translation is in Urdu: Arabic script in every Urdu text that is not a mark, figure or abbreviation
    arabic = re.compile(r"[\u0600-\u06ff]")
    same = {k for k in en if k in ur and en[k] == ur[k]}
    assert same <= {"stones.col.n", "lang.switch"} or all(not arabic.search(en[k]) for k in same)
    latin_only = [k for k, v in ur.items() if re.search(r"[A-Za-z]{3,}", v) and not arabic.search(v)]
    assert latin_only == ["lang.switch"], latin_only  # the switch names English, in English
    # placeholders agree: an Urdu text fills the same {names} as the English
    for key in en:
        assert set(re.findall(r"\{(\w+)\}", en[key])) == set(re.findall(r"\{(\w+)\}", ur[key])), key
    # every key the modules ask for exists: t('key'), tn('key', n) (its .one and .many), data-i18n="key",
    # and the families the modules build from a code (decision., status., shape., test., stones.col.)
    used: set[str] = set()
    for script in [*STATIC_DIR.rglob("*.js"), STATIC_DIR / "index.html"]:
        source = script.read_text(encoding="utf-8")
        used |= set(re.findall(r"\bt\('([\w.]+)'", source))
        used |= {f"{k}.{form}" for k in re.findall(r"\btn\('([\w.]+)'", source) for form in ("one", "many")}
        used |= set(re.findall(r'data-i18n="([\w.]+)"', source))
    from gemid.report import SHAPES

    used |= {f"decision.{d}" for d in ("identified", "uncertain", "refer", "rejected")}
    used |= {f"status.{s}" for s in ("ready", "uploading", "analysing", "done", "refused", "failed")}
    used |= {f"shape.{s}" for s in SHAPES}
    from gemid.serve.accounts import ROLES

    used |= {f"role.{r}" for r in ROLES}  # the signed-in account's role in the header (js/session.js)
    # the parcel manifest PDF words itself from the same catalogue (gemid.serve.catalogue.translate)
    for document in ("manifest.py", "scale_card.py"):  # and the printable scale card
        source = (STATIC_DIR.parent / document).read_text(encoding="utf-8")
        used |= set(re.findall(r"""translate\(\w+, ["']([\w.]+)["']""", source))
    from gemid.gemmology.instruments import TESTS

    # js/stones.js words each test the service names (every desk test, and the laboratory's two)
    used |= {f"test.{s}" for s in (*TESTS, "spectroscope", "magnification")}
    from gemid.vision.colour_scales import HUES, NEUTRALS

    used |= {f"hue.{name}" for name in [*(n for _, n, _ in HUES), *NEUTRALS]}  # js/stones.js hueName, the PDF
    used |= {f"stones.col.{c}" for c in ("n", "where", "decision", "conclusion", "top3", "shape", "colour", "clarity",
                                         "next", "readings")}
    assert len(used) > 140
    assert sorted(used - set(en)) == [], "keys the page asks for that the catalogue lacks"
    assert sorted(set(en) - used) == [], "keys no module uses"


def test_the_page_writes_readings_as_the_service_rows_do():
    """The Identify summary words a stone's readings itself (it has the reports, not the stored rows): in the
    same shorthand as gemid.report.table_row, so the page's two tables and the CSV agree."""
    from gemid.report import READING_WORDS, Readings

    js = (STATIC_DIR / "js" / "stones.js").read_text(encoding="utf-8")
    block = re.search(r"const READING_WORDS = \{(.*?)\};", js, re.S)
    assert block
    page = dict(re.findall(r"(\w+): '([^']*)'", block.group(1)))
    assert page == READING_WORDS
    assert set(READING_WORDS) == set(Readings.model_fields)
