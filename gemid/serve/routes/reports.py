"""The stored reports, /v1/reports: list and fetch them, every revision, the original photo, a display-ready
preview of it, the QR code of the report's verification link, and readings that add a re-ranked revision.

Revisions are append-only (gemid.serve.store): readings never overwrite a report, they add revision N+1.
The preview and the QR code are part of the API, not only of the web page: other clients print reports too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import quote

from anyio import CapacityLimiter, to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from gemid.errors import GemidInputError
from gemid.messages import ISO_WHEN, dotted, validation_message
from gemid.report import ConclusionDecision, Readings, Report, no_readings, printable, readings_text
from gemid.serve.accounts import Principal
from gemid.serve.deps import (
    MAX_INT32,
    IdentifierDep,
    ImagesDep,
    LimiterDep,
    PrincipalDep,
    ReportId,
    SettingsDep,
    StoreDep,
    issued_by,
    report_exists,
)
from gemid.serve.errors import ERROR_RESPONSES, ApiError, error_responses, store_failure
from gemid.serve.images import ImageStore, atomic_write, content_type_for
from gemid.serve.settings import Settings
from gemid.serve.store import ReportPage, ReportStore, RevisionConflict, served

if TYPE_CHECKING:
    from gemid.vision.pipeline import Identifier

log = logging.getLogger(__name__)

PREVIEW_SIDES = (256, 512, 1024, 2048)  # a few fixed sizes, so the disk cache stays small
IMMUTABLE = "private, max-age=31536000, immutable"  # a photo and its previews never change under their hash

router = APIRouter(prefix="/v1/reports", tags=["reports"])


class RevisionsResponse(BaseModel):
    report_id: str
    revisions: list[Report]



_READING_VALUES = {name: next(b for b in spec["anyOf"] if b.get("type") != "null")  # each reading, not null
                   for name, spec in Readings.model_json_schema()["properties"].items()}
# the rules of POST readings that the Readings model alone does not show: at least one reading (a schema rule),
# a high RI only with the low one and not below it, and no OTL beside an RI (said in words: JSON Schema's
# if/then cannot compare two fields, and fuzzers stumble on it); the server refuses them with 422
READINGS_BODY = {"requestBody": {"required": True, "description": (
    "at least one reading; `ri_high` only together with `ri`, and not below it; `ri_otl` not with `ri` "
    "(else 422)"),
    "content": {"application/json": {"schema": {
    "allOf": [
        {"$ref": "#/components/schemas/Readings"},
        {"anyOf": [{"required": [name], "properties": {name: value}} for name, value in _READING_VALUES.items()],
         "description": "at least one reading"},
    ]}}}}}


def _not_found(report_id: str) -> ApiError:
    return ApiError(404, "report_not_found", f"no report with id {report_id}")


def _parse_when(value: str | None, name: str, *, end: bool) -> datetime | None:
    """ISO date or date-time → aware UTC bound. A bare date as `until` includes that whole day."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            at = datetime(d.year, d.month, d.day, tzinfo=UTC)
            if end:
                return at + timedelta(days=1) if d < date.max else None  # the last day there is: no bound
            return at
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ApiError(422, "invalid_request",
                       f"{name}: '{value}' is not an ISO date (2025-11-22) or date-time (2025-11-22T10:00:00Z)") from exc
    try:
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00+05:00 lies before year 1 in UTC
        raise ApiError(422, "invalid_request", f"{name}: '{value}' is outside years 1-9999 in UTC") from exc


REFRACTOMETER_EDGES = ("ri", "ri_high", "ri_otl")  # one look at the refractometer: replaced together


def _merge_readings(latest: Report, new: Readings, replace: bool) -> Readings:
    """New readings on top of those already entered (unless replace): a technician adds RI, later SG. New
    refractometer edges replace the old ones as a set (an OTL entered after an RI of 1.76 is a re-reading, not
    a second edge), and the merged readings pass the same checks as new ones: a new RI above an old high edge,
    or an old birefringence beside new edges, is refused, not stored."""
    previous = latest.tests.reranking.readings if latest.tests and latest.tests.reranking else None
    if replace or previous is None:
        return new
    given = new.model_dump(exclude_none=True)
    old = previous.model_dump(exclude_none=True)
    if any(k in given for k in REFRACTOMETER_EDGES):
        old = {k: v for k, v in old.items() if k not in REFRACTOMETER_EDGES}
    try:
        return Readings.model_validate({**old, **given})
    except ValidationError as exc:
        message = validation_message(exc, field=lambda loc: dotted(loc, empty="readings"))
        raise ApiError(422, "invalid_readings", f"with the readings entered before ({readings_text(latest)}): "
                       f"{message}; correct the new reading, or send replace=true to start again") from exc


# --- list and fetch -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportFilters:
    """History's filters, shared by the list and its CSV export (routes/parcels.py)."""

    created_from: datetime | None
    created_to: datetime | None
    species: str | None
    decision: ConclusionDecision | None
    reference: str | None

    def query(self) -> dict:
        return {"created_from": self.created_from, "created_to": self.created_to, "species": self.species,
                "decision": self.decision, "reference": self.reference}


def report_filters(
    since: Annotated[str | None, Query(pattern=ISO_WHEN, description="ISO date or date-time, inclusive")] = None,
    until: Annotated[str | None, Query(pattern=ISO_WHEN,
                                       description="ISO date (that whole day included) or date-time")] = None,
    species: Annotated[str | None, Query(max_length=100, description="current top-1 label, any case")] = None,
    decision: ConclusionDecision | None = None,
    reference: Annotated[str | None, Query(max_length=200, description="substring, any case")] = None,
) -> ReportFilters:
    # stored text never holds control characters (gemid.report.printable), so a filter need not
    species, reference = (printable(v) if v is not None else None for v in (species, reference))
    return ReportFilters(_parse_when(since, "since", end=False), _parse_when(until, "until", end=True),
                         species, decision, reference)


FiltersDep = Annotated[ReportFilters, Depends(report_filters)]


@router.get("", response_model=ReportPage, responses=error_responses(422, 503), summary="List stored reports")
async def list_reports(
    store: StoreDep,
    principal: PrincipalDep,
    filters: FiltersDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_INT32)] = 0,
) -> ReportPage:
    """Newest first. Species and decision are those of each report's latest revision. A technician sees only
    the reports of its own desk."""
    desk = (principal.desk,) if principal is not None and principal.desk_only else None
    return await to_thread.run_sync(lambda: store.list(limit=limit, offset=offset, desk=desk, **filters.query()))


@router.get("/{report_id}", response_model=Report, responses=ERROR_RESPONSES, summary="One stored report")
async def get_report(store: StoreDep, report_id: ReportId,
                     revision: Annotated[int | None, Query(ge=1, le=MAX_INT32)] = None) -> JSONResponse:
    """The latest revision, or `?revision=N` (1 is the photo-only report). A signed revision is served exactly
    as stored and signed (`gemid verify` checks it offline)."""
    body = await to_thread.run_sync(store.get_body, report_id, revision)
    if body is None:
        if revision is not None and await to_thread.run_sync(store.get_body, report_id) is not None:
            raise ApiError(404, "revision_not_found", f"report {report_id} has no revision {revision}")
        raise _not_found(report_id)
    return JSONResponse(served(body))


@router.get("/{report_id}/revisions", response_model=RevisionsResponse, responses=ERROR_RESPONSES,
            summary="Every revision of a report, oldest first")
async def get_revisions(store: StoreDep, report_id: ReportId) -> JSONResponse:
    """Each signed revision's `previous_signature` is the one before's `signature.value`: give this whole
    response to `gemid verify` to check the chain."""
    bodies = await to_thread.run_sync(store.revision_bodies, report_id)
    if not bodies:
        raise _not_found(report_id)
    return JSONResponse({"report_id": report_id, "revisions": [served(b) for b in bodies]})


# --- the photo ------------------------------------------------------------------------------------------


async def _stored_photo(store: ReportStore, images: ImageStore, report_id: str) -> tuple[str, str, Path]:
    """(sha256, extension, path) of the report's photo; 404 for an unknown report or a lost photo."""
    found = await to_thread.run_sync(store.image_of, report_id)
    if found is None:
        raise _not_found(report_id)
    sha, ext, _name = found
    path = images.get(sha, ext)
    if path is None:
        log.error("report %s: photo %s.%s missing from %s", report_id, sha, ext, images.root)
        raise ApiError(404, "image_missing", f"the photo of report {report_id} is missing from the store")
    return sha, ext, path


@router.get("/{report_id}/image", response_class=FileResponse, responses=ERROR_RESPONSES,
            summary="The original photo, byte for byte")
async def get_image(store: StoreDep, images: ImagesDep, report_id: ReportId) -> FileResponse:
    sha, ext, path = await _stored_photo(store, images, report_id)
    return FileResponse(path, media_type=content_type_for(ext), filename=f"{report_id}.{ext}",
                        content_disposition_type="inline",
                        headers={"ETag": f'"{sha}"', "Cache-Control": IMMUTABLE, "X-Content-Type-Options": "nosniff"})


# --- readings -------------------------------------------------------------------------------------------


@router.post("/{report_id}/readings", response_model=Report, status_code=201,
             responses={**error_responses(400, 404, 408, 409, 413, 422, 501, 503), 200: {
                 "model": Report, "description": "the readings are those of the latest revision: it, unchanged"}},
             openapi_extra=READINGS_BODY,
             summary="Add readings: a new revision, re-ranked")
async def add_readings(store: StoreDep, identifier: IdentifierDep, limiter: LimiterDep, settings: SettingsDep,
                       principal: PrincipalDep, report_id: ReportId,
                       readings: Readings,
                       replace: Annotated[bool, Query(description="forget earlier readings")] = False,
                       ) -> JSONResponse:
    """Stores revision N+1 with the photo's ranking combined with the readings (merged with those
    entered before unless `replace`). Earlier revisions stay as they were."""
    if readings.is_empty():
        exc = no_readings()
        raise ApiError(exc.status, exc.code, exc.message)
    if not identifier.capabilities.get("reranking", False):
        raise ApiError(501, "reranking_unavailable", "re-ranking with readings is not installed in this service")
    new, made = await revise_with_readings(store, identifier, limiter, settings, principal, report_id, readings,
                                           replace)
    return JSONResponse(new.model_dump(mode="json"), status_code=201 if made else 200,
                        headers={"Location": f"/v1/reports/{report_id}?revision={new.revision}"})


async def revise_with_readings(store: ReportStore, identifier: Identifier, limiter: CapacityLimiter,
                               settings: Settings, principal: Principal | None, report_id: str, readings: Readings,
                               replace: bool = False) -> tuple[Report, bool]:
    """Store revision N+1 of the report, re-ranked with the readings (merged with those entered before unless
    `replace`), and return it and True: POST readings, and readings sent again with a photo already stored.
    Readings that merge into exactly those of the latest revision change nothing: that revision and False (an
    outside try sent the same SG 52 times, used up the revision cap and left the report unconfirmable)."""
    for _attempt in range(5):
        latest = await to_thread.run_sync(store.get, report_id)
        if latest is None:
            raise _not_found(report_id)
        if latest.revision >= settings.max_revisions:
            raise ApiError(409, "too_many_revisions",
                           f"report {report_id} has {latest.revision} revisions, the most one report may have "
                           f"(GEMID_MAX_REVISIONS); identify the stone again for a new report")
        merged = _merge_readings(latest, readings, replace)
        if latest.tests is not None and latest.tests.reranking is not None and latest.tests.reranking.readings == merged:
            return latest, False
        try:
            new = await to_thread.run_sync(identifier.add_readings, latest, merged, limiter=limiter)
        except GemidInputError as exc:
            raise ApiError(exc.status, exc.code, exc.message) from exc
        new = new.model_copy(update={"issued_by": issued_by(principal)})
        try:
            await to_thread.run_sync(store.add_revision, new)
        except RevisionConflict:
            continue  # someone added readings meanwhile: redo on top of theirs
        except SQLAlchemyError as exc:
            raise store_failure(exc) from exc
        return new, True
    raise ApiError(409, "conflict", "the report kept changing while the readings were added; try again")


# --- the printed link -----------------------------------------------------------------------------------


def verification_url(request: Request, settings: Settings, code: str) -> str:
    """The link printed on a report: its public verification page `/verify/{code}` (gemid.serve.routes.verify),
    under GEMID_PUBLIC_URL when set (what other devices can reach), else under this request's own base. The
    code, not the report id, is in it: anyone holding the printed report may check it, signed out, and the
    code opens that report's summary only."""
    base = settings.public_url or str(request.base_url)
    base = base if base.endswith("/") else base + "/"
    return f"{base}verify/{quote(code, safe='')}"


def qr_svg(text: str) -> str:
    """A QR code (error correction M, 4-module quiet zone) as a standalone SVG on a white background."""
    import qrcode
    import qrcode.image.svg

    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4,
                       image_factory=qrcode.image.svg.SvgPathFillImage)
    qr.add_data(text)
    qr.make(fit=True)
    return qr.make_image().to_string(encoding="unicode")


@router.get(
    "/{report_id}/qr.svg", summary="QR code of the report's verification link",
    response_class=Response, responses={200: {"content": {"image/svg+xml": {}}}, **ERROR_RESPONSES},
)
async def report_qr(request: Request, store: StoreDep, settings: SettingsDep, report_id: ReportId) -> Response:
    """An SVG QR code that encodes `{GEMID_PUBLIC_URL or this server}/verify/{code}`, the report's public
    verification page (the URL is also in the `X-Verification-URL` header)."""
    code = await to_thread.run_sync(store.verify_code, report_id) if await report_exists(store, report_id) else None
    if code is None:
        raise _not_found(report_id)
    url = verification_url(request, settings, code)
    svg = await to_thread.run_sync(qr_svg, url)
    return Response(svg, media_type="image/svg+xml", headers={
        "Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff", "X-Verification-URL": url,
    })


# --- the display preview --------------------------------------------------------------------------------


def preview_path(settings: Settings, sha: str, side: int) -> Path:
    """Where the display preview of the photo `sha` at `side` pixels is cached (the parcel manifest's
    thumbnails are cut from the same file)."""
    return Path(settings.data_dir) / "previews" / sha[:2] / f"{sha}-{side}.jpg"


def render_preview(settings: Settings, sha: str, source: Path, side: int) -> Path:
    """The cached preview of the photo, made now if missing (ValueError: the stored photo no longer decodes)."""
    target = preview_path(settings, sha, side)
    if not target.is_file():
        _render_preview(source, target, side, max(settings.max_bytes, source.stat().st_size), settings.max_pixels)
    return target


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
    "/{report_id}/preview.jpg", summary="The photo as a display-ready JPEG",
    response_class=FileResponse, responses={200: {"content": {"image/jpeg": {}}},
                                            304: {"description": "not modified (If-None-Match)"}, **ERROR_RESPONSES},
)
async def report_preview(
    request: Request, store: StoreDep, images: ImagesDep, settings: SettingsDep, limiter: LimiterDep,
    report_id: ReportId,
    size: Annotated[int, Query(ge=64, le=4096, description="longest side in pixels (rounded up to 256, 512, 1024 or 2048)")] = 1024,
) -> Response:
    """The stored photo decoded (EXIF rotation applied, any format) and shrunk, in the same orientation as
    the report's pixel coordinates, so outlines and inclusion boxes overlay it exactly."""
    sha, _ext, source = await _stored_photo(store, images, report_id)
    side = next((s for s in PREVIEW_SIDES if s >= size), PREVIEW_SIDES[-1])
    target = preview_path(settings, sha, side)
    if not target.is_file():
        try:
            await to_thread.run_sync(render_preview, settings, sha, source, side, limiter=limiter)
        except ValueError as exc:  # GemidInputError and friends: the stored photo no longer decodes
            raise ApiError(422, "preview_failed", f"the stored photo could not be decoded for display: {exc}") from exc
    etag = f'"{sha[:32]}-{side}"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE, "X-Content-Type-Options": "nosniff"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return FileResponse(target, media_type="image/jpeg", headers=headers)
