"""POST /v1/identify: photos in, one report per stone (or a refusal per photo) out, stored with the photo.

A tray or parcel photo gives every stone its own report (`Identifier.identify_stones`), all sharing the
photo, stored once under its sha256. With a reference, the same photo sent again under the same reference is
not analysed or stored twice: the reports already stored are returned with a `duplicate` notice
(`?force=true` stores it anyway); without a reference every upload is a new report, as a desk re-photographing
a stone expects.

Identification runs off the event loop, in worker processes or threads (gemid.serve.analysis), at most
`inference_concurrency` at once, so a burst of uploads queues instead of oversubscribing the CPU. A report
is stored only after its photo is safely on disk; a refused photo stores nothing.

The multipart form is read by hand rather than declared as FastAPI `File`/`Form` parameters: each refusal
(no photo, an unknown or repeated field, a file where text belongs) then gets its own code and message
naming the fields, and a parcel of photos is read one upload at a time.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException

from gemid.errors import EmptyFile, GemidInputError, TooLarge
from gemid.messages import decimal_point, dotted, validation_message
from gemid.report import MAX_REFERENCE, FileError, Readings, Report, clean_file_name, clean_reference
from gemid.serve.deps import (
    AnalysisDep,
    IdentifierDep,
    ImagesDep,
    LimiterDep,
    MetricsDep,
    PrincipalDep,
    SettingsDep,
    StoreDep,
    desk_scope,
    issued_by,
)
from gemid.serve.errors import ApiError, error_responses, size_text, store_failure
from gemid.serve.images import ImageStore, sha256_file
from gemid.serve.routes.reports import revise_with_readings
from gemid.serve.settings import Settings
from gemid.serve.store import ReportStore, put_photo
from gemid.serve.uploads import SpooledUpload, UploadParser, discard
from gemid.vision.coin import COIN_MM, coin_diameter
from gemid.vision.pipeline import readings_for_one_stone
from gemid.vision.reference import TWO_SCALES

READING_FIELDS = tuple(Readings.model_fields)
NUMBER_FIELDS = {"coin_mm", *(k for k, f in Readings.model_fields.items() if float in get_args(f.annotation))}
FORM_FIELDS = ("images", "reference", "coin_mm", "ruler", *READING_FIELDS)
MAX_TEXT_FIELD = 64 * 1024  # a reference or a reading, never a photo

router = APIRouter(prefix="/v1", tags=["reports"])


class Notice(BaseModel):
    """Something the technician should know about one photo that is not a refusal."""

    code: Literal["duplicate"] = Field(description=(
        "duplicate: this photo is already stored under this reference; its stored reports are returned (with "
        "readings sent with it, its report's new revision re-ranked with them)"))
    file: str | None
    message: str
    report_ids: list[str] = Field(default_factory=list, description="the reports it refers to")


class IdentifyResponse(BaseModel):
    reports: list[Report | FileError] = Field(description=(
        "one report per stone found (a tray photo gives several, in reading order), or one refusal per photo; "
        "photos in the order sent"))
    notices: list[Notice] = Field(default_factory=list)


def _duplicate(name: str | None, reports: list[Report], reference: str, revised: bool = False) -> Notice:
    n = len(reports)
    if revised:  # readings came with it: they made a new revision of its one report
        return Notice(code="duplicate", file=name, report_ids=[reports[0].report_id], message=(
            f"this photo is already stored under reference '{reference}': the readings sent with it were added "
            f"to its report as revision {reports[0].revision}, nothing new was stored"))
    return Notice(code="duplicate", file=name, report_ids=[r.report_id for r in reports], message=(
        f"this photo is already stored under reference '{reference}' ({n} report{'s' if n > 1 else ''}); "
        "the stored report" + ("s are" if n > 1 else " is") + " shown, nothing new was stored. To store it "
        "again, send it with force=true (`gemid identify --force`)"))


async def _read_form(request: Request, settings: Settings) -> tuple[FormData, list[SpooledUpload]]:
    """The form, its photos spooled to named files under the data folder (gemid.serve.uploads)."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(400, "no_files", "send the photos as multipart/form-data in the field 'images' "
                       f"(got content type '{content_type or 'none'}')")
    parser = UploadParser(request.headers, request.stream(), spool_dir=settings.spool_dir,
                          max_bytes=settings.max_bytes, max_files=settings.max_files,
                          max_fields=len(FORM_FIELDS) * 2, max_part_size=MAX_TEXT_FIELD)
    try:
        return await parser.parse(), parser.spooled
    except MultiPartException as exc:  # the multipart parser's refusals
        detail = str(exc.message)
        if "Too many files" in detail:
            raise ApiError(400, "too_many_files",
                           f"too many photos in one request: at most {settings.max_files}") from exc
        if "Too many fields" in detail:
            raise ApiError(400, "too_many_fields", "too many form fields; the fields are: "
                           + ", ".join(FORM_FIELDS)) from exc
        if "maximum size" in detail:
            raise ApiError(400, "field_too_large", "a text field is over 64 KB") from exc
        raise ApiError(400, "bad_multipart", f"the multipart body could not be read: {detail}") from exc


def _parse_fields(form: FormData, settings: Settings
                  ) -> tuple[list[SpooledUpload], str | None, Readings | None, float | None, bool]:
    unknown = sorted({k for k in form if k not in FORM_FIELDS})
    images = form.getlist("images")
    if not images:
        hint = f"; got field(s) {', '.join(repr(k) for k in unknown)}" if unknown else ""
        raise ApiError(400, "no_files", f"no photo received: send one or more files in the field 'images'{hint}")
    if unknown:
        raise ApiError(400, "unknown_field", f"unknown form field(s) {', '.join(repr(k) for k in unknown)}; "
                       f"the fields are: {', '.join(FORM_FIELDS)}")
    if not all(isinstance(f, SpooledUpload) for f in images):
        raise ApiError(400, "not_a_file", "the field 'images' must carry file uploads, not text")
    if len(images) > settings.max_files:
        raise ApiError(400, "too_many_files", f"too many photos in one request: at most {settings.max_files}")

    texts: dict[str, str] = {}
    for key in ("reference", "coin_mm", "ruler", *READING_FIELDS):
        values = form.getlist(key)
        if len(values) > 1:
            raise ApiError(400, "repeated_field", f"the field '{key}' was sent {len(values)} times; send it once")
        if values:
            if not isinstance(values[0], str):
                raise ApiError(400, "not_text", f"the field '{key}' must be text, not a file")
            texts[key] = decimal_point(values[0].strip()) if key in NUMBER_FIELDS else values[0].strip()

    try:
        reference = clean_reference(texts.pop("reference", None))
    except GemidInputError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from exc
    coin_mm = _coin_mm(texts.pop("coin_mm", ""))
    ruler = _ruler(texts.pop("ruler", ""))
    if coin_mm is not None and ruler:
        raise ApiError(422, "invalid_scale", TWO_SCALES)
    given = {k: v for k, v in texts.items() if v != ""}
    try:  # form fields are text: parsed as text ("1.76", "true"), where a JSON body must send numbers
        readings = Readings.model_validate_strings(given) if given else None
    except ValidationError as exc:
        message = validation_message(exc, field=lambda loc: dotted(loc, empty="readings"))
        raise ApiError(422, "invalid_readings", f"invalid readings: {message}") from exc
    return [f for f in images if isinstance(f, SpooledUpload)], reference, readings, coin_mm, ruler


def _coin_mm(text: str) -> float | None:
    """The diameter of a coin laid beside the stones as their scale (blank: none)."""
    if not text:
        return None
    try:
        return coin_diameter(text)
    except GemidInputError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from exc


def _ruler(text: str) -> bool:
    """Whether a millimetre ruler lies beside the stones as their scale ("true", "1", "on" as a page's
    checkbox sends it; blank, "false" or "0": none)."""
    value = text.lower()
    if value in ("", "false", "0", "off"):
        return False
    if value in ("true", "1", "on"):
        return True
    raise ApiError(422, "invalid_scale", f"ruler: true or false, not {text[:20]!r}")


def _checked_upload(upload: SpooledUpload, max_bytes: int, images: ImageStore) -> Path:
    """Where the photo was spooled, once its size is known to be acceptable (and to fit the store's quota)."""
    if upload.oversize or upload.received > max_bytes:
        raise TooLarge(f"the photo is {size_text(upload.received)}; the limit is {size_text(max_bytes)} per photo")
    if upload.received == 0:
        raise EmptyFile("the file is empty (0 bytes); choose the photo again and re-send it")
    images.check_room(upload.received, upload.path)
    return upload.path


def _stored_duplicates(store: ReportStore, sha: str, reference: str, desk: tuple[str | None] | None) -> list[Report]:
    try:
        return store.duplicates(sha, reference, desk)
    except SQLAlchemyError as exc:
        raise store_failure(exc) from exc


def _overall_status(statuses: list[int | None]) -> int:
    """200 when any photo gave a report; else the refusals' common status, or 400 when they differ."""
    if any(s is None for s in statuses):
        return 200
    distinct = set(statuses)
    return distinct.pop() if len(distinct) == 1 else 400  # type: ignore[return-value]


def _shadow(request: Request, images: ImageStore, stored: list[tuple[Report, str, str]]) -> None:
    """Hand the stored photos to the shadow model, if one runs (gemid.serve.shadow): queued, never awaited;
    one task per photo, with its stones' reports in reading order."""
    shadow = getattr(request.app.state, "shadow", None)
    if shadow is None:
        return
    photos: dict[tuple[str, str], list[Report]] = {}
    for report, sha, ext in stored:
        photos.setdefault((sha, ext), []).append(report)
    for (sha, ext), reports in photos.items():
        served = [(r.report_id, r.species.top[0].label if r.species.top else "") for r in reports]
        shadow.submit(served, reports[0].created_at, images.path_for(sha, ext))


IDENTIFY_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "required": ["images"],
            "properties": {
                "images": {"type": "array", "items": {"type": "string", "format": "binary"}, "minItems": 1,
                           "description": "one or more photos (JPEG, PNG, WebP, TIFF, HEIC/HEIF, AVIF); "
                                          "repeat the field for a parcel"},
                "reference": {"type": "string", "maxLength": MAX_REFERENCE,
                              "description": "parcel or lot number, kept with each report"},
                "coin_mm": {"type": "number", "minimum": COIN_MM[0], "maximum": COIN_MM[1],
                            "description": "the diameter of a coin laid beside the stones: their scale, each stone "
                                           "measured in mm (the printed scale card, when in the photo, is used "
                                           "instead)"},
                "ruler": {"type": "boolean",
                          "description": "a millimetre ruler lies beside the stones: their scale, each stone "
                                         "measured in mm from its ticks (not with coin_mm)"},
                **{k: {**{kk: vv for kk, vv in v.items() if kk not in ("anyOf", "default", "title")},
                       **(v["anyOf"][0] if "anyOf" in v else {})}
                   for k, v in Readings.model_json_schema()["properties"].items()},
            },
        }}},
    }
}


def _entries_or_error(meaning: str) -> dict:
    """A status /v1/identify gives in either of its shapes: the per-photo entries (every photo refused), or a
    request-level refusal before any photo was looked at."""
    return {"description": f"{meaning}: the entries (every photo refused this way), or the request refused",
            "content": {"application/json": {"schema": {"anyOf": [
                {"$ref": "#/components/schemas/IdentifyResponse"}, {"$ref": "#/components/schemas/ErrorBody"}]}}}}


# where a client (or a stateful fuzzer) goes next with the report_id of the first entry
_NEXT = {"get_report": "get_report_v1_reports__report_id__get",
         "revisions": "get_revisions_v1_reports__report_id__revisions_get",
         "image": "get_image_v1_reports__report_id__image_get",
         "preview": "report_preview_v1_reports__report_id__preview_jpg_get",
         "qr": "report_qr_v1_reports__report_id__qr_svg_get",
         "add_readings": "add_readings_v1_reports__report_id__readings_post"}
IDENTIFY_RESPONSES: dict[int | str, dict] = {
    200: {"description": "one entry per stone (per photo for a refusal), in order; at least one is a report",
          "links": {name: {"operationId": op, "parameters": {"report_id": "$response.body#/reports/0/report_id"}}
                    for name, op in _NEXT.items()}},
    400: _entries_or_error("an empty file or refusals of several kinds; or a malformed form"),
    413: _entries_or_error("a photo over GEMID_MAX_BYTES or GEMID_MAX_PIXELS; or the body over the limit"),
    415: _entries_or_error("not a supported image type"),
    422: _entries_or_error("a corrupt photo, or one that stopped its analysis worker twice; or invalid readings"),
    503: _entries_or_error("the analysis workers are down; or the service is starting, too busy (Retry-After), "
                          "or cannot write its store"),
    507: _entries_or_error("the photo store is full (GEMID_MAX_STORE_BYTES)"),
    **error_responses(408, 501),
}


@router.post(
    "/identify", response_model=IdentifyResponse, openapi_extra=IDENTIFY_BODY,
    summary="Identify one or more stone photos", responses=IDENTIFY_RESPONSES,
)
async def identify(request: Request, settings: SettingsDep, store: StoreDep, images: ImagesDep,
                   identifier: IdentifierDep, analysis: AnalysisDep, metrics: MetricsDep, principal: PrincipalDep,
                   limiter: LimiterDep,
                   grade: Annotated[bool, Query(description=(
                       "grade colour and clarity (default); false: a quick species screen of a parcel, "
                       "several times faster, with `colour` and `clarity` left null"))] = True,
                   force: Annotated[bool, Query(description=(
                       "store the photo again even when it is already stored under the same reference"))] = False,
                   ) -> Response:
    """Multipart: `images` (repeated), optional `reference` and readings (the fields of `Readings`:
    ri, ri_high, birefringence, sg, optic, ...). Photos in order; each gives a report per stone found in
    it (`stone` {index, count, bbox, outline, shape}), or `{"file", "error": {"code", "message"}}`. With a
    reference, a photo already stored under it returns its stored reports and a `duplicate` notice
    instead of a new report (unless force=true). 200 when at least one photo gave a report (stored, with
    its photo); otherwise the status that fits the refusals (413 too large, 415 not an image,
    422 corrupt, or stopping its analysis worker twice, 503 analysis workers down, 507 store full,
    400 empty or several kinds), with the same entries. A request refused as a whole (no photo, an unknown
    field, invalid readings, too busy) gets `{"error": {"code", "message"}}` instead."""
    form, spooled = await _read_form(request, settings)
    try:
        uploads, reference, readings, coin_mm, ruler = _parse_fields(form, settings)
        if readings is not None and not identifier.capabilities.get("reranking", False):
            raise ApiError(501, "reranking_unavailable",
                           "re-ranking with readings is not installed in this service; send the photo alone")
        if readings is not None and len(uploads) > 1:  # one stone's readings, never spread over a parcel
            raise ApiError(422, "invalid_readings", f"readings describe one stone, and {len(uploads)} photos were "
                           "sent: send the stone's photo alone with its readings, or add readings to each "
                           "report (POST /v1/reports/{id}/readings)")
        out: list[Report | FileError] = []
        notices: list[Notice] = []
        statuses: list[int | None] = []
        to_store: list[tuple[Report, str, str]] = []
        sent: dict[str, list[Report]] = {}  # photos of this request, by sha256: the same photo twice is one
        captures: list[dict[str, Any] | None] = []  # aligned with to_store
        for upload in uploads:
            # the reports clean it too (report.FileName); cleaned here as well for the log lines on the way
            name = clean_file_name(upload.filename or None)
            try:
                photo = _checked_upload(upload, settings.max_bytes, images)
            except GemidInputError as exc:
                out.append(FileError.from_exception(name, exc))
                statuses.append(exc.status)
                continue
            if reference is not None and not force:
                sha = await to_thread.run_sync(sha256_file, photo)
                stored = sent.get(sha) or await to_thread.run_sync(_stored_duplicates, store, sha, reference,
                                                                       desk_scope(principal))
                if stored and readings is not None and len(stored) > 1:  # a tray's: as its analysis would
                    exc = readings_for_one_stone(len(stored))
                    out.append(FileError.from_exception(name, exc))
                    statuses.append(exc.status)
                    continue
                if stored:  # readings sent again with it are not dropped: they revise its stored report
                    made = False
                    if readings is not None:
                        report, made = await revise_with_readings(store, identifier, limiter, settings, principal,
                                                                  stored[0].report_id, readings)
                        stored = [report]
                    out.extend(stored)
                    notices.append(_duplicate(name, stored, reference, made))
                    statuses.append(None)
                    continue
            # the worker reads the photo from its spooled file: the server never holds it whole
            outcome = await analysis.identify(photo, filename=name, reference=reference, readings=readings,
                                              grade=grade, coin_mm=coin_mm, ruler=ruler)
            maker = issued_by(principal)  # each stone's report names who made it, and the desk
            entries = [e.model_copy(update={"issued_by": maker}) if isinstance(e, Report) else e
                       for e in outcome.entries]
            entry = entries[0] if entries else outcome.entry
            if isinstance(entry, Report):
                metrics.inference.observe(outcome.seconds)
                try:  # the photo is on disk before any report row is committed; once for all its stones
                    sha, ext = await to_thread.run_sync(put_photo, images, entry, photo)
                except GemidInputError as exc:  # the store's quota, reached by the photos before this one
                    out.append(FileError.from_exception(name, exc))
                    statuses.append(exc.status)
                    continue
                except OSError as exc:  # disk full, permissions: a server fault, not the photo's
                    raise store_failure(exc) from exc
                stones = [e for e in entries if isinstance(e, Report)]
                to_store.extend((r, sha, ext) for r in stones)
                captures.extend(outcome.captures if len(outcome.captures) == len(stones) else [None] * len(stones))
                sent[sha] = stones
            out.extend(entries)
            statuses.append(outcome.status)
    finally:
        discard(spooled)
        await form.close()
    metrics.store_bytes.set(images.used())

    if to_store:
        try:
            await to_thread.run_sync(functools.partial(store.add_reports, to_store, captures=captures,
                                                       training_consent=settings.consents(principal and principal.desk)))
        except SQLAlchemyError as exc:
            raise store_failure(exc) from exc
        _shadow(request, images, to_store)
    new = {r.report_id for r, _, _ in to_store}
    request.state.audit_reports = [report.report_id for report, _sha, _ext in to_store]  # one "create" each
    for e in out:
        if isinstance(e, Report) and e.report_id not in new:
            continue  # a duplicate's stored report: counted when it was made
        if isinstance(e, Report):
            metrics.identifications.labels(e.species.decision).inc()
        else:
            metrics.file_errors.labels(e.error.code).inc()
    # serialised by pydantic's own encoder in one pass (not dict -> json.dumps): less CPU per request
    return Response(IdentifyResponse(reports=out, notices=notices).model_dump_json(),
                    status_code=_overall_status(statuses),
                    media_type="application/json")
