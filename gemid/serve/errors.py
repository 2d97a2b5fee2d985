"""One error shape for every failure: `{"error": {"code", "message"}}`, never a stack trace.

`ApiError` is a Starlette HTTPException, so it also passes through FastAPI's body reading untouched
(other exceptions there become a generic 400) and is rendered by the same handler as routing errors.
"""

from __future__ import annotations

import errno
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from gemid.messages import (
    dotted,
    size_text,  # noqa: F401  (re-exported: the API words sizes as the CLI does)
    validation_message,
)
from gemid.report import ErrorInfo

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request", 401: "unauthorised", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    406: "not_acceptable", 408: "request_timeout", 409: "conflict", 413: "too_large", 415: "unsupported_type",
    422: "invalid_request", 429: "too_many_requests", 501: "not_available", 503: "unavailable",
    507: "store_full",
}


_REQUEST_PARTS = ("body", "query", "path", "header")  # where a field came from: the client knows


class ApiError(StarletteHTTPException):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.code = code
        self.message = message


class ErrorBody(BaseModel):  # every error answer, as the API's documentation shows it
    error: ErrorInfo


# what each error status means, as the OpenAPI documents it
ERROR_MEANING = {
    400: "the request is malformed (the error's code says how), e.g. a body that cannot be parsed",
    404: "no such report, revision or photo",
    408: "the request body stalled (GEMID_BODY_TIMEOUT)",
    409: "the report cannot take this revision (the cap on revisions, or it kept changing)",
    413: "the request body is over the limit",
    415: "not a supported image type",
    422: "a field breaks a declared rule (the message names it)",
    501: "re-ranking with readings is not installed in this service",
    503: "starting, too busy (see Retry-After), or the store cannot be written",
    507: "the photo store is full (GEMID_MAX_STORE_BYTES)",
}


def error_responses(*statuses: int) -> dict[int | str, dict]:
    """OpenAPI `responses` for these error statuses, each with the error shape."""
    return {s: {"model": ErrorBody, "description": ERROR_MEANING[s]} for s in statuses}


# the error answers every /v1 route may give (more are added where they can occur)
ERROR_RESPONSES = error_responses(404, 422, 503)


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def store_failure(exc: Exception) -> ApiError:
    """A report that could not be saved: a fault of the server's disk or database, never of the photo."""
    log.error("could not store reports: %s", exc, exc_info=not is_disk_failure(exc))
    return ApiError(503, "store_unavailable",
                    f"the report could not be saved ({type(exc).__name__}); nothing was recorded, try again",
                    {"Retry-After": "30"})


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, ApiError):
        return error_response(exc.status_code, exc.code, exc.message, exc.headers)
    detail = exc.detail if isinstance(exc.detail, str) else "request refused"
    if exc.status_code == 404 and detail == "Not Found":
        detail = "no such page or API endpoint; see /docs"
    elif exc.status_code == 405:
        detail = "this method is not allowed here; see /docs"
    return error_response(exc.status_code, _CODES.get(exc.status_code, "error"), detail, exc.headers)


# routes whose JSON body is readings: a refused body is `invalid_readings`, the code POST /v1/identify gives the
# same readings as form fields (an outside try got `invalid_request` for RI 9.9 here and `invalid_readings` there)
READINGS_BODY_ROUTES = frozenset({"add_readings"})


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message = validation_message(exc, field=lambda loc: dotted(loc, skip=_REQUEST_PARTS, empty="request"))
    route = getattr(request.scope.get("route"), "name", None)
    if route in READINGS_BODY_ROUTES and all(tuple(e.get("loc", ()))[:1] == ("body",) for e in exc.errors()):
        return error_response(422, "invalid_readings", f"invalid readings: {message or 'not valid'}")
    return error_response(422, "invalid_request", message or "the request is not valid")


# a disk that cannot take a write: the server's fault and a passing one (503, try again), never a 500
DISK_ERRNOS = frozenset(getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "EFBIG",
                                                          "EIO") if hasattr(errno, name))


def is_disk_failure(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        return True
    text = str(exc).lower()  # SQLite says so in words: "database or disk is full", "readonly database"
    return isinstance(exc, OperationalError) and ("disk" in text or "readonly" in text or "read-only" in text)


async def _disconnected(request: Request, _exc: Exception) -> Response:
    """The client went away mid-request: nothing to answer, nothing wrong with the server. Counted in the
    metrics as 499 (nginx's "client closed request"), logged as one info line."""
    log.info("client disconnected during %s %s", request.method, request.url.path)
    return Response(status_code=499)


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    """A file or database error: 503 when the disk cannot be written (full, read-only), else unexpected."""
    if not is_disk_failure(exc):
        return await _unexpected(request, exc)
    log.error("the store cannot be written (%s %s): %s", request.method, request.url.path, exc)
    return error_response(503, "store_unavailable", f"the store cannot be written ({type(exc).__name__}: "
                          f"{getattr(exc, 'strerror', None) or 'disk full or read-only'}); nothing was recorded, "
                          "try again later", {"Retry-After": "30"})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "an unexpected error occurred on the server; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ClientDisconnect, _disconnected)
    app.add_exception_handler(OSError, _store_error)
    app.add_exception_handler(OperationalError, _store_error)
    app.add_exception_handler(Exception, _unexpected)
