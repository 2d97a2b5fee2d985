"""One error shape for every failure: `{"error": {"code", "message"}}`, never a stack trace.

`ApiError` is a Starlette HTTPException, so it also passes through FastAPI's body reading untouched
(other exceptions there become a generic 400) and is rendered by the same handler as routing errors.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from gemid.messages import dotted, validation_message
from gemid.report import ErrorInfo

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request", 401: "unauthorised", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    406: "not_acceptable", 409: "conflict", 413: "too_large", 415: "unsupported_type", 422: "invalid_request",
    429: "too_many_requests", 501: "not_available", 503: "unavailable",
}


_REQUEST_PARTS = ("body", "query", "path", "header")  # where a field came from: the client knows


class ApiError(StarletteHTTPException):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.code = code
        self.message = message


class ErrorBody(BaseModel):  # every error answer, as the API's documentation shows it
    error: ErrorInfo


# the error answers a /v1 route may give, as its OpenAPI `responses`
ERROR_RESPONSES: dict[int | str, dict] = {s: {"model": ErrorBody} for s in (400, 404, 413, 415, 422, 503)}


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def store_failure(exc: Exception) -> ApiError:
    """A report that could not be saved: a fault of the server's disk or database, never of the photo."""
    log.error("could not store reports", exc_info=exc)
    return ApiError(503, "store_unavailable",
                    f"the report could not be saved ({type(exc).__name__}); nothing was recorded, try again")


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


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message = validation_message(exc, field=lambda loc: dotted(loc, skip=_REQUEST_PARTS, empty="request"))
    return error_response(422, "invalid_request", message or "the request is not valid")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "an unexpected error occurred on the server; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
