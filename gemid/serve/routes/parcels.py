"""A parcel, /v1/parcels/{reference}: every stone stored under one reference (lot number), with a summary row
per stone; and the CSV exports of a parcel and of History (/v1/reports.csv, filtered as the list is).

A parcel is not a table of its own: it is the reports stored under exactly that reference, photo by photo in
the order they were stored, each photo's stones in reading order (gemid.serve.store). Its rows, and the
CSV's columns, come from `gemid.report.table_row`/`ROW_FIELDS`, the one owner of a report's table row, so the
CLI's CSV, the parcel table and these exports say the same thing.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from urllib.parse import quote

from anyio import to_thread
from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field

from gemid.errors import GemidInputError
from gemid.report import ROW_FIELDS, Report, clean_reference, table_row
from gemid.serve.accounts import Principal
from gemid.serve.deps import PrincipalDep, StoreDep, desk_scope
from gemid.serve.errors import ApiError, error_responses
from gemid.serve.routes.reports import FiltersDep

MAX_PARCEL = 2000  # stones in one parcel answer: a parcel holds 10-50, a day's lot a few hundred
MAX_EXPORT = 20_000  # rows in one History CSV: narrow the dates for more

router = APIRouter(prefix="/v1", tags=["parcels"])

CSV_TYPE = "text/csv; charset=utf-8"
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


class ParcelResponse(BaseModel):
    reference: str
    photos: int = Field(description="distinct photos (by sha256)")
    stones: int = Field(description="stone reports in the parcel")
    counts: dict[str, int] = Field(description="stones per conclusion decision (identified, uncertain, refer, "
                                               "rejected)")
    columns: list[str] = Field(description="the keys of each row, in order (gemid.report.ROW_FIELDS)")
    rows: list[dict[str, str]] = Field(description="one summary row per stone, in the parcel's order")
    reports: list[Report] = Field(description="each stone's full report (latest revision), in the same order")


def _cell(value: str) -> str:
    """A cell a spreadsheet shows as text: a file name or reference typed as `=HYPERLINK(...)` must not run as
    a formula on the desk PC that opens the export."""
    return "'" + value if value.startswith(_FORMULA) else value


def to_csv(reports: list[Report]) -> str:
    """Reports as CSV, ROW_FIELDS as the header; a byte-order mark so spreadsheet programs read UTF-8."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.DictWriter(out, fieldnames=ROW_FIELDS, restval="", lineterminator="\r\n")
    writer.writeheader()
    for r in reports:
        writer.writerow({k: _cell(v) for k, v in table_row(r).items()})
    return out.getvalue()


def _attachment(body: str, name: str) -> Response:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:80] or "export"
    return Response(body, media_type=CSV_TYPE, headers={
        "Content-Disposition": f"attachment; filename=\"{safe}.csv\"; filename*=UTF-8''{quote(name[:80])}.csv"})


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
    return _attachment(to_csv(reports), f"parcel-{reference}")


@router.get("/parcels/{reference:path}", response_model=ParcelResponse, responses=error_responses(404, 422, 503),
            summary="A parcel: every stone stored under one reference")
async def get_parcel(store: StoreDep, principal: PrincipalDep, reference: str) -> ParcelResponse:
    """Every report stored under exactly this reference (URL-encode a `/` in it), photo by photo, each photo's
    stones in reading order; a summary row per stone and the counts per conclusion on top."""
    reference, reports = await _parcel(store, reference, principal)
    decisions = Counter(r.conclusion.decision if r.conclusion else r.species.decision for r in reports)
    return ParcelResponse(
        reference=reference, photos=len({r.image.sha256 for r in reports}), stones=len(reports),
        counts={d: decisions.get(d, 0) for d in ("identified", "uncertain", "refer", "rejected")},
        columns=list(ROW_FIELDS), rows=[table_row(r) for r in reports], reports=reports)


@router.get("/reports.csv", response_class=Response, summary="Stored reports as CSV (History's filters)",
            responses={200: {"content": {"text/csv": {}}, "description": "one row per report (ROW_FIELDS)"},
                       **error_responses(422, 503)})
async def reports_csv(store: StoreDep, principal: PrincipalDep, filters: FiltersDep) -> Response:
    """The reports `GET /v1/reports` lists with the same filters, newest first, all of them (up to 20,000: narrow
    the dates for more), one CSV row each with the columns of the parcel table."""
    reports = await to_thread.run_sync(lambda: store.latest(limit=MAX_EXPORT, desk=desk_scope(principal),
                                                            **filters.query()))
    return _attachment(to_csv(reports), "gemid-reports")
