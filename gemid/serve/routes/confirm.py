"""POST /v1/reports/{id}/confirmation: the settled answer (confirmatory tests, a laboratory) as a new revision.

Like readings, a confirmation never overwrites a report: it stores revision N+1, a copy of the latest with its
`confirmation` set, by the store's compare-and-swap (retried when someone else got there first) and under the
same revision cap. The label must be one gemid knows (a label of the served model or of the property table,
any case, stored in the table's spelling), or "other" with `other_name`: field accuracy and the training data
exported from the store (gemid.serve.field) are measured against it, so a typo must not pass.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from anyio import to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError

from gemid.report import Confirmation, Report, printable
from gemid.serve.deps import (
    IdentifierDep,
    MetricsDep,
    PrincipalDep,
    ReportId,
    SettingsDep,
    StoreDep,
    issued_by,
)
from gemid.serve.errors import ApiError, error_responses, store_failure
from gemid.serve.field import same_label
from gemid.serve.metrics import ServiceMetrics
from gemid.serve.store import RevisionConflict

router = APIRouter(prefix="/v1/reports", tags=["reports"])

OTHER = "other"


class ConfirmationRequest(BaseModel):
    """What the technician or the laboratory settled; who and when are recorded by the server."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1, max_length=100, description=(
        "a label of the model or the property table (any case), or 'other' with `other_name`"),
        examples=["Ruby"])
    method: str = Field(min_length=1, max_length=200, description="how it was settled, e.g. 'Raman'",
                        examples=["standard gemmological tests"])
    lab_reference: str | None = Field(None, max_length=100, description="the laboratory's report number")
    other_name: str | None = Field(None, max_length=100, description=(
        "the material's name; required when label is 'other', refused otherwise"))


@functools.cache
def _table_names() -> dict[str, str]:
    """Lower-case name → spelling, for every label and material of the property table."""
    from gemid.gemmology.table import default_table

    table = default_table()
    names = {m.name.lower(): m.name for m in table.materials}
    names.update({label.lower(): label for label in table.labels})  # a model label wins over a row name
    return names


def known_labels(model_labels: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Every label a confirmation may name: the property table's and the served model's (its spelling wins)."""
    return {**_table_names(), **{label.lower(): label for label in model_labels}}


def _clean(text: str | None, name: str, *, required: bool) -> str | None:
    value = " ".join(printable(text).split()) if text is not None else ""
    if not value:
        if required:
            raise ApiError(422, "invalid_confirmation", f"{name} must not be blank")
        return None
    return value


def build_confirmation(body: ConfirmationRequest, model_labels: tuple[str, ...] | list[str]) -> Confirmation:
    """The confirmation to store, or 422 `invalid_confirmation` saying what is wrong."""
    label = _clean(body.label, "label", required=True) or ""
    other_name = _clean(body.other_name, "other_name", required=False)
    if label.lower() == OTHER:
        if other_name is None:
            raise ApiError(422, "invalid_confirmation", "label 'other' needs other_name (what the stone is)")
        label = OTHER
    else:
        if other_name is not None:
            raise ApiError(422, "invalid_confirmation", "other_name is only for label 'other'")
        known = known_labels(model_labels)
        if label.lower() not in known:
            raise ApiError(422, "unknown_label", (
                f"'{label}' is not a label of the model or the property table; use one of them "
                f"(e.g. {', '.join(sorted(model_labels)[:3])}) or 'other' with other_name"))
        label = known[label.lower()]
    return Confirmation(label=label, other_name=other_name,
                        method=_clean(body.method, "method", required=True) or "",
                        lab_reference=_clean(body.lab_reference, "lab_reference", required=False),
                        confirmed_by=None,  # set once accounts exist
                        confirmed_at=datetime.now(UTC))


def _count(metrics: ServiceMetrics, report: Report, confirmation: Confirmation) -> None:
    """gemid_confirmed_total and gemid_field_correct_total, for a report's first confirmation only (a later
    correction is the same stone)."""
    metrics.confirmed.inc()
    top = report.species.top
    if top and same_label(top[0].label, confirmation.label):
        metrics.field_correct.labels("photo").inc()
    answer = report.conclusion.label if report.conclusion else None
    if answer and same_label(answer, confirmation.label):
        metrics.field_correct.labels("conclusion").inc()


@router.post("/{report_id}/confirmation", response_model=Report, status_code=201,
             responses=error_responses(400, 404, 408, 409, 413, 422, 503),
             summary="Record the confirmed species: a new revision")
async def confirm(store: StoreDep, identifier: IdentifierDep, settings: SettingsDep, metrics: MetricsDep,
                  principal: PrincipalDep, report_id: ReportId, body: ConfirmationRequest) -> JSONResponse:
    """Stores revision N+1: the latest revision with `confirmation` set (`confirmed_at` by the server,
    `confirmed_by` the supervisor or key that sent it). Earlier revisions stay as they were; a later confirmation
    replaces the earlier one in the revision after it. 422 for a label gemid does not know (or 'other'
    without `other_name`), 409 when the report has `GEMID_MAX_REVISIONS` revisions."""
    confirmation = build_confirmation(body, identifier.bundle.labels)
    if principal is not None:
        confirmation = confirmation.model_copy(update={"confirmed_by": principal.name})
    for _attempt in range(5):
        latest = await to_thread.run_sync(store.get, report_id)
        if latest is None:
            raise ApiError(404, "report_not_found", f"no report with id {report_id}")
        if latest.revision >= settings.max_revisions:
            raise ApiError(409, "too_many_revisions",
                           f"report {report_id} has {latest.revision} revisions, the most one report may have "
                           f"(GEMID_MAX_REVISIONS)")
        new = latest.model_copy(update={"revision": latest.revision + 1, "confirmation": confirmation,
                                        "created_at": confirmation.confirmed_at, "issued_by": issued_by(principal)})
        try:
            await to_thread.run_sync(store.add_revision, new)
        except RevisionConflict:
            continue  # readings or another confirmation came first: redo on top of theirs
        except SQLAlchemyError as exc:
            raise store_failure(exc) from exc
        if latest.confirmation is None:
            _count(metrics, latest, confirmation)
        return JSONResponse(new.model_dump(mode="json"), status_code=201,
                            headers={"Location": f"/v1/reports/{report_id}?revision={new.revision}"})
    raise ApiError(409, "conflict", "the report kept changing while the confirmation was added; try again")
