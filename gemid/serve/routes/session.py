"""Signing in and out of the web page: a session cookie (HttpOnly, SameSite=Strict, Secure under TLS) from a
password (`POST /v1/session`) or a one-time sign-in link (`GET /signin?token=...`, printed by `gemid serve`
on first start or by `gemid users link NAME`), and `GET /v1/session` for the page to learn who it is and its
CSRF token. API clients do not sign in: they send `Authorization: Bearer KEY`.

After failed sign-ins the name and the address wait longer each time (gemid.serve.security.FailedSignIns);
each attempt goes to the audit trail (gemid.serve.access records it from what these routes leave in
`request.state`).
"""

from __future__ import annotations

import html

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from gemid.serve import accounts
from gemid.serve.access import SESSION_COOKIE, _cookie
from gemid.serve.accounts import Principal
from gemid.serve.deps import PrincipalDep, StoreDep
from gemid.serve.errors import ApiError, ErrorBody, error_responses

router = APIRouter(tags=["session"])


class SignIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1000)


class SessionInfo(BaseModel):
    name: str
    kind: str
    role: str
    desk: str | None
    csrf: str | None = Field(None, description="send it as X-CSRF-Token with every state-changing request")


def _info(principal: Principal) -> SessionInfo:
    return SessionInfo(name=principal.name, kind=principal.kind, role=principal.role, desk=principal.desk,
                       csrf=principal.csrf)


def _set_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=int(accounts.SESSION_LIFETIME.total_seconds()),
                        httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/")


@router.post("/v1/session", response_model=SessionInfo, summary="Sign in with a name and password",
             responses={401: {"model": ErrorBody, "description": "wrong name or password"},
                        429: {"model": ErrorBody, "description": "too many failed sign-ins: wait Retry-After"},
                        **error_responses(422, 503)})
async def sign_in(request: Request, store: StoreDep, body: SignIn) -> JSONResponse:
    failures = request.app.state.failed_sign_ins
    address = request.client.host if request.client else "unknown"
    keys = (f"name:{body.name.lower()}", f"address:{address}")
    wait = failures.wait(*keys)
    request.state.audit_actor = body.name[:100]
    if wait > 0:
        request.state.audit_action = "failed_sign_in"
        request.state.audit_detail = "refused: waiting after failed sign-ins"
        seconds = max(1, round(wait + 0.5))
        raise ApiError(429, "too_many_sign_ins", f"too many failed sign-ins; try again in {seconds} s",
                       {"Retry-After": str(seconds)})
    found = await to_thread.run_sync(accounts.sign_in_with_password, store.engine, body.name, body.password)
    if found is None:
        failures.failed(*keys)
        request.state.audit_action = "failed_sign_in"
        request.state.audit_detail = "wrong name or password"
        raise ApiError(401, "sign_in_failed", "wrong name or password")
    failures.succeeded(keys[0])
    token, principal = found
    request.state.principal = principal
    response = JSONResponse(_info(principal).model_dump())
    _set_cookie(response, request, token)
    return response


@router.get("/v1/session", response_model=SessionInfo, summary="Who is signed in (and the page's CSRF token)",
            responses=error_responses(503))
async def who(principal: PrincipalDep) -> SessionInfo:
    assert principal is not None  # the access table lets only signed-in callers here
    return _info(principal)


@router.delete("/v1/session", status_code=204, summary="Sign out (ends the session cookie)",
               responses=error_responses(503))
async def sign_out(request: Request, store: StoreDep) -> Response:
    token = _cookie(request.headers, SESSION_COOKIE)  # type: ignore[arg-type]
    if token:
        await to_thread.run_sync(accounts.end_session, store.engine, token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


def _link_failed_page() -> HTMLResponse:
    text = html.escape("This sign-in link was used already, has expired, or was mistyped. Ask an administrator "
                       "for a new one (gemid users link NAME), or sign in with your password.")
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign-in link not valid — gemid</title><link rel="stylesheet" href="static/app.css"></head>
<body><main id="main"><div class="panel"><h1>Sign-in link not valid</h1><p class="notice bad">{text}</p>
<p><a href="./">Open gemid</a></p></div></main></body></html>"""
    return HTMLResponse(body, status_code=401)


@router.get("/signin", include_in_schema=False)
async def sign_in_link(request: Request, store: StoreDep,
                       token: str = Query("", max_length=200)) -> Response:
    """The one-time link: a session cookie, then the page. The link works once (gemid.serve.accounts)."""
    found = await to_thread.run_sync(accounts.sign_in_with_link, store.engine, token) if token else None
    if found is None:
        request.state.audit_action = "failed_sign_in"
        request.state.audit_detail = "one-time link not valid"
        return _link_failed_page()
    session, principal = found
    request.state.principal = principal
    request.state.audit_detail = "one-time sign-in link"
    response = RedirectResponse("./", status_code=303)
    _set_cookie(response, request, session)
    return response
