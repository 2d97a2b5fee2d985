"""Connection bounds below the application: a deadline for each request head, and a cap on open connections
that makes room by closing the connection idle longest.

uvicorn gives neither. Its keep-alive timeout starts only after a first response, so a socket that connects
and sends nothing (or half a head) stays open for ever: about 21,000 of them exhausted the file descriptors
and every request, /readyz included, failed. Its `limit_concurrency` counts idle connections too and answers
503 past the limit, so a flood of idle sockets would turn the health checks away.

`GuardedHttpTools` is uvicorn's httptools protocol with:
- a head deadline (GEMID_HEADER_TIMEOUT): a connection that has not sent a complete request head that long
  after it opened, or after its last response, is closed;
- a connection cap (GEMID_MAX_CONNECTIONS): past it, a new connection closes the one that has waited longest
  without sending a request, so a probe that sends its request at once is served while the flood is being
  timed out.
The body of a request has its own deadline in the application (gemid.serve.limits).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)


class GuardedHttpTools(HttpToolsProtocol):
    """Given to uvicorn by name (`http="gemid.serve.connections:GuardedHttpTools"`, which also reaches the HTTP
    worker processes of `--workers N`); the bounds are the settings of the environment it runs in."""

    header_timeout: float | None = None
    max_connections: int | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if GuardedHttpTools.header_timeout is None:
            from gemid.serve.settings import Settings

            settings = Settings()
            GuardedHttpTools.header_timeout = settings.header_timeout
            GuardedHttpTools.max_connections = settings.max_connections
        self._head_timer: asyncio.TimerHandle | None = None
        # connections of this server waiting for a request head, oldest first (shared through server_state)
        waiting = getattr(self.server_state, "gemid_waiting", None)
        if waiting is None:
            waiting = OrderedDict()
            self.server_state.gemid_waiting = waiting  # type: ignore[attr-defined]
        self._waiting: OrderedDict[int, GuardedHttpTools] = waiting

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()
        excess = len(self.connections) - (self.max_connections or 0)
        while excess > 0 and self._waiting:
            _key, oldest = next(iter(self._waiting.items()))
            if oldest is self:
                break
            oldest._close("the connection cap was reached")
            excess -= 1

    def _await_head(self) -> None:
        self._cancel_head_timer()
        self._waiting[id(self)] = self
        self._waiting.move_to_end(id(self))
        self._head_timer = self.loop.call_later(self.header_timeout or 10.0, self._close, "no request head in time")

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._waiting.pop(id(self), None)

    def _close(self, why: str) -> None:
        self._cancel_head_timer()
        if not self.transport.is_closing():
            log.debug("closing a connection from %s: %s", self.client, why)
            self.transport.close()

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._await_head()  # the next request's head has the same deadline (keep-alive closes idle ones sooner)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

