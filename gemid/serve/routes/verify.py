"""Checking reports without an account: the public keys (GET /v1/keys), and the public verification page a
printed report's QR code opens (`/verify/{code}`, its JSON at GET /v1/verify/{code}).

These stay open when the rest of /v1 needs a key: a customs officer or a buyer holding a printed report has
no account. What they may learn is bounded by the code: `code` is the report's own 128-bit random token
(gemid.serve.store.new_verify_code), so it opens that report's signed summary (conclusion, photo hash, dates,
desk) and whether its signatures check; never its photo, its file name or reference, nor any other report.
A code that is not one (wrong form, unknown) gets the same 404, so the answers tell nothing about other codes.

The check is the one `gemid verify` does offline (gemid.signing), against the store's public keys, plus the
stored photo's SHA-256 against the signed `image.sha256`: an edited database row or a swapped photo file shows
as "does not verify", with the reason.
"""

from __future__ import annotations

import html
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from anyio import to_thread
from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from gemid import signing
from gemid.messages import percent
from gemid.serve.deps import ImagesDep, StoreDep
from gemid.serve.errors import ApiError, error_responses
from gemid.serve.images import ImageStore
from gemid.serve.keys import public_keys, verification_keys
from gemid.serve.routes.page import PAGE_HEADERS
from gemid.serve.store import ReportStore

router = APIRouter(tags=["verification"])

CODE = re.compile(r"[A-Za-z0-9_-]{16,64}")
CodeParam = Annotated[str, PathParam(description="the code printed on the report (its QR code)")]


class KeyOut(BaseModel):
    key_id: str = Field(description="first 16 hex of SHA-256 of the raw public key; `signature.key_id` names it")
    algorithm: Literal["Ed25519"]
    public_pem: str
    created_at: datetime
    retired_at: datetime | None = Field(description="null for the key signing now; retired keys still verify")


class KeysOut(BaseModel):
    keys: list[KeyOut]


class Verification(BaseModel):
    """The signed summary of one report and whether it checks."""

    verified: bool = Field(description="every revision's signature and the chain check, and the stored photo "
                                       "is the one signed")
    problems: list[str] = Field(description="why not, revision by revision; empty when verified")
    report_id: str
    revision: int = Field(description="the latest revision (the one summarised)")
    revisions: int
    issued_at: datetime | None = Field(description="when revision 1 was made")
    updated_at: datetime | None = Field(description="when the latest revision was made")
    decision: str | None
    species: str | None = Field(description="the conclusion's answer (null when rejected)")
    probability: float | None
    basis: str | None
    confirmed_as: str | None = Field(description="what a laboratory or confirmatory tests settled, if recorded")
    confirmed_method: str | None = Field(None, description="how it was settled (e.g. 'Raman'), if recorded")
    image_sha256: str | None
    photo: Literal["matches", "differs", "missing"]
    desk: str | None = None
    key_ids: list[str]


@router.get("/v1/keys", response_model=KeysOut, responses=error_responses(503),
            summary="The public keys reports are signed with (open: no account needed)")
async def get_keys(store: StoreDep) -> KeysOut:
    """Current key first; keys retired by `gemid keys rotate-signing` stay listed, so reports signed before
    still verify. Save one as a PEM file for `gemid verify --key`."""
    keys = await to_thread.run_sync(public_keys, store.engine)
    return KeysOut(keys=[KeyOut(key_id=k.key_id, algorithm="Ed25519", public_pem=k.public_pem,
                                created_at=k.created_at, retired_at=k.retired_at) for k in keys])


def _photo_state(images: ImageStore, store: ReportStore, report_id: str) -> tuple[str | None, str]:
    """(SHA-256 of the stored photo's bytes, matches/differs/missing against the photo row's name)."""
    from gemid.serve.images import sha256_file

    found = store.image_of(report_id)
    if found is None:
        return None, "missing"
    sha, ext, _name = found
    path = images.get(sha, ext)
    if path is None:
        return None, "missing"
    actual = sha256_file(path)
    return actual, "matches" if actual == sha else "differs"


def _desk(body: dict[str, Any]) -> str | None:
    """The desk that issued the report (`issued_by.desk` of revision 1, where accounts recorded one)."""
    issued = body.get("issued_by")
    desk = issued.get("desk") if isinstance(issued, dict) else None
    return desk if isinstance(desk, str) else None


def check_report(store: ReportStore, images: ImageStore, code: str) -> Verification | None:
    """The verification of the report with this code; None when no report has it."""
    report_id = store.by_verify_code(code) if CODE.fullmatch(code) else None
    if report_id is None:
        return None
    bodies = store.revision_bodies(report_id)
    if not bodies:
        return None
    actual, photo = _photo_state(images, store, report_id)
    keys, retired = verification_keys(store.engine)
    verdict = signing.verify_revisions(bodies, keys, photo_sha256=actual, retired=retired)
    problems = list(verdict.problems)
    if photo != "matches":
        problems.append("the stored photo is missing" if photo == "missing"
                        else "the stored photo's bytes are not the photo its name (SHA-256) says")
    latest: dict[str, Any] = bodies[-1]
    conclusion = latest.get("conclusion") or {}
    confirmation = latest.get("confirmation") or {}
    return Verification(
        verified=not problems and verdict.ok, problems=problems, report_id=report_id,
        revision=int(latest.get("revision") or len(bodies)), revisions=len(bodies),
        issued_at=bodies[0].get("created_at"), updated_at=latest.get("created_at"),
        decision=conclusion.get("decision") or (latest.get("species") or {}).get("decision"),
        species=conclusion.get("label"), probability=conclusion.get("probability"), basis=conclusion.get("basis"),
        confirmed_as=confirmation.get("other_name") or confirmation.get("label"),
        confirmed_method=confirmation.get("method"),
        image_sha256=(latest.get("image") or {}).get("sha256"), photo=photo,
        desk=_desk(bodies[0]),
        key_ids=sorted(verdict.key_ids),
    )


def _unknown_code() -> ApiError:
    return ApiError(404, "unknown_code", "no report has this verification code; check the code printed on the "
                                         "report (a report this service cannot find was not issued by it)")


@router.get("/v1/verify/{code}", response_model=Verification, responses=error_responses(404, 503),
            summary="Verify a printed report by its code (open: no account needed)")
async def verify_json(store: StoreDep, images: ImagesDep, code: CodeParam) -> Verification:
    found = await to_thread.run_sync(check_report, store, images, code)
    if found is None:
        raise _unknown_code()
    return found


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at else "—"


def _row(name: str, value: str) -> str:
    return f"<tr><th scope=\"row\">{html.escape(name)}</th><td>{value}</td></tr>"


BASIS_WORDS = {"photo": "the photo alone", "photo+readings": "the photo and the technician's instrument readings"}


def render_page(v: Verification | None) -> str:
    """The verification page: plain HTML on the page's style sheet, no script (works anywhere, signed out)."""
    if v is None:
        body = ('<h1>Report not found</h1><p class="notice bad" id="verdict">No report issued by this gemid service '
                'has this verification code. Check the code printed on the report; a report that cannot be found '
                'here was not issued by this service.</p>')
    else:
        if v.verified:
            verdict = ('<p class="notice ok" id="verdict"><strong>Signature valid.</strong> This is the report as '
                       'the service signed it: neither a signed field nor the photo has changed since.</p>')
        else:
            items = "".join(f"<li>{html.escape(p)}</li>" for p in v.problems)
            verdict = ('<div class="notice bad" id="verdict"><strong>Does not verify.</strong> This report was '
                       f'changed after it was signed, or it cannot be checked:<ul>{items}</ul></div>')
        answer = html.escape(v.species or "no species (rejected)")
        if v.probability is not None:
            answer += f" ({percent(v.probability)})"
        rows = []
        if v.confirmed_as:  # it stands over gemid's conclusion, which stays below as what was said before
            method = f" ({html.escape(v.confirmed_method)})" if v.confirmed_method else ""
            rows.append(_row("Confirmed as", f'<strong id="confirmed">{html.escape(v.confirmed_as)}</strong>{method}: '
                             "settled by confirmatory tests or a laboratory after gemid's preliminary conclusion, "
                             "which it replaces"))
        rows += [
            _row("Preliminary conclusion" if v.confirmed_as else "Conclusion",
                 f'<span class="decision {html.escape(v.decision or "")}">{answer}</span>'),
            _row("Decision", html.escape(v.decision or "")),
            _row("Based on", BASIS_WORDS.get(v.basis or "photo", html.escape(v.basis or ""))),

            _row("Issued", _when(v.issued_at)),
            _row("Revision", f"{v.revision} of {v.revisions} (last changed {_when(v.updated_at)})"),
            _row("Photo SHA-256", f'<code id="photo-sha">{html.escape(v.image_sha256 or "")}</code>'),
            _row("Desk", html.escape(v.desk or "—")),
            _row("Report id", f"<code>{html.escape(v.report_id)}</code>"),
            _row("Signed with key", html.escape(", ".join(v.key_ids) or "—")
                 + ' (<a href="../v1/keys">public keys</a>)'),
        ]
        body = (f'<h1>Report verification</h1>{verdict}<table class="verify-table">{"".join(rows)}</table>'
                '<p class="hint">A preliminary identification from a photograph, not a certificate. Compare the '
                'photo hash with <code>sha256sum</code> of the photo you were given.</p>')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Report verification — gemid</title><link rel="stylesheet" href="../static/app.css"></head>
<body><header class="site-header"><span class="brand">gemid <small>report verification</small></span></header>
<main id="main"><div class="panel">{body}</div></main></body></html>"""


@router.get("/verify/{code}", include_in_schema=False)
async def verify_page(store: StoreDep, images: ImagesDep, code: CodeParam) -> HTMLResponse:
    """The page a printed report's QR code opens."""
    found = await to_thread.run_sync(check_report, store, images, code)
    return HTMLResponse(render_page(found), status_code=200 if found else 404,
                        headers={**PAGE_HEADERS, "Referrer-Policy": "no-referrer"})
