"""Request bounds, enforced before a route runs: how many requests are in flight, how big and how slow a body
may be.

- `InFlightMiddleware`: at most GEMID_MAX_IN_FLIGHT requests to /v1 are being received or analysed at once;
  one more is answered 503 with Retry-After at once, before its body is read. Each request in flight holds
  little memory (its photos are spooled to disk, gemid.serve.uploads), so this cap is what keeps the
  server's memory bounded however many clients send at once. Health checks and metrics are not counted:
  they must answer while the service is busiest.
- `BodyLimitMiddleware`: a declared Content-Length over the limit is refused at once; a chunked body is
  counted as it arrives and refused as soon as it passes the limit (413). A body that sends nothing for
  GEMID_BODY_TIMEOUT seconds, or after that long averages under MIN_BODY_RATE, is answered 408: a slow client
  cannot hold a place in flight for ever.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gemid.serve.errors import ApiError, error_response, size_text

RETRY_AFTER = "2"  # seconds: about one photo's analysis
# A body still arriving after the pause timeout must average at least this many bytes a second: an outside
# try held every place in flight with uploads trickling 3 bytes a second (never a pause long enough for the
# timeout), so no desk could even list its reports. 1 KiB/s lets a 20 MiB photo take almost six hours.
MIN_BODY_RATE = 1024


class BodyTooLarge(ApiError):
    def __init__(self, limit: int, photos: bool = True) -> None:
        # a small JSON body (readings, a confirmation) carries no photos to send fewer of (an outside try's note)
        hint = "send fewer or smaller photos" if photos else "a JSON body here holds a few short fields"
        super().__init__(413, "request_too_large", f"the request body is over {size_text(limit)}; {hint}")


class BodyTooSlow(ApiError):
    def __init__(self, rate: float) -> None:
        super().__init__(408, "body_too_slow", f"the request body arrived at {rate:.0f} bytes a second, under "
                         f"{MIN_BODY_RATE}; send it again on a better connection", {"Connection": "close"})


class BodyTimeout(ApiError):
    def __init__(self, seconds: float) -> None:
        super().__init__(408, "body_timeout", f"the request body sent nothing for {seconds:g} s; send it again",
                         {"Connection": "close"})


def _photos(scope: Scope) -> bool:
    """Whether the request sends photos (multipart), for the words of its 413."""
    ctype = dict(scope.get("headers") or []).get(b"content-type", b"")
    return ctype.lower().startswith(b"multipart/")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limit_for: Callable[[str, str], int | None], timeout: float = 30.0) -> None:
        self.app = app
        self.limit_for = limit_for  # (method, path) -> bytes, or None for no limit
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit_for(scope["method"], scope["path"]) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        try:
            too_big = declared is not None and int(declared) > limit
        except ValueError:
            too_big = False
        if too_big:
            exc = BodyTooLarge(limit, photos=_photos(scope))
            await error_response(413, exc.code, exc.message, {"Connection": "close"})(scope, receive, send)
            return
        received = 0
        more_body = True
        started = anyio.current_time()

        async def counted() -> Message:
            nonlocal received, more_body
            if not more_body:  # the body is in: what remains is waiting for a disconnect, not a deadline
                return await receive()
            with anyio.move_on_after(self.timeout) as scope_:
                message = await receive()
            if scope_.cancelled_caught:
                raise BodyTimeout(self.timeout)
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                more_body = message.get("more_body", False)
                if received > limit:
                    raise BodyTooLarge(limit, photos=_photos(scope))
                elapsed = anyio.current_time() - started
                if more_body and elapsed > self.timeout and received < MIN_BODY_RATE * elapsed:
                    raise BodyTooSlow(received / elapsed)
            return message

        await self.app(scope, counted, send)


class InFlightMiddleware:
    """At most `limit` requests whose path starts with `prefix` at once; past it, 503 with Retry-After."""

    def __init__(self, app: ASGIApp, limit: int, prefix: str = "/v1/", on_refused: Callable[[], None] = lambda: None,
                 ) -> None:
        self.app = app
        self.limit = limit
        self.prefix = prefix
        self.on_refused = on_refused
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            self.on_refused()
            await error_response(503, "busy", f"the service is answering {self.limit} requests already "
                                 f"(GEMID_MAX_IN_FLIGHT); try again in {RETRY_AFTER} s",
                                 {"Retry-After": RETRY_AFTER, "Connection": "close"})(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
