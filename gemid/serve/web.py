"""The technician web page: `/` (the page), `/static/*` (its assets), the short verification link `/r/{id}`,
a display-ready preview of the stored photo and a QR code that opens a printed report.

Everything the page needs is served from the package (no CDN: desks may be offline); the page itself is
plain HTML/CSS/JS with no build step. The page talks to the same /v1 API as any other client.
"""

from __future__ import annotations

import hashlib
import html
import re
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from gemid.report import printable
from gemid.serve.api import REPORT_ID, ReportId
from gemid.serve.errors import ApiError
from gemid.serve.images import atomic_write

STATIC_DIR = Path(__file__).resolve().parent / "static"

# What the page may load: only this origin (and blob: previews of the photos being chosen).
PAGE_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
}
PREVIEW_SIDES = (256, 512, 1024, 2048)  # a few fixed sizes, so the disk cache stays small

router = APIRouter()


# --- helpers ------------------------------------------------------------------------------------------


def _etag(path: Path) -> str:
    st = path.stat()
    return '"' + hashlib.sha1(f"{path.name}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:20] + '"'


def _file(request: Request, path: Path, media_type: str, headers: dict[str, str]) -> Response:
    """The file, or 304 when the browser's copy is current (assets are revalidated on every load)."""
    tag = _etag(path)
    all_headers = {**headers, "ETag": tag}
    if tag in {t.strip() for t in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers=all_headers)
    return FileResponse(path, media_type=media_type, headers=all_headers)


def public_base(request: Request) -> str:
    """Base URL printed on reports: GEMID_PUBLIC_URL when set (what other devices can reach), else this
    request's own base."""
    settings = request.app.state.settings
    base = getattr(settings, "public_url", None) or str(request.base_url)
    return base if base.endswith("/") else base + "/"


def verification_url(request: Request, report_id: str) -> str:
    return f"{public_base(request)}r/{quote(report_id, safe='')}"


def _store(request: Request):
    store = request.app.state.store
    if store is None:
        raise ApiError(503, "not_ready", "the service is starting; try again in a moment")
    return store


async def _exists(request: Request, report_id: str) -> bool:
    if not re.fullmatch(REPORT_ID, report_id):  # no id looks like that: nothing to ask the database
        return False
    store = _store(request)
    return await to_thread.run_sync(store.image_of, report_id) is not None


# a printed link is typed in by people: whatever they typed gets the "not found" page, never a 422
LinkId = Annotated[str, PathParam(min_length=1, max_length=200)]


def qr_svg(text: str) -> str:
    """A QR code (error correction M, 4-module quiet zone) as a standalone SVG on a white background."""
    import qrcode
    import qrcode.image.svg

    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4,
                       image_factory=qrcode.image.svg.SvgPathFillImage)
    qr.add_data(text)
    qr.make(fit=True)
    return qr.make_image().to_string(encoding="unicode")


def _not_found_page(report_id: str) -> HTMLResponse:
    rid = html.escape(report_id)
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Report not found — gemid</title><link rel="stylesheet" href="../static/app.css"></head>
<body><main id="main"><div class="panel"><h1>Report not found</h1>
<p class="notice bad">No report with id <code>{rid}</code> is stored in this gemid service. Check the id printed on
the report; a report that cannot be found here was not issued by this service.</p>
<p><a href="../#/history">Search the history</a> · <a href="../">Identify stones</a></p></div></main></body></html>"""
    return HTMLResponse(body, status_code=404, headers=_PAGE_HEADERS)


# --- the page -----------------------------------------------------------------------------------------


@router.get("/", include_in_schema=False)
async def index(request: Request) -> Response:
    return _file(request, STATIC_DIR / "index.html", _TYPES[".html"], _PAGE_HEADERS)


@router.get("/static/{asset:path}", include_in_schema=False)
async def static_asset(request: Request, asset: str) -> Response:
    try:
        path = (STATIC_DIR / asset).resolve()
        media_type = _TYPES.get(path.suffix.lower())
        found = (media_type is not None and path.is_file() and STATIC_DIR in path.parents
                 and not any(part.startswith(".") for part in Path(asset).parts))
    except (ValueError, OSError):  # a NUL byte, a name too long for the file system: no such asset either
        found = False
    if not found:
        raise ApiError(404, "not_found", f"no such asset: {printable(asset)[:200]}")
    return _file(request, path, media_type, {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})


@router.get("/ui-config.json", include_in_schema=False)
async def ui_config(request: Request) -> JSONResponse:
    """What the page needs to pre-check files and print links: the service's own limits, not guesses."""
    state = request.app.state
    settings = state.settings
    identifier = state.identifier
    bundle = identifier.bundle if identifier is not None else None
    return JSONResponse({
        "max_bytes": settings.max_bytes,
        "max_pixels": settings.max_pixels,
        "max_files": settings.max_files,
        "public_url": settings.public_url,
        "labels": list(bundle.labels) if bundle else [],
        "model": {"name": bundle.name, "version": bundle.version} if bundle else None,
    }, headers={"Cache-Control": "no-cache"})


# --- short verification link --------------------------------------------------------------------------


@router.get("/r/{report_id}", include_in_schema=False)
async def short_link(request: Request, report_id: LinkId) -> Response:
    """The link printed on a report (and in its QR code): opens the stored report in the page."""
    if not await _exists(request, report_id):
        return _not_found_page(report_id)
    return RedirectResponse(f"../#/report/{quote(report_id, safe='')}", status_code=303)


@router.get("/r/{report_id}/print", include_in_schema=False)
async def short_link_print(request: Request, report_id: LinkId) -> Response:
    if not await _exists(request, report_id):
        return _not_found_page(report_id)
    return RedirectResponse(f"../../#/report/{quote(report_id, safe='')}/print", status_code=303)


# --- QR code and display preview (part of the API: other clients print reports too) -------------------


@router.get(
    "/v1/reports/{report_id}/qr.svg", tags=["reports"], summary="QR code of the report's verification link",
    response_class=Response, responses={200: {"content": {"image/svg+xml": {}}}, 404: {"description": "unknown id"}},
)
async def report_qr(request: Request, report_id: ReportId) -> Response:
    """An SVG QR code that encodes `{GEMID_PUBLIC_URL or this server}/r/{report_id}`."""
    if not await _exists(request, report_id):
        raise ApiError(404, "report_not_found", f"no report with id {report_id}")
    url = verification_url(request, report_id)
    svg = await to_thread.run_sync(qr_svg, url)
    return Response(svg, media_type="image/svg+xml", headers={
        "Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff", "X-Verification-URL": url,
    })


def _render_preview(source: Path, target: Path, side: int, max_bytes: int, max_pixels: int) -> None:
    """Decode the stored photo as the runtime does (EXIF rotation, colour profile), shrink, save as JPEG.
    The preview therefore has the orientation of the report's pixel coordinates, whatever the upload was
    (HEIC and TIFF included, which browsers cannot show)."""
    import cv2

    from gemid.vision.decode import decode

    img = decode(source, max_bytes=max_bytes, max_pixels=max_pixels)
    rgb = img.rgb
    h, w = rgb.shape[:2]
    scale = min(1.0, side / max(h, w))
    if scale < 1.0:
        rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, buf.tobytes(), durable=False)  # a derived cache: rebuilt if lost


@router.get(
    "/v1/reports/{report_id}/preview.jpg", tags=["reports"], summary="The photo as a display-ready JPEG",
    response_class=FileResponse, responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "unknown id"}},
)
async def report_preview(
    request: Request, report_id: ReportId,
    size: Annotated[int, Query(ge=64, le=4096, description="longest side in pixels (rounded up to 256, 512, 1024 or 2048)")] = 1024,
) -> Response:
    """The stored photo decoded (EXIF rotation applied, any format) and shrunk, in the same orientation as
    the report's pixel coordinates, so outlines and inclusion boxes overlay it exactly."""
    store = _store(request)
    found = await to_thread.run_sync(store.image_of, report_id)
    if found is None:
        raise ApiError(404, "report_not_found", f"no report with id {report_id}")
    sha, ext, _name = found
    source = request.app.state.images.get(sha, ext)
    if source is None:
        raise ApiError(404, "image_missing", f"the photo of report {report_id} is missing from the store")
    side = next((s for s in PREVIEW_SIDES if s >= size), PREVIEW_SIDES[-1])
    settings = request.app.state.settings
    target = Path(settings.data_dir) / "previews" / sha[:2] / f"{sha}-{side}.jpg"
    if not target.is_file():
        try:
            await to_thread.run_sync(_render_preview, source, target, side, max(settings.max_bytes, source.stat().st_size),
                                     settings.max_pixels, limiter=request.app.state.limiter)
        except ValueError as exc:  # GemidInputError and friends: the stored photo no longer decodes
            raise ApiError(422, "preview_failed", f"the stored photo could not be decoded for display: {exc}") from exc
    etag = f'"{sha[:32]}-{side}"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=31536000, immutable",
               "X-Content-Type-Options": "nosniff"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return FileResponse(target, media_type="image/jpeg", headers=headers)
