"""The technician web page: `/` (the page), `/static/*` (its assets), `/ui-config.json` (the service's limits,
for the page to check files before sending them) and the short verification link `/r/{id}` printed on a
report (and its `/print` form).

Everything the page needs is served from the package (no CDN: desks may be offline); the page itself is
plain HTML/CSS/JS with no build step, and talks to the same /v1 API as any other client.
"""

from __future__ import annotations

import html
import os
from pathlib import Path, PurePath
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

from gemid.report import printable
from gemid.serve.deps import LoadedIdentifierDep, SettingsDep, StoreDep, report_exists
from gemid.serve.errors import ApiError

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

# What the page may load: only this origin (and blob: previews of the photos being chosen).
PAGE_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
ASSET_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}  # revalidated on every load
# The asset types the page uses, with their content types written out: the platform's guess (Python's
# mimetypes, which on Windows reads the registry) can make .js text/plain, which browsers refuse to run
# under nosniff. Any other file in the folder is not served.
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
}


class Assets(StaticFiles):
    """Starlette's StaticFiles (the folder's path checks, ETag and 304) with the page's rules on top: only the
    types in MEDIA_TYPES, no hidden files, `headers` on every answer, and the API's JSON 404 for anything
    else, never a 500, whatever the name holds (a NUL byte, a name too long for the file system).

    Served through routes (`serve`) rather than mounted: the request metrics label a request by its route,
    and a mount leaves every asset "unmatched"."""

    def __init__(self, directory: Path, headers: dict[str, str]) -> None:
        super().__init__(directory=directory)
        self.headers = headers

    async def serve(self, name: str, scope: Scope) -> Response:
        """The asset `name`, a path under the folder as the client wrote it."""
        path = os.path.normpath(os.path.join(*name.split("/")))  # as StaticFiles.get_path makes it of a URL
        parts = PurePath(path).parts
        if PurePath(path).suffix.lower() not in MEDIA_TYPES or any(p.startswith(".") for p in parts):
            raise _no_such_asset(name)
        try:
            return await self.get_response(path, scope)
        except HTTPException as exc:
            raise _no_such_asset(name) from exc

    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        media_type = MEDIA_TYPES[PurePath(full_path).suffix.lower()]
        response = FileResponse(full_path, status_code=status_code, stat_result=stat_result, media_type=media_type,
                                headers=self.headers)
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            response = NotModifiedResponse(response.headers)
            response.headers.update(self.headers)
        return response


def _no_such_asset(name: str) -> ApiError:
    return ApiError(404, "not_found", f"no such asset: {printable(name)[:200]}")


assets = Assets(STATIC_DIR, ASSET_HEADERS)
page = Assets(STATIC_DIR, PAGE_HEADERS)  # the page itself, with its own headers (CSP)

router = APIRouter()


@router.get("/", include_in_schema=False)
async def index(request: Request) -> Response:
    return await page.serve("index.html", request.scope)


@router.get("/static/{asset:path}", include_in_schema=False)
async def static_asset(request: Request, asset: str) -> Response:
    return await assets.serve(asset, request.scope)


@router.get("/ui-config.json", include_in_schema=False)
async def ui_config(settings: SettingsDep, identifier: LoadedIdentifierDep) -> JSONResponse:
    """What the page needs to pre-check files and print links: the service's own limits, not guesses."""
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

# a printed link is typed in by people: whatever they typed gets the "not found" page, never a 422
LinkId = Annotated[str, PathParam(min_length=1, max_length=200)]


def _not_found_page(report_id: str) -> HTMLResponse:
    rid = html.escape(report_id)
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Report not found — gemid</title><link rel="stylesheet" href="../static/app.css"></head>
<body><main id="main"><div class="panel"><h1>Report not found</h1>
<p class="notice bad">No report with id <code>{rid}</code> is stored in this gemid service. Check the id printed on
the report; a report that cannot be found here was not issued by this service.</p>
<p><a href="../#/history">Search the history</a> · <a href="../">Identify stones</a></p></div></main></body></html>"""
    return HTMLResponse(body, status_code=404, headers=PAGE_HEADERS)


@router.get("/r/{report_id}", include_in_schema=False)
async def short_link(store: StoreDep, report_id: LinkId) -> Response:
    """The link printed on a report (and in its QR code): opens the stored report in the page."""
    if not await report_exists(store, report_id):
        return _not_found_page(report_id)
    return RedirectResponse(f"../#/report/{quote(report_id, safe='')}", status_code=303)


@router.get("/r/{report_id}/print", include_in_schema=False)
async def short_link_print(store: StoreDep, report_id: LinkId) -> Response:
    if not await report_exists(store, report_id):
        return _not_found_page(report_id)
    return RedirectResponse(f"../../#/report/{quote(report_id, safe='')}/print", status_code=303)
