"""The technician page in a real browser: Debian's Chromium (headless, driven by Playwright) against a real
`gemid serve` process on 127.0.0.1 with its own SQLite store.

Covers what a technician does: upload a rendered stone, read the species bars, enter readings and see the
ranking change, find the report in History, reach the printable report with its QR code, get a clear
message for a file that is not a photo, and use it all at 360 px. Screenshots of the main views go to
artifacts/screenshots/ (git-ignored). Skips with the reason when Chromium or Playwright is missing; Chromium
comes from Debian's package (scripts/browser-deps.sh), never from a Playwright download.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest
from serve_process import free_port

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM = Path(os.environ.get("GEMID_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
DESK = {"width": 1280, "height": 900}
PHONE = {"width": 360, "height": 740}


# --- the server and the browser -----------------------------------------------------------------------


def _gemid_command() -> list[str]:
    script = Path(sys.executable).parent / "gemid"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "gemid.cli"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped model when it is in the checkout, else the tiny real ONNX bundle the runtime tests use."""
    shipped = REPO / "models" / "gemid-species"
    if (shipped / "bundle.json").is_file():
        return shipped
    from bundle_fixture import build_bundle

    return build_bundle(tmp_path_factory.mktemp("bundle"), int8=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[str]:
    """A real `gemid serve` on a free loopback port; yields its base URL (ending in /)."""
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: run scripts/browser-deps.sh (Debian package 'chromium')")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package (dev extra) is not installed")
    root = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("GEMID_DB_URL", "GEMID_PUBLIC_URL")}
    env.update(GEMID_DATA_DIR=str(root / "data"), GEMID_MODEL_DIR=str(model_dir), NO_ALBUMENTATIONS_UPDATE="1")
    log_path = root / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*_gemid_command(), "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root,
        )
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"gemid serve exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(base + "readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"gemid serve not ready after 90 s:\n{log_path.read_text()}")
            time.sleep(0.25)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser(server: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class Watched:
    """A page plus what it did: errors in the console and every URL it requested."""

    def __init__(self, page, base: str) -> None:
        self.page, self.base = page, base
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("console", lambda m: self.errors.append(f"console: {m.text}")
                if m.type == "error" and "Failed to load resource" not in m.text else None)
        page.on("request", lambda r: self.requests.append(r.url))

    def assert_clean(self) -> None:
        assert self.errors == [], self.errors
        foreign = [u for u in self.requests if not u.startswith((self.base, "blob:", "data:"))]
        assert foreign == [], f"the page reached outside the app (must work offline): {foreign}"


def _open(browser, server: str, viewport: dict, **device) -> Iterator[Watched]:
    context = browser.new_context(viewport=viewport, locale="en-GB", **device)
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        yield Watched(page, server)
    finally:
        context.close()


@pytest.fixture
def desk(browser, server) -> Iterator[Watched]:
    yield from _open(browser, server, DESK)


@pytest.fixture
def phone(browser, server) -> Iterator[Watched]:
    yield from _open(browser, server, PHONE, is_mobile=True, has_touch=True)


def shot(page, name: str, *, full_page: bool = True) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


# --- inputs and API helpers ---------------------------------------------------------------------------


def rendered_stone(seed: int = 1) -> bytes:
    """A red oval stone with one crystal inclusion from the synthetic renderer, as a JPEG."""
    from gemid.datasets.synth import InclusionSpec, StoneSpec, render

    spec = StoneSpec(cut="oval", aspect=1.3, lab=(38.0, 55.0, 25.0), background="white",
                     inclusions=(InclusionSpec(kind="crystal", x=0.1, y=0.05, size=0.12, contrast=0.8),))
    rgb, _mask, _truth = render(spec, size=256, seed=seed)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return buf.tobytes()


def api_identify(server: str, data: bytes, name: str, reference: str | None = None) -> tuple[int, dict]:
    """POST /v1/identify straight to the service (setting up a test, or asking it what it says of a file)."""
    boundary = uuid.uuid4().hex
    body = io.BytesIO()
    if reference:
        body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="reference"\r\n\r\n{reference}\r\n'.encode())
    body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="{name}"\r\n'
               "Content-Type: application/octet-stream\r\n\r\n".encode())
    body.write(data)
    body.write(f"\r\n--{boundary}--\r\n".encode())
    req = urllib.request.Request(server + "v1/identify", data=body.getvalue(), method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def api_report(server: str, data: bytes | None = None, reference: str | None = None) -> dict:
    status, body = api_identify(server, data or rendered_stone(), "stone.jpg", reference)
    assert status == 200, body
    return body["reports"][0]


def _rows(label: str):
    from gemid.gemmology.table import default_table

    return [m for m in default_table().rows_for(label) if m.ri is not None]


def distinct_candidate(top: list[str]) -> tuple[str, float, float] | None:
    """A lower-ranked candidate whose RI and SG ranges both miss every reading of the top one, with its mid
    RI and SG: readings that must overturn the photo's first choice if re-ranking follows the table."""
    first = _rows(top[0])
    if not first:
        return None
    for label in top[1:]:
        rows = _rows(label)
        if rows and all(not rows[0].ri.overlaps(f.ri) and not rows[0].sg.overlaps(f.sg) for f in first):
            ri, sg = rows[0].ri, rows[0].sg
            return label, round((ri.low + ri.high) / 2, 3), round((sg.low + sg.high) / 2, 2)
    return None


def fits(label: str, ri: float, sg: float) -> bool:
    """The property table says this species can read this RI and SG."""
    return any(m.ri.low <= ri <= m.ri.high and m.sg.low <= sg <= m.sg.high for m in _rows(label))


def texts(locator) -> list[str]:
    return [t.strip() for t in locator.all_inner_texts()]


# --- the tests ----------------------------------------------------------------------------------------


def test_identify_then_rerank_with_readings(desk: Watched, server: str):
    page = desk.page
    reference = f"LOT-{uuid.uuid4().hex[:8]}"
    page.goto(server)
    page.get_by_label("Parcel or reference number").fill(reference)
    page.set_input_files("#file-pick", files=[  # a parcel: several photos at once
        {"name": "red-oval.jpg", "mimeType": "image/jpeg", "buffer": rendered_stone()},
        {"name": "second.jpg", "mimeType": "image/jpeg", "buffer": rendered_stone(2)},
    ])
    assert page.locator("#queue li img.thumb").count() == 2  # client-side previews before upload
    page.get_by_role("button", name="Identify 2 photos").click()

    page.wait_for_function("() => document.querySelectorAll('article.report').length === 2")
    summary = page.locator("#summary table tbody tr")
    assert texts(summary.locator("td:first-child")) == ["red-oval.jpg", "second.jpg"]
    ids = [page.locator("article.report").nth(i).get_attribute("data-report-id") for i in range(2)]
    for rid in ids:
        assert json.load(urllib.request.urlopen(f"{server}v1/reports/{rid}"))["reference"] == reference
    card = page.locator("article.report").first
    rid = ids[0]
    stored = json.load(urllib.request.urlopen(f"{server}v1/reports/{rid}"))
    assert stored["file"] == "red-oval.jpg"

    # species: decision in words and the top-5 as bars with percentages, as the service answered
    decision = card.locator(".species .decision").first.inner_text()
    assert decision.startswith(("Identified:", "Uncertain", "Not a gemstone")), decision
    labels = texts(card.locator(".species .bars .label"))
    assert labels == [c["label"] for c in stored["species"]["top"][:5]]
    assert all(p.endswith("%") for p in texts(card.locator(".species .bars .pct")))
    assert page.locator("[data-status=done]").count() == 2

    # the photo (decoded preview) with the stone outline drawn over it
    photo = card.locator(".photo-frame img")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=photo.element_handle())
    outline = card.locator("svg.overlay polygon.outline, svg.overlay rect.outline")
    assert outline.count() == 1
    assert card.locator("svg.overlay").get_attribute("viewBox") == \
        f"0 0 {stored['image']['width']} {stored['image']['height']}"
    shot(page, "desk-identify-result")

    # readings: RI and SG of a lower candidate, submitted from the keyboard
    pick = distinct_candidate([c["label"] for c in stored["species"]["top"][:5]])
    assert pick is not None, f"no candidate separable by RI and SG in {labels}"
    label, ri, sg = pick
    card.get_by_label("RI (single or low)").fill(str(ri))
    sg_box = card.get_by_label("Specific gravity (SG)")
    sg_box.fill(str(sg).replace(".", ","))  # a comma decimal, as typed on many desks
    sg_box.press("Enter")

    card.locator(".rerank").wait_for()
    assert card.get_attribute("data-revision") == "2"
    photo_only = texts(card.locator(".rerank .photo-only .bars .label"))
    combined = [t.split("\n")[0] for t in texts(card.locator(".rerank .combined .bars .label"))]
    assert photo_only[0] == labels[0]
    assert combined[0] != photo_only[0], (combined, photo_only)
    assert fits(combined[0], ri, sg), f"{combined[0]} cannot read RI {ri} / SG {sg} (chose {label})"
    assert f"RI: {ri}" in card.locator(".rerank").inner_text()
    assert card.locator(".with-readings").inner_text().startswith(f"With your readings: most likely {combined[0]}")
    revision = json.load(urllib.request.urlopen(f"{server}v1/reports/{rid}"))
    assert revision["revision"] == 2 and revision["tests"]["reranking"]["readings"]["sg"] == sg
    shot(page, "desk-readings-rerank")
    desk.assert_clean()


def test_history_search_and_open(desk: Watched, server: str):
    page = desk.page
    reference = f"PARCEL-{uuid.uuid4().hex[:8]}"
    made = {api_report(server, rendered_stone(seed), reference)["report_id"] for seed in (3, 4)}
    api_report(server, rendered_stone(5), "some other parcel")

    page.goto(server + "#/history")
    page.get_by_label("Reference").fill(reference[-8:].upper())  # a substring, any case
    page.get_by_role("button", name="Search").click()
    rows = page.locator("table.history tbody tr")
    page.wait_for_function(
        "n => document.querySelectorAll('table.history tbody tr').length === n", arg=2)
    assert {rows.nth(i).get_attribute("data-report-id") for i in range(2)} == made
    assert all(reference in t for t in texts(rows))
    assert f"reference={reference[-8:].upper()}" in page.url  # the search is in the URL: back/forward work
    shot(page, "desk-history")

    first = rows.first.get_attribute("data-report-id")
    rows.first.get_by_role("link", name="Open").click()
    page.locator(f"article.report[data-report-id='{first}']").wait_for()
    assert page.url.endswith(f"#/report/{first}")
    assert page.evaluate("document.activeElement.tagName") == "H1"  # focus moved to the new view
    desk.assert_clean()


def test_printable_report_with_qr_code(desk: Watched, server: str):
    page = desk.page
    report = api_report(server, reference="EXPORT-42")
    rid = report["report_id"]
    page.goto(f"{server}r/{rid}/print")  # the short link, as in the QR code
    doc = page.locator("article.doc")
    doc.wait_for()
    assert page.url == f"{server}#/report/{rid}/print"
    assert doc.locator(".report-id").inner_text() == rid
    assert doc.locator(".image-sha").inner_text() == report["image"]["sha256"]
    assert report["model"]["version"] in doc.locator(".model").inner_text()
    assert report["disclaimer"] in doc.locator(".disclaimer").inner_text()
    assert doc.locator(".short-url").inner_text() == f"{server}r/{rid}"
    qr = doc.locator("img.qr-code")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=qr.element_handle())
    assert qr.get_attribute("src") == f"v1/reports/{rid}/qr.svg"

    page.emulate_media(media="print")
    assert page.locator("header.site-header").is_hidden()
    assert page.get_by_role("button", name="Print").is_hidden()
    assert doc.is_visible()
    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
    shot(page, "desk-print")
    desk.assert_clean()


def test_refused_files_show_the_service_message(desk: Watched, server: str):
    page = desk.page
    text = b"gemid test: this is a note, not a photograph\n" * 20
    status, body = api_identify(server, text, "notes.txt")
    assert status == 415
    expected = body["reports"][0]["error"]["message"]

    page.goto(server)
    page.set_input_files("#file-pick", files=[
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": text},
        {"name": "empty.jpg", "mimeType": "image/jpeg", "buffer": b""},
    ])
    items = page.locator("#queue li")
    assert "does not look like a photo" in items.nth(0).inner_text()  # warned, but still sent: the server decides
    assert "empty" in items.nth(1).inner_text()  # refused here: nothing to send
    page.get_by_role("button", name="Identify 1 photo").click()
    status_line = items.nth(0).locator("[data-status=refused]")
    status_line.wait_for()
    assert expected in status_line.inner_text()
    assert status_line.get_attribute("role") == "alert"
    assert page.locator("article.report").count() == 0
    assert sum(u.endswith("/v1/identify") for u in desk.requests) == 1  # the empty file never left the PC
    shot(page, "desk-refused-file")
    desk.assert_clean()


def test_phone_width_has_no_sideways_scrolling(phone: Watched, server: str):
    page = phone.page
    report = api_report(server, reference="PHONE-1")
    rid = report["report_id"]

    def fits(name: str) -> None:
        page.wait_for_timeout(100)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{name}: the page is {width}px wide at {PHONE['width']}px"
        shot(page, f"phone-{name}")

    page.goto(server)
    camera = page.get_by_role("button", name="Take a photo")
    assert camera.is_visible()  # on a phone the camera comes first, straight from the page
    assert page.locator("#file-camera").get_attribute("capture") == "environment"
    with page.expect_file_chooser() as chooser:
        camera.click()
    chooser.value.set_files(files=[{"name": "stone.jpg", "mimeType": "image/jpeg", "buffer": rendered_stone(7)}])
    page.get_by_role("button", name="Identify 1 photo").click()
    page.locator("article.report").wait_for()
    fits("identify")
    page.goto(f"{server}#/report/{rid}")
    page.locator("article.report").wait_for()
    fits("report")
    page.goto(f"{server}#/history")
    page.locator("table.history").wait_for()
    fits("history")
    page.goto(f"{server}#/report/{rid}/print")
    page.locator("article.doc").wait_for()
    fits("print")
    phone.assert_clean()


def test_drag_and_drop_adds_photos(desk: Watched, server: str):
    page = desk.page
    page.goto(server)
    drop = page.locator("#dropzone")
    drop.wait_for()
    data = page.evaluate_handle(
        """(bytes) => { const dt = new DataTransfer();
            dt.items.add(new File([new Uint8Array(bytes)], 'dropped.jpg', { type: 'image/jpeg' }));
            return dt; }""", list(rendered_stone(9)))
    drop.dispatch_event("dragover", {"dataTransfer": data})
    assert "dragging" in drop.get_attribute("class")
    drop.dispatch_event("drop", {"dataTransfer": data})
    item = page.locator("#queue li[data-file='dropped.jpg']")
    item.wait_for()
    assert item.locator("img.thumb").count() == 1
    assert "dragging" not in drop.get_attribute("class")
    page.get_by_role("button", name="Identify 1 photo").click()
    item.locator("[data-status=done]").wait_for()
    desk.assert_clean()


def test_keyboard_labels_and_focus(desk: Watched, server: str):
    page = desk.page
    rid = api_report(server)["report_id"]
    page.goto(f"{server}#/report/{rid}")
    page.locator("article.report").wait_for()
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input:not([type=file]), select, textarea')]
        .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
        .map(el => el.name || el.id)""")
    assert unlabelled == []

    page.goto(server)
    page.locator("#choose-btn").wait_for()
    for _ in range(12):  # reach the photo picker from the keyboard alone
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "choose-btn":
            break
    else:
        pytest.fail("the 'Choose photos' button cannot be reached with Tab")
    ring = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert ring not in ("none", ""), "keyboard focus must be visible"
    assert page.locator("#announce[aria-live=polite]").count() == 1
    desk.assert_clean()


@pytest.fixture(scope="module", autouse=True)
def _fresh_screenshots():
    """Screenshots are test artifacts: keep the folder, replace its files on each run."""
    if SHOTS.is_dir():
        for old in SHOTS.glob("*.png"):
            old.unlink()
    yield
    if SHOTS.is_dir() and not any(SHOTS.iterdir()):
        shutil.rmtree(SHOTS)
