"""The technician page in a real browser: Debian's Chromium (headless, driven by Playwright) against a real
`gemid serve` process on 127.0.0.1 with its own SQLite store.

Covers what a technician does: upload a rendered stone, read the species bars, enter readings and see the
ranking change, find the report in History, reach the printable report with its QR code, get a clear
message for a file that is not a photo, and use it all at 360 px. Screenshots of the main views go to
artifacts/screenshots/ (git-ignored). Skips with the reason when Chromium or Playwright is missing; Chromium
comes from Debian's package (scripts/browser-deps.sh), never from a Playwright download.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest
from pypdf import PdfReader
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
AUTH: dict[str, str] = {}  # the API key the tests' own calls send (set by the server fixture)
SIGN_IN = {"name": "sana", "password": "desk pass 2026"}  # the supervisor the page signs in as
LINKS: list[str] = []  # the one-time sign-in link gemid serve printed on its first start
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
        LINKS[:] = [w for w in log_path.read_text().split() if "/signin?token=" in w]

        def gemid(*args: str, stdin: str | None = None) -> str:
            done = subprocess.run([*_gemid_command(), *args], env=env, capture_output=True, text=True, input=stdin,
                                  timeout=120)
            assert done.returncode == 0, done.stderr
            return done.stdout.strip().splitlines()[-1]

        AUTH["Authorization"] = "Bearer " + gemid("keys", "create", "--name", "tests", "--role", "admin")
        gemid("users", "add", SIGN_IN["name"], "--role", "supervisor", "--password-stdin", stdin=SIGN_IN["password"])
        gemid("users", "add", "tariq", "--role", "technician", "--desk", "desk-9", "--password-stdin",
              stdin="tariq pass 2026")
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


def _open(browser, server: str, viewport: dict, signed_in: bool = True, **device) -> Iterator[Watched]:
    context = browser.new_context(viewport=viewport, locale="en-GB", **device)
    context.set_default_timeout(20_000)
    if signed_in:  # as the page's own form does (tests of the form itself open a context without)
        assert context.request.post(server + "v1/session", data=SIGN_IN).status == 200
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
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}", **AUTH})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def authed(url: str):
    """GET with the tests' API key."""
    return urllib.request.urlopen(urllib.request.Request(url, headers=AUTH), timeout=30)


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

    page.wait_for_function("() => document.querySelectorAll('details.stone-result').length === 2")
    summary = page.locator("#summary table.stones tbody tr")
    assert texts(summary.locator("td.where")) == ["red-oval.jpg", "second.jpg"]
    results = page.locator("details.stone-result")
    ids = [results.nth(i).get_attribute("data-report-id") for i in range(2)]
    for rid in ids:
        assert json.load(authed(f"{server}v1/reports/{rid}"))["reference"] == reference
    assert page.locator("article.report").count() == 0  # compact: each stone's card opens on demand
    results.first.locator("summary").click()
    card = page.locator("article.report").first
    assert card.get_attribute("data-report-id") == ids[0]
    rid = ids[0]
    stored = json.load(authed(f"{server}v1/reports/{rid}"))
    assert stored["file"] == "red-oval.jpg"

    # the conclusion first, then the photo's decision and top 5 as bars with percentages, as the service answered
    conclusion = card.locator(".species .conclusion")
    assert conclusion.get_attribute("data-decision") == stored["conclusion"]["decision"]
    decision = conclusion.locator(".decision").inner_text()
    assert decision.startswith(("Identified:", "Uncertain", "Not a gemstone", "Refer")), decision
    assert card.locator(".species .with-readings").count() == 0  # no readings yet: no such heading
    photo_part = card.locator(".species .from-photo")
    assert photo_part.get_by_role("heading").inner_text() == "From the photo"
    assert photo_part.locator(".decision").get_attribute("data-decision") == stored["species"]["decision"]
    labels = texts(photo_part.locator(".bars .label"))
    assert labels == [c["label"] for c in stored["species"]["top"][:5]]
    assert all(p.endswith("%") for p in texts(photo_part.locator(".bars .pct")))
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
    # the combined ranking under "With your readings", the photo's under "From the photo", never mixed
    assert card.locator(".species .with-readings").get_by_role("heading").inner_text() == "With your readings"
    photo_only = texts(card.locator(".species .from-photo .bars .label"))
    combined = [t.split("\n")[0] for t in texts(card.locator(".species .with-readings .bars .label"))]
    assert photo_only[0] == labels[0]
    assert combined[0] != photo_only[0], (combined, photo_only)
    assert fits(combined[0], ri, sg), f"{combined[0]} cannot read RI {ri} / SG {sg} (chose {label})"
    assert f"RI: {ri}" in card.locator(".rerank").inner_text()
    revision = json.load(authed(f"{server}v1/reports/{rid}"))
    assert revision["revision"] == 2 and revision["tests"]["reranking"]["readings"]["sg"] == sg
    c = revision["conclusion"]
    assert card.locator(".species .conclusion").get_attribute("data-decision") == c["decision"]
    if c["decision"] in ("identified", "uncertain"):
        assert c["label"] in card.locator(".species .conclusion .decision").inner_text()
    assert card.locator(".species .conclusion .basis").inner_text() == "From the photo and your readings"
    assert page.evaluate("document.activeElement.textContent") == "Conclusion"  # focus on the new answer
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
    verify_url = doc.locator(".short-url").inner_text()
    assert verify_url.startswith(f"{server}verify/") and rid not in verify_url  # the public page, by its code
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
    camera.wait_for(state="visible", timeout=10_000)  # the page's modules render it after they load
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


def _card_readings(card, **readings) -> None:
    """Fill the card's readings form (switches by their label) and submit it."""
    for label, value in readings.items():
        box = card.get_by_label(label)
        if value is True:
            box.check()
        else:
            box.fill(str(value))
    card.get_by_role("button", name="Re-rank with these readings").click()


def test_readings_that_fit_no_candidate_refer_everywhere(desk: Watched, server: str):
    """Cubic zirconia's readings (over the limit, SG 5.8) on a red stone: the card, the queue, the parcel
    summary, History and the printed report all say "refer", naming CZ; the photo's answer stays visible
    as "From the photo", and the guidance moves on past the tests just done."""
    page = desk.page
    reference = f"CZ-{uuid.uuid4().hex[:8]}"
    page.goto(server)
    page.get_by_label("Parcel or reference number").fill(reference)
    page.set_input_files("#file-pick", files=[
        {"name": "cz.jpg", "mimeType": "image/jpeg", "buffer": rendered_stone(11)},
        {"name": "other.jpg", "mimeType": "image/jpeg", "buffer": rendered_stone(12)},
    ])
    page.get_by_role("button", name="Identify 2 photos").click()
    page.wait_for_function("() => document.querySelectorAll('details.stone-result').length === 2")
    page.locator("details.stone-result > summary").first.click()
    card = page.locator("article.report").first
    rid = card.get_attribute("data-report-id")
    photo = json.load(authed(f"{server}v1/reports/{rid}"))

    _card_readings(card, **{"RI over the limit": True, "Specific gravity (SG)": "5.8", "Weight (ct)": "0.5"})
    page.wait_for_function("id => document.querySelector(`article.report[data-report-id='${id}']`)"
                           ".dataset.revision === '2'", arg=rid)
    stored = json.load(authed(f"{server}v1/reports/{rid}"))
    c = stored["conclusion"]
    assert stored["tests"]["reranking"]["readings"]["weight_ct"] == 0.5
    assert c["decision"] == "refer" and "Cubic zirconia" in c["fits"], c  # the service's answer, to be shown

    conclusion = card.locator(".species .conclusion")
    assert conclusion.get_attribute("data-decision") == "refer"
    assert conclusion.locator(".decision").inner_text() == "Refer to a laboratory"
    assert "refer" in conclusion.locator(".decision").get_attribute("class")
    assert conclusion.locator(".fits").inner_text() == "The readings fit: " + ", ".join(c["fits"])
    assert c["reason"] in conclusion.locator(".reason").inner_text()
    # the photo's answer under its own heading, with the photo's bars; the readings' ranking under its own
    from_photo = card.locator(".species .from-photo")
    assert from_photo.locator(".decision").get_attribute("data-decision") == photo["species"]["decision"]
    assert texts(from_photo.locator(".bars .label")) == [x["label"] for x in photo["species"]["top"][:5]]
    combined = [t.split("\n")[0] for t in texts(card.locator(".species .with-readings .bars .label"))]
    assert combined == [x["label"] for x in stored["tests"]["reranking"]["combined"][:5]]
    caveat = card.locator(".species .with-readings .ranking-caveat").inner_text()
    assert caveat.startswith("Not an answer") and "species the photo model knows" in caveat
    line = card.locator(".species .with-readings .readings-line").inner_text()
    assert "RI over the limit" in line and "Specific gravity: 5.80" in line and "Weight: 0.50 ct" in line
    # guidance: what was done, never again as a next step, and the laboratory when only it can settle this
    tests = card.locator(".tests-section")
    assert tests.locator(".tests-done").inner_text() == "Done: Refractive index, Specific gravity."
    assert tests.locator("li[data-test=refractive_index], li[data-test=specific_gravity]").count() == 0
    assert stored["tests"]["lab_note"] and stored["tests"]["lab_note"] in tests.locator(".lab-note").inner_text()
    # the queue and the parcel summary: the conclusion, and the photo's answer beside it
    assert "Refer to a laboratory" in page.locator("#queue li[data-file='cz.jpg'] [data-status=done]").inner_text()
    row = page.locator(f"#summary tr[data-report-id='{rid}']")
    assert row.locator(".badge").inner_text() == "Refer to a lab"
    assert "refer" in row.locator(".badge").get_attribute("class")
    assert row.locator("td.answer").inner_text() == f"readings fit {c['label']} (with readings)"
    photo_cell = row.locator("td.photo-answer").inner_text()  # the photo's own top 3 beside it
    assert photo_cell.startswith(photo["species"]["top"][0]["label"].replace("_", " ")), photo_cell
    shot(page, "desk-refer-card")

    page.goto(server + "#/history")
    page.get_by_label("Reference").fill(reference)
    page.get_by_label("Decision").select_option("refer")
    page.get_by_role("button", name="Search").click()
    page.wait_for_function("n => document.querySelectorAll('table.history tbody tr').length === n", arg=1)
    hist = page.locator("table.history tbody tr")
    assert hist.get_attribute("data-report-id") == rid and "decision=refer" in page.url
    assert hist.locator(".badge.refer").inner_text() == "Refer to a lab"
    assert hist.locator("td[data-label=Conclusion]").inner_text() == f"readings fit {c['label']}"
    shot(page, "desk-history-refer")

    page.goto(f"{server}#/report/{rid}/print")
    doc = page.locator("article.doc")
    doc.wait_for()
    assert doc.locator(".conclusion").get_attribute("data-decision") == "refer"
    assert doc.locator(".from-photo").get_by_role("heading").inner_text() == "From the photo"
    assert doc.locator(".tests-done").inner_text().startswith("Done: Refractive index")
    assert doc.locator("li[data-test=refractive_index]").count() == 0  # no stale "do these next"
    assert "Do these next" not in doc.inner_text()
    shot(page, "desk-print-refer")
    desk.assert_clean()


def _altered(page, server: str, rid: str, change) -> None:
    """Serve the stored report through `change(report)`: shapes of the schema the running model does not
    produce here (a grade that could not be made, a report stored before conclusions existed)."""
    def handle(route):
        response = route.fetch()
        body = response.json()
        change(body)
        route.fulfill(response=response, json=body)

    page.route(f"{server}v1/reports/{rid}", handle)


def test_grades_that_could_not_be_made_say_why(desk: Watched, server: str):
    page = desk.page
    rid = api_report(server)["report_id"]

    def not_graded(r: dict) -> None:
        r["colour"].update(status="cannot_judge", reason="too few pixels on the stone", hue=None, hue_angle=None,
                           tone=None, saturation=None, hex=None, lab=None, description="")
        r["clarity"].update(status="not_applicable", reason="an opaque material has no clarity grade", grade=None,
                            eye_clean=None, severity=None, clarity_type=None, type_meaning=None, inclusions=[])

    _altered(page, server, rid, not_graded)
    for view, root in ((f"#/report/{rid}", "article.report"), (f"#/report/{rid}/print", "article.doc")):
        page.goto(server + view)
        page.locator(root).wait_for()
        colour, clarity = page.locator(".colour"), page.locator(".clarity")
        assert colour.get_attribute("data-status") == "cannot_judge"
        assert colour.locator(".not-graded").inner_text() == "Cannot judge from this photo: too few pixels on the stone"
        assert clarity.locator(".not-graded").inner_text() == \
            "Does not apply: an opaque material has no clarity grade"
        assert colour.locator(".swatch, dl.facts").count() == 0 and clarity.locator(".grade").count() == 0
    desk.assert_clean()


def test_a_report_stored_before_conclusions_still_renders(desk: Watched, server: str):
    page = desk.page
    report = api_report(server)
    rid = report["report_id"]

    def old(r: dict) -> None:
        for key in ("conclusion", "schema_version"):
            r.pop(key, None)
        for key in ("done", "lab_note"):
            r["tests"].pop(key, None)
        for grade in ("colour", "clarity"):
            for key in ("status", "reason"):
                (r[grade] or {}).pop(key, None)

    _altered(page, server, rid, old)
    page.goto(f"{server}#/report/{rid}")
    conclusion = page.locator("article.report .conclusion")
    conclusion.wait_for()
    sp = report["species"]
    assert conclusion.get_attribute("data-decision") == sp["decision"]
    if sp["decision"] != "rejected":
        assert sp["top"][0]["label"] in conclusion.locator(".decision").inner_text()
    assert "stored before" in conclusion.locator(".basis").inner_text()
    assert page.locator(".colour .not-graded, .clarity .not-graded").count() == 0
    page.goto(f"{server}#/report/{rid}/print")
    page.locator("article.doc .conclusion").wait_for()
    desk.assert_clean()


def test_readings_form_takes_how_they_were_read(desk: Watched, server: str):
    page = desk.page
    rid = api_report(server)["report_id"]
    page.goto(f"{server}#/report/{rid}")
    card = page.locator("article.report")
    card.wait_for()
    # the weight and the spot switch alone are not readings
    card.get_by_label("RI is a spot reading").check()
    card.get_by_label("Weight (ct)").fill("0")
    card.get_by_role("button", name="Re-rank with these readings").click()
    assert "above 0" in card.locator(".field-error").filter(has_text="above").inner_text()
    card.get_by_label("Weight (ct)").fill("1,2")
    card.get_by_role("button", name="Re-rank with these readings").click()
    assert "only say how the readings were taken" in card.locator("form.readings-form .form-error").inner_text()
    assert card.get_attribute("data-revision") == "1"
    _card_readings(card, **{"RI (single or low)": "1.54"})
    page.wait_for_function("() => document.querySelector('article.report').dataset.revision === '2'")
    readings = json.load(authed(f"{server}v1/reports/{rid}"))["tests"]["reranking"]["readings"]
    assert (readings["ri"], readings["ri_spot"], readings["weight_ct"]) == (1.54, True, 1.2)
    line = card.locator(".species .with-readings .readings-line").inner_text()
    assert "RI: 1.54" in line and "RI is a spot reading" in line and "Weight: 1.20 ct" in line
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


def test_confirm_a_report_on_its_page(desk: Watched, server: str):
    page = desk.page
    rid = api_report(server, rendered_stone(6), "confirm-me")["report_id"]
    page.goto(server + f"#/report/{rid}")
    card = page.locator(f"article.report[data-report-id='{rid}']")
    card.wait_for()
    sec = card.locator("section.confirmation")
    sec.get_by_label("Confirmed species").fill("Rubby")
    sec.get_by_label("Method").fill("Raman")
    sec.get_by_role("button", name="Record confirmed result").click()
    page.wait_for_function("() => document.querySelector('section.confirmation .form-error').textContent !== ''")
    assert "not a label" in sec.locator(".form-error").inner_text()  # the service's words
    assert card.get_attribute("data-revision") == "1"

    sec.get_by_label("Confirmed species").fill("ruby")
    sec.get_by_label("Laboratory report number").fill("LAB-42")
    sec.get_by_role("button", name="Record confirmed result").click()
    page.locator("section.confirmation p.confirmed").wait_for()
    text = card.locator("section.confirmation p.confirmed").inner_text()
    assert "Ruby" in text and "Raman" in text and "LAB-42" in text
    assert card.get_attribute("data-revision") == "2"
    stored = json.loads(authed(f"{server}v1/reports/{rid}").read())
    assert stored["confirmation"]["label"] == "Ruby" and stored["revision"] == 2
    desk.assert_clean()
    assert stored["issued_by"]["name"] == SIGN_IN["name"]  # the signed-in supervisor made the revision


# --- many stones, parcels, duplicates, exports ------------------------------------------------------------


def tray_png(seed: int = 0) -> bytes:
    """Six drawn stones apart on one tray photo (tests/support/bundle_fixture.py), as a PNG; `seed` varies the
    background so two trays are two different photos."""
    from bundle_fixture import draw_tray, encode

    return encode(draw_tray(background=(245 - seed, 245 - seed, 245 - seed)))


def pdf_pages(pdf: bytes) -> int:
    """Pages of a PDF Chromium printed (its page objects; Chromium writes them uncompressed)."""
    import re

    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf))


def test_tray_photo_gives_numbered_stones_in_a_compact_result(desk: Watched, server: str):
    page = desk.page
    reference = f"TRAY-{uuid.uuid4().hex[:8]}"
    page.goto(server)
    page.get_by_label("Parcel or reference number").fill(reference)
    page.set_input_files("#file-pick", files=[{"name": "tray.png", "mimeType": "image/png", "buffer": tray_png()}])
    page.get_by_role("button", name="Identify 1 photo").click()
    page.wait_for_function("() => document.querySelectorAll('details.stone-result').length === 6")
    parcel = json.load(authed(f"{server}v1/parcels/{urllib.parse.quote(reference, safe='')}"))
    ids = [r["report_id"] for r in parcel["reports"]]
    assert len(ids) == 6

    # the photo once, its six stones outlined and numbered 1-6 over it, in the service's reading order
    tray = page.locator("figure.tray")
    assert tray.count() == 1
    marks = tray.locator("svg.overlay g[data-stone]")
    assert [marks.nth(i).get_attribute("data-stone") for i in range(6)] == ["1", "2", "3", "4", "5", "6"]
    assert [marks.nth(i).get_attribute("data-report-id") for i in range(6)] == ids
    assert marks.locator("text.number").all_text_contents() == ["1", "2", "3", "4", "5", "6"]
    # one compact row per stone, every card closed: a screen tall, not six report cards
    rows = page.locator("#summary table.stones tbody tr")
    assert [rows.nth(i).get_attribute("data-report-id") for i in range(6)] == ids
    assert texts(rows.locator("td.where")) == [f"tray.png · stone {i}/6" for i in range(1, 7)]
    assert page.locator("article.report").count() == 0
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < 2600, f"a six-stone result is {height}px tall"
    shot(page, "desk-tray-result")
    # a stone's full card on demand, with its number on the photo
    page.locator("details.stone-result > summary").nth(2).click()
    card = page.locator("article.report")
    card.wait_for()
    assert card.get_attribute("data-report-id") == ids[2]
    assert card.locator("svg.overlay text.number").text_content() == "3"
    # the printable report of one stone says which stone it is
    page.goto(f"{server}#/report/{ids[2]}/print")
    assert page.locator("article.doc .stone-number").inner_text().startswith("3 of 6")
    desk.assert_clean()


def test_stones_on_the_scale_card_show_their_size_and_weight(desk: Watched, server: str):
    from bundle_fixture import encode
    from card_support import TRAY, card_photo

    page = desk.page
    photo, truths, _ = card_photo(TRAY, seed=3)
    page.goto(server)
    # the card is one click from the upload: the PDF, open to anyone
    link = page.locator("#scale-card-link")
    assert link.inner_text() == "Scale card (PDF)" and link.get_attribute("href") == "v1/scale-card.pdf?lang=en"
    with urllib.request.urlopen(urllib.parse.urljoin(server, link.get_attribute("href")), timeout=30) as got:
        assert got.headers["Content-Type"] == "application/pdf"
        assert "gemid scale card" in PdfReader(io.BytesIO(got.read())).pages[0].extract_text()
    page.set_input_files("#file-pick", files=[{"name": "card.jpg", "mimeType": "image/jpeg",
                                               "buffer": encode(photo, ".jpg")}])
    page.get_by_role("button", name="Identify 1 photo").click()
    page.wait_for_function(f"() => document.querySelectorAll('details.stone-result').length === {len(truths)}")
    # every row of the table gives the stone's length and width under its shape
    sizes = texts(page.locator("#summary table.stones td.shape .size"))
    assert len(sizes) == len(truths) and all(" mm" in s for s in sizes), sizes
    assert "null" not in page.locator("#results").inner_text()  # no reference: no stray parts either
    measured = sorted(float(s.split(" × ")[0]) for s in sizes)
    assert measured == pytest.approx(sorted(t[0] for t in truths), abs=0.7)
    shot(page, "desk-scale-card-result")
    # a stone's card says what the size rests on
    page.locator("details.stone-result > summary").first.click()
    section = page.locator("article.report section.size-section")
    section.wait_for()
    assert section.get_attribute("data-status") == "measured"
    assert "mm (± " in section.locator(".size-mm").inner_text()
    assert "scale card: 4 markers" in section.locator(".method").inner_text()
    desk.assert_clean()


def measured_beside(desk: Watched, name: str, photo, truths, method: str) -> None:
    """Identifies one photo of stones beside a scale reference (its field already filled): one row per stone,
    its size as composed, the reference not among them, and the method named in the stone's size section."""
    from bundle_fixture import encode

    page = desk.page
    page.set_input_files("#file-pick", files=[{"name": f"{name}.jpg", "mimeType": "image/jpeg",
                                               "buffer": encode(photo, ".jpg")}])
    page.get_by_role("button", name="Identify 1 photo").click()
    page.wait_for_function(f"() => document.querySelectorAll('details.stone-result').length === {len(truths)}")
    sizes = texts(page.locator("#summary table.stones td.shape .size"))  # the coin or ruler is none of them
    measured = sorted(float(s.split(" × ")[0]) for s in sizes)
    assert measured == pytest.approx(sorted(t[0] for t in truths), abs=0.7)
    page.locator("details.stone-result > summary").first.click()
    section = page.locator("article.report section.size-section")
    section.wait_for()
    assert method in section.locator(".method").inner_text()
    shot(page, f"desk-{name}-result")
    desk.assert_clean()


def test_stones_beside_a_coin_are_measured_from_the_coin_entered(desk: Watched, server: str):
    from card_support import COIN_TRAY, coin_photo

    photo, truths, _ = coin_photo(COIN_TRAY, seed=1)
    desk.page.goto(server)
    desk.page.get_by_label("Coin beside the stones (diameter in mm)").fill("20")
    measured_beside(desk, "coin", photo, truths, "coin of 20 mm")


def test_stones_beside_a_ruler_are_measured_and_the_coin_field_gives_way(desk: Watched, server: str):
    from card_support import RULER_TRAY, ruler_photo

    page = desk.page
    photo, truths, _ = ruler_photo(RULER_TRAY, seed=1)
    page.goto(server)
    coin, ruler = page.get_by_label("Coin beside the stones (diameter in mm)"), page.get_by_label(
        "A millimetre ruler lies beside the stones")
    coin.fill("20")  # a coin or a ruler, not both: each one given disables the other
    assert ruler.is_disabled()
    coin.fill("")
    ruler.check()
    assert coin.is_disabled()
    measured_beside(desk, "ruler", photo, truths, "millimetre ruler")


def test_sizes_fit_a_phone(phone: Watched, server: str):
    from bundle_fixture import encode
    from card_support import TRAY, card_photo

    page = phone.page
    reference = f"CARD-{uuid.uuid4().hex[:6]}"
    photo, truths, _ = card_photo(TRAY, seed=4)
    status, body = api_identify(server, encode(photo, ".jpg"), "card.jpg", reference)
    assert status == 200 and len(body["reports"]) == len(truths)
    page.goto(f"{server}#/parcel/{reference}")
    rows = page.locator("table.stones tbody tr")
    rows.first.wait_for()
    assert rows.count() == len(truths)
    assert all(" mm" in s for s in texts(page.locator("table.stones td.shape .size")))
    page.wait_for_timeout(100)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the parcel with sizes is {width}px wide at {PHONE['width']}px"
    shot(page, "phone-parcel-sizes")
    page.goto(f"{server}#/report/{body['reports'][0]['report_id']}")
    page.locator("article.report section.size-section").wait_for()
    page.wait_for_timeout(100)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    phone.assert_clean()


def test_same_photo_again_shows_the_stored_reports_with_a_notice(desk: Watched, server: str):
    page = desk.page
    reference = f"DUP-{uuid.uuid4().hex[:8]}"
    photo = rendered_stone(21)
    first = api_report(server, photo, reference)
    page.goto(server)
    page.get_by_label("Parcel or reference number").fill(reference)
    page.set_input_files("#file-pick", files=[{"name": "again.jpg", "mimeType": "image/jpeg", "buffer": photo}])
    page.get_by_role("button", name="Identify 1 photo").click()
    notice = page.locator("[data-notice=duplicate]")
    notice.wait_for()
    assert f"Already stored under reference {reference}" in notice.inner_text()
    assert "nothing new was stored" in page.locator("#queue [data-status=done]").inner_text()
    assert page.locator("details.stone-result").get_attribute("data-report-id") == first["report_id"]
    parcel = json.load(authed(f"{server}v1/parcels/{reference}"))
    assert parcel["stones"] == 1  # not stored twice
    shot(page, "desk-duplicate")
    desk.assert_clean()


def test_parcel_view_csv_and_printed_document(desk: Watched, server: str):
    page = desk.page
    reference = f"PARCEL-{uuid.uuid4().hex[:8]}"
    for seed in (0, 3, 6):  # three tray photos: eighteen stones
        status, _ = api_identify(server, tray_png(seed), f"tray-{seed}.png", reference)
        assert status == 200
    for seed in (31, 32):  # and two photos of one stone each: twenty, a desk's parcel
        api_report(server, rendered_stone(seed), reference)
    parcel = json.load(authed(f"{server}v1/parcels/{reference}"))
    assert parcel["stones"] == 20 and parcel["photos"] == 5

    page.goto(f"{server}#/parcel/{reference}")
    rows = page.locator("table.stones tbody tr")
    rows.first.wait_for()
    assert [rows.nth(i).get_attribute("data-report-id") for i in range(20)] == [r["report_id"] for r in parcel["rows"]]
    assert page.locator("figure.tray").count() == 5
    assert page.locator("figure.tray svg g[data-stone]").count() == 20
    # each stone on the photos carries its table row's number, not its place in its own photo (an outside try
    # saw "1" on every single-stone photo and could not match a row to its photo)
    drawn = {g.get_attribute("data-report-id"): g.locator("text.number").text_content()
             for g in page.locator("figure.tray svg g[data-stone]").all()}
    assert drawn == {r["report_id"]: str(i + 1) for i, r in enumerate(parcel["rows"])}
    assert page.locator("figure.tray figcaption").last.inner_text().endswith("row 20 of the table below")
    counts = page.locator(".counts").inner_text()
    assert counts.startswith("20 stones in 5 photos:")
    for decision, n in parcel["counts"].items():
        if n:
            assert page.locator(f".counts .badge[data-decision={decision}]").inner_text().startswith(str(n))
    # each row says what the service's row says (gemid.report.table_row)
    for i, row in enumerate(parcel["rows"]):
        tr = rows.nth(i)
        clarity = tr.locator("td.clarity")  # a grade not made says so briefly; the whole reason in its title
        assert clarity.inner_text() == (row["clarity"].split(":")[0] or "—")
        assert clarity.get_attribute("title") == (row["clarity"] or None)
        assert tr.locator("td.next-test").inner_text() == (row["next_test"] or "—")
        assert tr.locator("td.shape").inner_text() == (row["shape"] or "—")
    shot(page, "desk-parcel")

    # the CSV, downloaded from the page
    with page.expect_download() as dl:
        page.get_by_role("link", name="Download CSV").click()
    text = Path(dl.value.path()).read_text(encoding="utf-8-sig")
    lines = list(csv.DictReader(io.StringIO(text)))
    assert [x["report_id"] for x in lines] == [r["report_id"] for r in parcel["rows"]]
    assert [x["stone"] for x in lines[:6]] == [f"{i} of 6" for i in range(1, 7)]

    # the service's manifest PDF, downloaded from the link beside it: twenty stones on one A4 page
    with page.expect_download() as dl:
        page.get_by_role("link", name="Download PDF").click()
    assert dl.value.suggested_filename == f"parcel-{reference}.pdf"
    manifest = PdfReader(dl.value.path())
    assert len(manifest.pages) == 1
    text = manifest.pages[0].extract_text()
    assert f"Parcel manifest {reference}" in text and "20 stones in 5 photos" in text

    # the printed parcel document: twenty stones on one A4 page, as Chromium prints it
    page.emulate_media(media="print")
    assert page.locator(".parcel-doc-head").is_visible()
    page.set_viewport_size({"width": 703, "height": 1000})  # A4's width inside 12 mm margins, at 96 dpi
    shot(page, "print-parcel")
    pdf = page.pdf(format="A4", print_background=True)
    (SHOTS.parent / "parcel.pdf").write_bytes(pdf)
    pages = pdf_pages(pdf)
    assert pages == 1, f"20 stones printed on {pages} A4 pages"
    page.emulate_media(media="screen")

    # History links to the parcel, and its CSV follows the search
    page.goto(f"{server}#/history?reference={reference}")
    page.locator("table.history").wait_for()
    link = page.locator("#history-csv")
    assert link.get_attribute("href") == f"v1/reports.csv?reference={reference}"
    with authed(server + link.get_attribute("href")) as r:
        listed = list(csv.DictReader(io.StringIO(r.read().decode("utf-8-sig"))))
    assert sorted(x["report_id"] for x in listed) == sorted(r["report_id"] for r in parcel["rows"])
    page.locator("a.parcel-link").first.click()
    page.locator("table.stones").wait_for()
    assert "#/parcel/" in page.url
    desk.assert_clean()


def test_parcel_view_fits_a_phone(phone: Watched, server: str):
    page = phone.page
    reference = f"PHONE-TRAY-{uuid.uuid4().hex[:6]}"
    assert api_identify(server, tray_png(5), "tray.png", reference)[0] == 200
    page.goto(f"{server}#/parcel/{reference}")
    page.locator("table.stones tbody tr").first.wait_for()
    page.wait_for_timeout(100)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the parcel is {width}px wide at {PHONE['width']}px"
    shot(page, "phone-parcel")
    phone.assert_clean()


def test_verification_page_works_signed_out(browser, server: str):
    """The QR code's page in a fresh browser (no cookies, nothing signed in): the signed summary and a valid
    signature; an unknown code says the report was not issued here. No script is needed for it."""
    report = api_report(server, reference="CUSTOMS-7")
    with authed(f"{server}v1/reports/{report['report_id']}/qr.svg") as r:
        url = r.headers["X-Verification-URL"]
    context = browser.new_context(viewport=PHONE, locale="en-GB", java_script_enabled=False)
    try:
        page = context.new_page()
        watched = Watched(page, server)
        assert page.goto(url).status == 200
        assert "Signature valid" in page.locator("#verdict").inner_text()
        assert page.locator("#photo-sha").inner_text() == report["image"]["sha256"]
        conclusion = report["conclusion"]
        body = page.locator("main").inner_text()
        assert (conclusion["label"] or "rejected") in body and "CUSTOMS-7" not in body  # summary only
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        shot(page, "verify-signed-out")
        assert page.goto(url[:-4] + "AAAA").status == 404
        assert "Report not found" in page.locator("h1").inner_text()
        watched.assert_clean()
    finally:
        context.close()


def warm_stone(seed: int) -> bytes:
    """A rendered stone under a warm lamp (the illuminant at 2800 K): the background turns yellow."""
    from gemid.datasets.synth import StoneSpec, render

    spec = StoneSpec(cut="round", lab=(40.0, 50.0, 20.0), background="white", illuminant_k=2800.0,
                     scale=0.5 + 0.01 * (seed % 10), facet_seed=seed)
    rgb, _mask, _truth = render(spec, size=256, seed=seed)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def test_field_page_shows_accuracy_and_names_what_drifted(desk: Watched, server: str):
    page = desk.page
    rid = api_report(server, rendered_stone(8), "field-1")["report_id"]
    req = urllib.request.Request(f"{server}v1/reports/{rid}/confirmation", method="POST",
                                 data=json.dumps({"label": "Ruby", "method": "Raman"}).encode(),
                                 headers={"Content-Type": "application/json", **AUTH})
    assert urllib.request.urlopen(req).status == 201
    for seed in range(32):  # a week of photos under a warm lamp
        assert api_identify(server, warm_stone(100 + seed), f"warm-{seed}.png")[0] == 200
    field = json.loads(authed(f"{server}v1/field").read())

    page.goto(server + "#/field")
    page.locator("[data-section='drift'] [data-moved]").wait_for()
    assert page.locator("nav a[data-nav='field']").get_attribute("aria-current") == "page"
    acc = field["accuracy"]
    overall = page.locator("[data-overall]").inner_text()
    assert f"{acc['confirmed']} confirmed reports" in overall
    assert page.locator("table.field-species tbody tr").count() == len(acc["species"])
    assert page.locator("[data-section='accuracy'] svg.chart rect.bar").count() >= 2
    moved = field["drift"]["moved"]
    assert "warmth" in moved  # the API says the cast moved; the page names it, and marks its chart
    items = texts(page.locator("[data-section='drift'] ul.drift-moved li"))
    assert any(t.startswith("Colour cast (warm) moved") and "warmer" in t for t in items)
    assert page.locator(".drift-stat").count() == 7
    marked = {page.locator(".drift-stat.is-moved").nth(i).get_attribute("data-stat")
              for i in range(page.locator(".drift-stat.is-moved").count())}
    assert marked == set(moved)
    shot(page, "field")
    desk.assert_clean()

# --- Urdu ---------------------------------------------------------------------------------------------

URDU_ALLOWED = {"gemid", "JPEG", "PNG", "WebP", "TIFF", "HEIC", "AVIF", "MiB", "KiB", "SHA", "CSV", "PDF", "UTC", "tray", "png", "English",
                SIGN_IN["name"]}  # the switch names English; the signed-in name is data


def english_words(text: str, allowed: set[str]) -> list[str]:
    """Latin words of three letters or more that are not quoted data (file names, references, species)."""
    import re

    return [w for w in re.findall(r"[A-Za-z]{3,}", text) if w not in allowed]


def test_urdu_page_is_right_to_left_and_fits_a_phone(browser, server: str):
    reference = f"URDU-{uuid.uuid4().hex[:6]}"
    assert api_identify(server, tray_png(7), "tray.png", reference)[0] == 200
    context = browser.new_context(viewport=PHONE, locale="ur-PK", is_mobile=True, has_touch=True)
    context.set_default_timeout(20_000)
    assert context.request.post(server + "v1/session", data=SIGN_IN).status == 200
    page = context.new_page()
    watched = Watched(page, server)
    try:
        def fits(name: str) -> None:
            page.wait_for_timeout(100)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{name}: {width}px wide at {PHONE['width']}px in Urdu"
            shot(page, f"phone-urdu-{name}")

        # the browser's language is Urdu: the page follows it, right to left, in Urdu
        page.goto(server)
        page.locator("#dropzone").wait_for()
        assert page.evaluate("[document.documentElement.lang, document.documentElement.dir]") == ["ur", "rtl"]
        assert page.locator("h1").inner_text() == "پتھروں کی شناخت"
        assert page.get_by_label("پارسل یا حوالہ نمبر").count() == 1
        chrome = page.locator("body").inner_text()
        assert english_words(chrome, URDU_ALLOWED) == [], "English left on the Urdu Identify page"
        assert page.evaluate("getComputedStyle(document.body).fontFamily").startswith('"Noto Nastaliq Urdu"')
        # the Nastaliq font is the system's, and it is the one used: Urdu text set in it is wider than in Naskh
        widths = page.evaluate("""() => ['Noto Nastaliq Urdu', 'Noto Naskh Arabic'].map((f) => {
            const c = document.createElement('canvas').getContext('2d'); c.font = `20px "${f}"`;
            return c.measureText('پتھروں کی شناخت').width; })""")
        assert widths[0] != widths[1], widths
        fits("identify")
        # the scale card in the page's language
        card_href = page.locator("#scale-card-link").get_attribute("href")
        assert card_href == "v1/scale-card.pdf?lang=ur"
        card_pdf = context.request.get(urllib.parse.urljoin(page.url, card_href))
        assert card_pdf.status == 200 and card_pdf.headers["content-type"] == "application/pdf"
        assert "پیمانہ کارڈ" in PdfReader(io.BytesIO(card_pdf.body())).pages[0].extract_text().replace("\u200b", "")

        # the parcel in Urdu: headings, buttons, counts and columns from the Urdu catalogue
        page.goto(f"{server}#/parcel/{reference}")
        rows = page.locator("table.stones tbody tr")
        rows.first.wait_for()
        assert rows.count() == 6
        assert page.get_by_role("link", name="CSV ڈاؤن لوڈ کریں").count() == 1
        # its manifest PDF in the page's language: Urdu headings, shaped, in logical order
        href = page.get_by_role("link", name="PDF ڈاؤن لوڈ کریں").get_attribute("href")
        assert href and href.endswith(".pdf?lang=ur")
        got = context.request.get(urllib.parse.urljoin(page.url, href))
        assert got.status == 200 and got.headers["content-type"] == "application/pdf"
        manifest = PdfReader(io.BytesIO(got.body())).pages[0].extract_text().replace("\u200b", "")
        assert "پارسل کی فہرست" in manifest and "شفافیت" in manifest
        counts = page.locator(".counts").inner_text()
        assert "\u20686\u2069" in counts  # a figure is isolated in the right-to-left sentence
        assert counts.replace("\u2068", "").replace("\u2069", "").startswith("6 پتھر، 1 تصویر میں")
        clarity = rows.first.locator("td.clarity").inner_text()
        assert clarity in ("لاگو نہیں", "اس تصویر سے اندازہ ممکن نہیں") or clarity.isascii()  # a grade stays VVS…
        # a graded colour in Urdu words, hue included (its English GIA name stays in the cell's title)
        colours = [(c.inner_text(), c.get_attribute("title") or "") for c in rows.locator("td.colour").all()]
        graded = [(text, title) for text, title in colours if ", tone " in title]
        assert graded, colours
        assert all("ٹون" in text and english_words(text, URDU_ALLOWED) == [] for text, _ in graded), graded
        fits("parcel")
        # a stone's card is English inside the Urdu page: laid out left to right, so "<0.1%" keeps its sign
        # and a sentence its full stop at its end (an outside try saw "0.1%>" and ".tests")
        page.goto(f"{server}#/report/{rows.first.get_attribute('data-report-id')}")
        card = page.locator("article.report").first
        card.wait_for()
        assert card.evaluate("(el) => [el.lang, getComputedStyle(el).direction]") == ["en", "ltr"]
        fits("card")

        page.goto(f"{server}#/history?reference={reference}")
        page.locator("table.history").wait_for()
        assert page.locator("h1").inner_text() == "تاریخچہ"
        assert english_words(page.locator("form").inner_text(), URDU_ALLOWED) == []
        fits("history")

        # the switch: English, remembered over a reload
        page.locator("#lang-switch").click()
        assert page.evaluate("[document.documentElement.lang, document.documentElement.dir]") == ["en", "ltr"]
        assert page.locator("h1").inner_text() == "History"
        page.reload()
        page.locator("table.history").wait_for()
        assert page.locator("h1").inner_text() == "History"
        assert page.locator("#lang-switch").inner_text() == "اردو"
        watched.assert_clean()
    finally:
        context.close()


def test_the_console_link_signs_in_once(browser, server: str):
    assert len(LINKS) == 1 and LINKS[0].startswith(server + "signin?token="), LINKS
    for watched in _open(browser, server, DESK, signed_in=False):
        page = watched.page
        page.goto(LINKS[0])
        page.locator("[data-account]").get_by_text("admin · admin").wait_for()
        assert page.url.rstrip("/") + "/" == server or page.url.startswith(server + "#")
        page.goto(server + "#/history")
        page.get_by_role("heading", name="History").wait_for()
        watched.assert_clean()
    for watched in _open(browser, server, DESK, signed_in=False):
        watched.page.goto(LINKS[0])  # used already: refused, no session
        watched.page.get_by_text("Sign-in link not valid").first.wait_for()
        assert not [c for c in watched.page.context.cookies() if c["name"] == "gemid_session"]


def test_a_technician_sees_only_its_desk_and_cannot_confirm(browser, server: str):
    rid = api_report(server, rendered_stone(8), "not-desk-9")["report_id"]  # issued by the admin key, no desk
    for watched in _open(browser, server, DESK, signed_in=False):
        page = watched.page
        assert page.context.request.post(server + "v1/session",
                                          data={"name": "tariq", "password": "tariq pass 2026"}).status == 200
        page.goto(server + "#/history")
        page.get_by_role("heading", name="History").wait_for()
        page.wait_for_function("() => document.querySelector('#view').textContent.includes('No reports')"
                               " || document.querySelectorAll('[data-report-id]').length > 0")
        assert page.locator(f"[data-report-id='{rid}']").count() == 0
        page.goto(server + f"#/report/{rid}")
        page.locator(".notice.bad").get_by_text(rid).first.wait_for()  # "no report with id …"
        # its own desk's report: no confirmation form, which the service would refuse on submit (an outside try
        # filled one in and got 403), but who may record it
        csrf = page.context.request.get(server + "v1/session").json()["csrf"]
        made = page.context.request.post(server + "v1/identify", headers={"X-CSRF-Token": csrf}, multipart={
            "images": {"name": "own.jpg", "mimeType": "image/jpeg", "buffer": rendered_stone(9)}})
        assert made.status == 200, made.text()
        own = made.json()["reports"][0]["report_id"]
        page.goto(server + f"#/report/{own}")
        sec = page.locator(f"article.report[data-report-id='{own}'] section.confirmation")
        sec.wait_for()
        assert sec.locator("form").count() == 0 and "A supervisor or an administrator" in sec.inner_text()


def test_the_api_docs_run_under_their_content_security_policy(desk: Watched, server: str):
    """/docs (Swagger UI) and /redoc, served offline, render their operations: the CSP on every answer lets
    their own start-up script run and blocks nothing they use."""
    page = desk.page
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    response = page.goto(server + "docs")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    page.locator(".opblock-summary-path").first.wait_for()
    assert page.locator(".opblock-summary-path[data-path='/v1/identify']").count() == 1
    page.goto(server + "redoc")
    page.locator("h2", has_text="Identify one or more stone photos").first.wait_for()  # ReDoc drew the operation
    # ReDoc's "powered by" logo comes from its CDN: blocked, as everything outside the service is (desks may
    # be offline); nothing of the service's own is
    assert [v for v in violations if "https://cdn.redoc.ly/" not in v] == [], violations
    assert [e for e in desk.errors if "cdn.redoc.ly" not in e] == [], desk.errors
