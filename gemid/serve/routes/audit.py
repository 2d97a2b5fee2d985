"""The audit trail over HTTP, `GET /v1/audit`: for auditors and admins (gemid.serve.access), oldest first,
in pages that follow `seq` (`after`), so an auditor can fetch what is new since the last look. An entry
carries the seal made with it, if any (gemid.serve.audit). The chain itself is checked with
`gemid audit verify`; `gemid audit export` writes it all as JSON lines.
"""

from __future__ import annotations

from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from gemid.serve import audit
from gemid.serve.deps import MAX_INT32, REPORT_ID, StoreDep
from gemid.serve.errors import error_responses

router = APIRouter(prefix="/v1/audit", tags=["audit"])


class AuditSealOut(BaseModel):
    algorithm: str
    key_id: str
    value: str = Field(description="base64 Ed25519 signature over 'gemid audit seal\\n{seq}\\n{hash}'")


class AuditEntryOut(BaseModel):
    seq: int
    at: str
    actor: str | None
    actor_kind: str | None
    desk: str | None
    action: str
    report_id: str | None
    address: str | None
    detail: str | None
    prev_hash: str
    hash: str
    seal: AuditSealOut | None = Field(description="the signing key's seal over the chain up to this entry, "
                                                  "where one was made here")


class AuditPage(BaseModel):
    entries: list[AuditEntryOut]
    next_after: int | None = Field(description="pass as `after` for the next page; null at the end")


@router.get("", response_model=AuditPage, summary="The audit trail, oldest first",
            responses=error_responses(422, 503))
async def get_audit(
    store: StoreDep,
    after: Annotated[int, Query(ge=0, le=MAX_INT32, description="entries after this seq")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    action: Annotated[str | None, Query(max_length=32, pattern=r"^[a-z_]+$")] = None,
    report_id: Annotated[str | None, Query(max_length=64, pattern=REPORT_ID)] = None,
) -> AuditPage:
    rows = await to_thread.run_sync(lambda: audit.rows(store.engine, after=after, limit=limit, action=action,
                                                       report_id=report_id))
    return AuditPage(entries=[AuditEntryOut(**r) for r in rows],
                     next_after=rows[-1]["seq"] if len(rows) == limit else None)
