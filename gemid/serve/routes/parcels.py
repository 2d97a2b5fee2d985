"""A parcel, /v1/parcels/{reference}: every stone stored under one reference (lot number), with a summary row
per stone; the CSV exports of a parcel and of History (/v1/reports.csv, filtered as the list is); and the
parcel's manifest PDF (/v1/parcels/{reference}.pdf, gemid.serve.manifest) in English or Urdu.

A parcel is not a table of its own: it is the reports stored under exactly that reference, photo by photo in
the order they were stored, each photo's stones in reading order (gemid.serve.store). Its rows, and the
CSV's columns, come from `gemid.report.table_row`/`ROW_FIELDS`, the one owner of a report's table row, so the
CLI's CSV, the parcel table and these exports say the same thing.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import quote

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from gemid.errors import GemidInputError
from gemid.report import DECISIONS, ROW_FIELDS, Report, clean_reference, table_row
from gemid.report_csv import rows_csv
from gemid.serve.accounts import Principal
from gemid.serve.catalogue import language_of
from gemid.serve.deps import ImagesDep, LimiterDep, PrincipalDep, SettingsDep, StoreDep, desk_scope
from gemid.serve.errors import ApiError, error_responses
from gemid.serve.images import ImageStore
from gemid.serve.responses import attachment
from gemid.serve.routes.reports import FiltersDep, render_preview, verification_url
from gemid.serve.settings import Settings
from gemid.serve.store import ReportStore

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

MAX_PARCEL = 2000  # stones in one parcel answer: a parcel holds 10-50, a day's lot a few hundred
MAX_EXPORT = 20_000  # rows in one History CSV: narrow the dates for more
MAX_MANIFEST = 500  # stones in one manifest PDF (25 pages); a lot past that is printed in parts
THUMB_SOURCE = 1024  # the display preview the thumbnails are cut from (cached beside the page's)

router = APIRouter(prefix="/v1", tags=["parcels"])



class ParcelResponse(BaseModel):
    reference: str
    photos: int = Field(description="distinct photos (by sha256)")
    stones: int = Field(description="stone reports in the parcel")
    counts: dict[str, int] = Field(description="stones per conclusion decision (identified, uncertain, refer, "
                                               "rejected)")
    columns: list[str] = Field(description="the keys of each row, in order (gemid.report.ROW_FIELDS)")
    rows: list[dict[str, str]] = Field(description="one summary row per stone, in the parcel's order")
    reports: list[Report] = Field(description="each stone's full report (latest revision), in the same order")


def _reference(raw: str) -> str:
    try:
        reference = clean_reference(raw)
    except GemidInputError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from exc
    if reference is None:
        raise ApiError(422, "bad_reference", "the reference is empty")
    return reference


async def _parcel(store: StoreDep, raw: str, principal: Principal | None) -> tuple[str, list[Report]]:
    reference = _reference(raw)
    desk = desk_scope(principal)
    reports = await to_thread.run_sync(lambda: store.parcel(reference, limit=MAX_PARCEL, desk=desk))
    if not reports:
        raise ApiError(404, "parcel_not_found", f"no report is stored under the reference '{reference}'")
    return reference, reports


# the CSV route first: /parcels/{reference}.csv would otherwise be read as a reference ending in ".csv"
@router.get("/parcels/{reference:path}.csv", response_class=Response, summary="A parcel as CSV",
            responses={200: {"content": {"text/csv": {}}, "description": "one row per stone (ROW_FIELDS)"},
                       **error_responses(404, 422, 503)})
async def parcel_csv(store: StoreDep, principal: PrincipalDep, reference: str) -> Response:
    """The parcel's rows as CSV, one per stone, the columns of `GET /v1/parcels/{reference}`."""
    reference, reports = await _parcel(store, reference, principal)
    return attachment(rows_csv(reports), f"parcel-{reference}")


def _preview_rgb(store: ReportStore, images: ImageStore, settings: Settings, report_id: str, sha: str,
                 reference: str) -> np.ndarray | None:
    """The photo's cached display preview (made now if missing), decoded; None when the photo is lost or no
    longer decodes: its stones' cards are printed without a picture, and the log says why."""
    import cv2

    found = store.image_of(report_id)
    source = images.get(found[0], found[1]) if found else None
    if source is None:
        log.error("parcel %s: photo %s missing from the store", reference, sha)
        return None
    try:
        bgr = cv2.imread(str(render_preview(settings, sha, source, THUMB_SOURCE)), cv2.IMREAD_COLOR)
    except ValueError as exc:
        log.error("parcel %s: photo %s does not decode: %s", reference, sha, exc)
        return None
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _manifest(store: ReportStore, images: ImageStore, settings: Settings, reports: list[Report], reference: str,
              lang: str, desk: str | None, verify_base: str) -> bytes:
    """The manifest PDF (in a worker thread): each photo's preview decoded once, each stone's thumbnail cut
    from it, the verification codes in one query."""
    from gemid.serve import manifest

    codes = store.verify_codes([r.report_id for r in reports])
    current: tuple[str, np.ndarray | None] = ("", None)  # one photo decoded at a time: its stones are together
    cards = []
    for r in reports:
        sha = r.image.sha256
        if sha != current[0]:
            current = (sha, _preview_rgb(store, images, settings, r.report_id, sha, reference))
        rgb = current[1]
        code = codes.get(r.report_id)
        cards.append(manifest.Card(report=r, thumbnail=None if rgb is None else manifest.thumbnail(rgb, r),
                                   code=code, url=verify_base + quote(code, safe="") if code else None))
    return manifest.build_pdf(reference, cards, lang=lang, desk=desk, printed_at=datetime.now(UTC),
                              verify_base=verify_base)


@router.get("/parcels/{reference:path}.pdf", response_class=Response, summary="A parcel's manifest as PDF",
            responses={200: {"content": {"application/pdf": {}},
                             "description": "20 stones to an A4 page: thumbnails, conclusions, grades, next tests, "
                                            "photo hashes, model, verification codes and QR codes"},
                       **error_responses(404, 422, 503)})
async def parcel_pdf(request: Request, store: StoreDep, images: ImagesDep, settings: SettingsDep,
                     limiter: LimiterDep, principal: PrincipalDep, reference: str,
                     lang: Annotated[Literal["en", "ur"] | None, Query(
                         description="en or ur (Urdu, right to left, in Nastaliq); default: the first of "
                                     "Accept-Language that is one of them, else en")] = None) -> Response:
    """The parcel's manifest: each stone numbered with its thumbnail, conclusion, colour and clarity (or why
    not graded), next test, photo SHA-256, model version and verification code, the header (reference, desk,
    date, counts by conclusion) and the disclaimer on every page. Up to 500 stones."""
    from gemid.serve.manifest import FontMissing

    reference, reports = await _parcel(store, reference, principal)
    if len(reports) > MAX_MANIFEST:
        raise ApiError(422, "parcel_too_large", f"the parcel '{reference}' has {len(reports)} stones; a manifest "
                       f"holds at most {MAX_MANIFEST}: print it from History by date instead")
    language = language_of(lang, request.headers.get("accept-language", ""))
    desks = sorted({r.issued_by.desk for r in reports if r.issued_by and r.issued_by.desk})
    desk = ", ".join(desks) or (principal.desk if principal else None)
    verify_base = verification_url(request, settings, "")
    try:
        body = await to_thread.run_sync(_manifest, store, images, settings, reports, reference, language, desk,
                                        verify_base, limiter=limiter)
    except FontMissing as exc:
        raise ApiError(503, "font_missing", str(exc)) from exc
    return attachment(body, f"parcel-{reference}", "application/pdf", "pdf")


@router.get("/parcels/{reference:path}", response_model=ParcelResponse, responses=error_responses(404, 422, 503),
            summary="A parcel: every stone stored under one reference")
async def get_parcel(store: StoreDep, principal: PrincipalDep, reference: str) -> ParcelResponse:
    """Every report stored under exactly this reference (URL-encode a `/` in it), photo by photo, each photo's
    stones in reading order; a summary row per stone and the counts per conclusion on top."""
    reference, reports = await _parcel(store, reference, principal)
    decisions = Counter(r.decision for r in reports)
    return ParcelResponse(
        reference=reference, photos=len({r.image.sha256 for r in reports}), stones=len(reports),
        counts={d: decisions.get(d, 0) for d in DECISIONS},
        columns=list(ROW_FIELDS), rows=[table_row(r) for r in reports], reports=reports)


@router.get("/reports.csv", response_class=Response, summary="Stored reports as CSV (History's filters)",
            responses={200: {"content": {"text/csv": {}}, "description": "one row per report (ROW_FIELDS)"},
                       **error_responses(422, 503)})
async def reports_csv(store: StoreDep, principal: PrincipalDep, filters: FiltersDep) -> Response:
    """The reports `GET /v1/reports` lists with the same filters, newest first, all of them (up to 20,000: narrow
    the dates for more), one CSV row each with the columns of the parcel table."""
    reports = await to_thread.run_sync(lambda: store.latest(limit=MAX_EXPORT, desk=desk_scope(principal),
                                                            **filters.query()))
    return attachment(rows_csv(reports), "gemid-reports")
