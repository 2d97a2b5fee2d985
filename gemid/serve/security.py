"""What every answer carries and what every request must show before anything else looks at it: the
security headers, the allowed `Host` and `Origin` names, and the request rate per key and per address.

- Headers: a Content-Security-Policy (the page's own, or one that lets the offline Swagger UI / ReDoc run
  their inline start-up script), `nosniff`, `frame-ancestors 'none'` and a Referrer-Policy on every route,
  JSON and /docs included; Strict-Transport-Security under TLS.
- Host: a name not in GEMID_ALLOWED_HOSTS is refused (DNS rebinding: a hostile site whose name resolves to
  127.0.0.1 would otherwise talk to the desk's service as if it were the page). The probes (/healthz,
  /readyz, /metrics) are exempt: orchestrators call them by IP, and they reveal nothing.
- Origin: a state-changing request from a page of another origin is refused, whatever it authenticates with.
- Rates: token buckets per key and per address, in this process (a replica counts its own).
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

PAGE_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI and ReDoc (fastapi-offline, local assets) start with an inline script and inline styles, and
# ReDoc runs a blob: worker; still nothing from another origin, and no framing
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),  # frame-ancestors for browsers that predate it
]
HSTS = (b"strict-transport-security", b"max-age=31536000")
PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")


def add_security_headers(headers: list[tuple[bytes, bytes]], path: str, https: bool) -> None:
    """The security headers on an answer's raw header list; a route's own CSP (the page's) is kept."""
    present = {name.lower() for name, _ in headers}
    for name, value in SECURITY_HEADERS:
        if name not in present:
            headers.append((name, value))
    if b"content-security-policy" not in present:
        headers.append((b"content-security-policy", (DOCS_CSP if path in DOCS_PATHS else PAGE_CSP).encode()))
    if https and HSTS[0] not in present:
        headers.append(HSTS)


def host_name(host: str) -> str:
    """'Example.org:8000' → 'example.org'; '[::1]:8000' → '::1'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def allowed_hosts(configured: str | None, listen_host: str | None, public_url: str | None) -> frozenset[str] | None:
    """The names this service answers to; None means any (`GEMID_ALLOWED_HOSTS=*`, e.g. behind a proxy that
    checks them itself)."""
    if configured:
        names = [n.strip() for n in configured.split(",") if n.strip()]
        if "*" in names:
            return None
        return frozenset(host_name(n) for n in names)
    names = set(DEFAULT_HOSTS)
    if listen_host and listen_host not in ("0.0.0.0", "::"):
        names.add(host_name(listen_host))
    elif listen_host:  # every interface: this machine's own names too, as other devices will type them
        import socket

        name = socket.gethostname().lower()
        names.update({name, f"{name}.local"})
    if public_url:
        names.add(host_name(urlsplit(public_url).netloc))
    return frozenset(names)


def origin_allowed(origin: str, allowed: frozenset[str] | None) -> bool:
    if allowed is None:
        return True
    if origin == "null":
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and host_name(parts.netloc) in allowed


class RateLimiter:
    """Token buckets: `rate` requests a second for each key, with bursts of up to `burst`. Memory stays
    bounded: buckets full again (idle for burst/rate seconds) are dropped when there are too many."""

    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str, now: float | None = None) -> float:
        """0 when the request may go ahead; else the seconds to wait for the next token."""
        now = time.monotonic() if now is None else now
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > self.max_keys:
            self._prune(now)
        return 0.0

    def _prune(self, now: float) -> None:
        full = self.burst / self.rate
        for key in [k for k, (_t, at) in self._buckets.items() if now - at > full]:
            del self._buckets[key]


class FailedSignIns:
    """A growing delay after failed sign-ins, per name and per address: the first few are free, then each
    failure doubles the wait (1 s, 2 s, 4 s ... up to 15 minutes). A success clears the name's count."""

    FREE = 3
    MAX_DELAY = 900.0

    def __init__(self) -> None:
        self._failures: dict[str, tuple[int, float]] = {}  # key -> (failures, until)

    def wait(self, *keys: str, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        return max([0.0] + [self._failures.get(k, (0, 0.0))[1] - now for k in keys])

    def failed(self, *keys: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for key in keys:
            n = self._failures.get(key, (0, 0.0))[0] + 1
            delay = 0.0 if n <= self.FREE else min(self.MAX_DELAY, 2.0 ** (n - self.FREE - 1))
            self._failures[key] = (n, now + delay)
        if len(self._failures) > 100_000:
            self._failures = {k: v for k, v in self._failures.items() if v[1] > now}

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)
