"""The /v1 API: identify photos, fetch, list and revise stored reports, fetch the original photo.

Identification runs off the event loop, in worker processes or threads (gemid.serve.analysis), at most
`inference_concurrency` at once, so a burst of uploads queues instead of oversubscribing the CPU. A report
is stored only after its photo is safely on disk; a refused photo stores nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from anyio import CapacityLimiter, to_thread
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from gemid.errors import EmptyFile, GemidInputError, TooLarge
from gemid.messages import dotted, validation_message
from gemid.report import (
    MAX_REFERENCE,
    Decision,
    ErrorInfo,
    FileError,
    Readings,
    Report,
    clean_file_name,
    clean_reference,
    printable,
)
from gemid.serve.errors import ApiError, error_body
from gemid.serve.images import ImageStore, content_type_for
from gemid.serve.metrics import ServiceMetrics
from gemid.serve.settings import Settings
from gemid.serve.store import ReportPage, ReportStore, RevisionConflict, put_photo

if TYPE_CHECKING:
    from gemid.serve.analysis import Analysis
    from gemid.vision.pipeline import Identifier

log = logging.getLogger(__name__)

READING_FIELDS = tuple(Readings.model_fields)
FORM_FIELDS = ("images", "reference", *READING_FIELDS)


# --- response models ----------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    error: ErrorInfo


class IdentifyResponse(BaseModel):
    reports: list[Report | FileError]


class RevisionsResponse(BaseModel):
    report_id: str
    revisions: list[Report]


# --- dependencies (everything lives on app.state, set by the app factory and its lifespan) -------------
# async although they only read an attribute: FastAPI runs a plain `def` dependency in its thread pool, and
# /v1/identify's six thread round trips cost the server process more CPU than its own code did


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_store(request: Request) -> ReportStore:
    return request.app.state.store


async def get_images(request: Request) -> ImageStore:
    return request.app.state.images


async def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


async def get_limiter(request: Request) -> CapacityLimiter:
    return request.app.state.limiter


def _loaded(thing: Any) -> Any:
    """What start-up sets once the model is loaded; None before that (or after shutdown) is a 503."""
    if thing is None:
        raise ApiError(503, "model_not_loaded", "the model is not loaded yet; try again in a moment")
    return thing


async def get_analysis(request: Request) -> Analysis:
    return _loaded(request.app.state.analysis)


async def get_identifier(request: Request) -> Identifier:
    return _loaded(request.app.state.identifier)


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[ReportStore, Depends(get_store)]
ImagesDep = Annotated[ImageStore, Depends(get_images)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
LimiterDep = Annotated[CapacityLimiter, Depends(get_limiter)]
IdentifierDep = Annotated["Identifier", Depends(get_identifier)]
AnalysisDep = Annotated["Analysis", Depends(get_analysis)]
# report ids are UUIDs; anything else (a NUL, a slash) is not one, and must not reach the database
REPORT_ID = r"^[A-Za-z0-9_-]{1,64}$"
ReportId = Annotated[str, Path(min_length=1, max_length=64, pattern=REPORT_ID,
                               description="the report_id of a stored report")]
# revisions are 32-bit columns (PostgreSQL's INTEGER) and no listing is that long either: larger numbers in a
# query are refused (422), not passed to the database to overflow there (500)
MAX_INT32 = 2**31 - 1


# --- identify: form parsing -----------------------------------------------------------------------------


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


async def _read_form(request: Request, settings: Settings) -> FormData:
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(400, "no_files", "send the photos as multipart/form-data in the field 'images' "
                       f"(got content type '{content_type or 'none'}')")
    try:
        return await request.form(max_files=settings.max_files, max_fields=len(FORM_FIELDS) * 2,
                                  max_part_size=64 * 1024)
    except ApiError:
        raise
    except StarletteHTTPException as exc:  # the multipart parser's refusals
        detail = str(exc.detail)
        if "Too many files" in detail:
            raise ApiError(400, "too_many_files",
                           f"too many photos in one request: at most {settings.max_files}") from exc
        if "Too many fields" in detail:
            raise ApiError(400, "too_many_fields", "too many form fields; the fields are: "
                           + ", ".join(FORM_FIELDS)) from exc
        if "maximum size" in detail:
            raise ApiError(400, "field_too_large", "a text field is over 64 KB") from exc
        raise ApiError(400, "bad_multipart", f"the multipart body could not be read: {detail}") from exc


def _parse_fields(form: FormData, settings: Settings) -> tuple[list[UploadFile], str | None, Readings | None]:
    unknown = sorted({k for k in form if k not in FORM_FIELDS})
    images = form.getlist("images")
    if not images:
        hint = f"; got field(s) {', '.join(repr(k) for k in unknown)}" if unknown else ""
        raise ApiError(400, "no_files", f"no photo received: send one or more files in the field 'images'{hint}")
    if unknown:
        raise ApiError(400, "unknown_field", f"unknown form field(s) {', '.join(repr(k) for k in unknown)}; "
                       f"the fields are: {', '.join(FORM_FIELDS)}")
    if not all(isinstance(f, UploadFile) for f in images):
        raise ApiError(400, "not_a_file", "the field 'images' must carry file uploads, not text")
    if len(images) > settings.max_files:
        raise ApiError(400, "too_many_files", f"too many photos in one request: at most {settings.max_files}")

    texts: dict[str, str] = {}
    for key in ("reference", *READING_FIELDS):
        values = form.getlist(key)
        if len(values) > 1:
            raise ApiError(400, "repeated_field", f"the field '{key}' was sent {len(values)} times; send it once")
        if values:
            if not isinstance(values[0], str):
                raise ApiError(400, "not_text", f"the field '{key}' must be text, not a file")
            texts[key] = values[0].strip()

    try:
        reference = clean_reference(texts.pop("reference", None))
    except GemidInputError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from exc
    given = {k: v for k, v in texts.items() if v != ""}
    try:
        readings = Readings.model_validate(given) if given else None
    except ValidationError as exc:
        message = validation_message(exc, field=lambda loc: dotted(loc, empty="readings"))
        raise ApiError(422, "invalid_readings", f"invalid readings: {message}") from exc
    return [f for f in images if isinstance(f, UploadFile)], reference, readings


async def _read_upload(upload: UploadFile, max_bytes: int) -> bytes:
    """The file's bytes, never more than max_bytes + 1 of them in memory."""
    if upload.size is not None and upload.size > max_bytes:
        raise TooLarge(f"the photo is {_mb(upload.size)}; the limit is {_mb(max_bytes)} per photo")
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TooLarge(f"the photo is over the limit of {_mb(max_bytes)} per photo")
    if not data:
        raise EmptyFile("the file is empty (0 bytes); choose the photo again and re-send it")
    return data


# --- identify: the overall status -----------------------------------------------------------------------


def _overall_status(statuses: list[int | None]) -> int:
    """200 when any photo gave a report; else the refusals' common status, or 400 when they differ."""
    if any(s is None for s in statuses):
        return 200
    distinct = set(statuses)
    return distinct.pop() if len(distinct) == 1 else 400  # type: ignore[return-value]


# --- readings and listing helpers ---------------------------------------------------------------------


def _merge_readings(latest: Report, new: Readings, replace: bool) -> Readings:
    """New readings on top of those already entered (unless replace): a technician adds RI, later SG."""
    previous = latest.tests.reranking.readings if latest.tests and latest.tests.reranking else None
    if replace or previous is None:
        return new
    return previous.model_copy(update={k: v for k, v in new.model_dump().items() if v is not None})


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


def _store_failure(exc: Exception) -> ApiError:
    log.error("could not store reports", exc_info=exc)
    return ApiError(503, "store_unavailable",
                    f"the report could not be saved ({type(exc).__name__}); nothing was recorded, try again")


IDENTIFY_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "required": ["images"],
            "properties": {
                "images": {"type": "array", "items": {"type": "string", "format": "binary"},
                           "description": "one or more photos (JPEG, PNG, WebP, TIFF, HEIC/HEIF, AVIF); "
                                          "repeat the field for a parcel"},
                "reference": {"type": "string", "maxLength": MAX_REFERENCE,
                              "description": "parcel or lot number, kept with each report"},
                **{k: {**{kk: vv for kk, vv in v.items() if kk not in ("anyOf", "default", "title")},
                       **(v["anyOf"][0] if "anyOf" in v else {})}
                   for k, v in Readings.model_json_schema()["properties"].items()},
            },
        }}},
    }
}

_ERRORS = {s: {"model": ErrorBody} for s in (400, 404, 413, 415, 422, 503)}


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["reports"])

    @router.post(
        "/identify", response_model=IdentifyResponse, openapi_extra=IDENTIFY_BODY,
        summary="Identify one or more stone photos",
        responses={s: {"model": IdentifyResponse, "description": "no photo could be used; see each entry"}
                   for s in (400, 413, 415, 422, 503)},
    )
    async def identify(request: Request, settings: SettingsDep, store: StoreDep, images: ImagesDep,
                       identifier: IdentifierDep, analysis: AnalysisDep, metrics: MetricsDep,
                       grade: Annotated[bool, Query(description=(
                           "grade colour and clarity (default); false: a quick species screen of a parcel, "
                           "several times faster, with `colour` and `clarity` left null"))] = True) -> Response:
        """Multipart: `images` (repeated), optional `reference` and readings (the fields of `Readings`:
        ri, ri_high, birefringence, sg, optic, ...). One entry per photo, in order: a report, or
        `{"file", "error": {"code", "message"}}`. 200 when at least one photo gave a report (stored, with
        its photo); otherwise the status that fits the refusals (413 too large, 415 not an image,
        422 corrupt, or stopping its analysis worker twice, 503 analysis workers down, 400 empty or several
        kinds), with the same entries."""
        form = await _read_form(request, settings)
        try:
            uploads, reference, readings = _parse_fields(form, settings)
            if readings is not None and not identifier.capabilities.get("reranking", False):
                raise ApiError(501, "reranking_unavailable",
                               "re-ranking with readings is not installed in this service; send the photo alone")
            out: list[Report | FileError] = []
            statuses: list[int | None] = []
            to_store: list[tuple[Report, str, str]] = []
            for upload in uploads:
                # the reports clean it too (report.FileName); cleaned here as well for the log lines on the way
                name = clean_file_name(upload.filename or None)
                try:
                    data = await _read_upload(upload, settings.max_bytes)
                except GemidInputError as exc:
                    out.append(FileError.from_exception(name, exc))
                    statuses.append(exc.status)
                    continue
                outcome = await analysis.identify(data, filename=name, reference=reference, readings=readings,
                                                  grade=grade)
                entry = outcome.entry
                if isinstance(entry, Report):
                    metrics.inference.observe(outcome.seconds)
                    try:  # the photo is on disk before any report row is committed
                        to_store.append((entry, *await to_thread.run_sync(put_photo, images, entry, data)))
                    except OSError as exc:  # disk full, permissions: a server fault, not the photo's
                        raise _store_failure(exc) from exc
                del data  # a parcel never holds more than one photo in memory
                out.append(entry)
                statuses.append(outcome.status)
        finally:
            await form.close()

        if to_store:
            try:
                await to_thread.run_sync(store.add_reports, to_store)
            except SQLAlchemyError as exc:
                raise _store_failure(exc) from exc
        for e in out:
            if isinstance(e, Report):
                metrics.identifications.labels(e.species.decision).inc()
            else:
                metrics.file_errors.labels(e.error.code).inc()
        # serialised by pydantic's own encoder in one pass (not dict -> json.dumps): less CPU per request
        return Response(IdentifyResponse(reports=out).model_dump_json(), status_code=_overall_status(statuses),
                        media_type="application/json")

    @router.get("/reports", response_model=ReportPage, responses=_ERRORS, summary="List stored reports")
    async def list_reports(
        store: StoreDep,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_INT32)] = 0,
        since: Annotated[str | None, Query(description="ISO date or date-time, inclusive")] = None,
        until: Annotated[str | None, Query(description="ISO date (that whole day included) or date-time")] = None,
        species: Annotated[str | None, Query(max_length=100, description="current top-1 label, any case")] = None,
        decision: Decision | None = None,
        reference: Annotated[str | None, Query(max_length=200, description="substring, any case")] = None,
    ) -> ReportPage:
        """Newest first. Species and decision are those of each report's latest revision."""
        created_from = _parse_when(since, "since", end=False)
        created_to = _parse_when(until, "until", end=True)
        # stored text never holds control characters (gemid.report.printable), so a filter need not
        species, reference = (printable(v) if v is not None else None for v in (species, reference))
        return await to_thread.run_sync(lambda: store.list(
            limit=limit, offset=offset, created_from=created_from, created_to=created_to,
            species=species, decision=decision, reference=reference))

    @router.get("/reports/{report_id}", response_model=Report, responses=_ERRORS, summary="One stored report")
    async def get_report(store: StoreDep, report_id: ReportId,
                         revision: Annotated[int | None, Query(ge=1, le=MAX_INT32)] = None) -> Report:
        """The latest revision, or `?revision=N` (1 is the photo-only report)."""
        report = await to_thread.run_sync(store.get, report_id, revision)
        if report is None:
            if revision is not None and await to_thread.run_sync(store.get, report_id) is not None:
                raise ApiError(404, "revision_not_found", f"report {report_id} has no revision {revision}")
            raise ApiError(404, "report_not_found", f"no report with id {report_id}")
        return report

    @router.get("/reports/{report_id}/revisions", response_model=RevisionsResponse, responses=_ERRORS,
                summary="Every revision of a report, oldest first")
    async def get_revisions(store: StoreDep, report_id: ReportId) -> RevisionsResponse:
        revisions = await to_thread.run_sync(store.revisions, report_id)
        if not revisions:
            raise ApiError(404, "report_not_found", f"no report with id {report_id}")
        return RevisionsResponse(report_id=report_id, revisions=revisions)

    @router.get("/reports/{report_id}/image", response_class=FileResponse, responses=_ERRORS,
                summary="The original photo, byte for byte")
    async def get_image(store: StoreDep, images: ImagesDep, report_id: ReportId) -> FileResponse:
        found = await to_thread.run_sync(store.image_of, report_id)
        if found is None:
            raise ApiError(404, "report_not_found", f"no report with id {report_id}")
        sha, ext, _name = found
        path = images.get(sha, ext)
        if path is None:
            log.error("report %s: photo %s.%s missing from %s", report_id, sha, ext, images.root)
            raise ApiError(404, "image_missing", f"the photo of report {report_id} is missing from the store")
        return FileResponse(path, media_type=content_type_for(ext), filename=f"{report_id}.{ext}",
                            content_disposition_type="inline",
                            headers={"ETag": f'"{sha}"', "Cache-Control": "private, max-age=31536000, immutable",
                                     "X-Content-Type-Options": "nosniff"})

    @router.post("/reports/{report_id}/readings", response_model=Report, status_code=201, responses=_ERRORS,
                 summary="Add readings: a new revision, re-ranked")
    async def add_readings(store: StoreDep, identifier: IdentifierDep, limiter: LimiterDep, report_id: ReportId,
                           readings: Readings,
                           replace: Annotated[bool, Query(description="forget earlier readings")] = False,
                           ) -> JSONResponse:
        """Stores revision N+1 with the photo's ranking combined with the readings (merged with those
        entered before unless `replace`). Earlier revisions stay as they were."""
        if readings.is_empty():
            raise ApiError(422, "no_readings", f"no readings were given (any of: {', '.join(READING_FIELDS)})")
        if not identifier.capabilities.get("reranking", False):
            raise ApiError(501, "reranking_unavailable", "re-ranking with readings is not installed in this service")
        for _attempt in range(5):
            latest = await to_thread.run_sync(store.get, report_id)
            if latest is None:
                raise ApiError(404, "report_not_found", f"no report with id {report_id}")
            merged = _merge_readings(latest, readings, replace)
            try:
                new = await to_thread.run_sync(identifier.add_readings, latest, merged, limiter=limiter)
            except GemidInputError as exc:
                raise ApiError(exc.status, exc.code, exc.message) from exc
            new = new.model_copy(update={"report_id": latest.report_id, "revision": latest.revision + 1})
            try:
                await to_thread.run_sync(store.add_revision, new)
            except RevisionConflict:
                continue  # someone added readings meanwhile: redo on top of theirs
            except SQLAlchemyError as exc:
                raise _store_failure(exc) from exc
            return JSONResponse(new.model_dump(mode="json"), status_code=201,
                                headers={"Location": f"/v1/reports/{report_id}?revision={new.revision}"})
        raise ApiError(409, "conflict", "the report kept changing while the readings were added; try again")

    return router


__all__ = ["build_router", "error_body", "IdentifyResponse", "RevisionsResponse"]
