"""Who may call what: ONE table (`ACCESS`) mapping each route (method, path) to the access it needs and the
audit action it records, enforced by ONE middleware (`AccessMiddleware`) before any route runs, so a request
that may not be answered is refused before its body is read.

Every route must be in the table: tests/serve/test_access.py walks the app's routes and fails on any route
missing here, so a route added anywhere declares its access in this one place. An undeclared path under /v1
still needs a signed-in caller (fail closed); elsewhere the router answers it (404).

Access levels: OPEN (no credentials), ANY (any account), READ (every role; technicians only their desk's
reports), WORK (identify and readings: technician, supervisor, admin), SUPERVISE (confirmations and
corrections: supervisor, admin), LAB (figures over every desk: supervisor, admin, auditor), ADMIN (accounts
and keys), AUDIT (the audit trail: auditor, admin).

Credentials: `Authorization: Bearer KEY` (API clients), or the web page's session cookie, whose state-changing
requests must carry its CSRF token in `X-CSRF-Token`. A technician asking for a report of another desk gets
the same 404 as for a report that does not exist: ids of other desks are not confirmed.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from anyio import to_thread
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gemid.serve import accounts
from gemid.serve.accounts import Principal
from gemid.serve.audit import AuditEntry
from gemid.serve.errors import error_response
from gemid.serve.security import (
    PROBES,
    FailedSignIns,
    RateLimiter,
    add_security_headers,
    host_name,
    origin_allowed,
)

log = logging.getLogger(__name__)

OPEN, ANY, READ, WORK, SUPERVISE, ADMIN, AUDIT = "open", "any", "read", "work", "supervise", "admin", "audit"
LAB = "lab"  # figures over every desk's reports: who sees all of them
ALLOWED_ROLES: dict[str, frozenset[str]] = {
    ANY: frozenset(accounts.ROLES),
    READ: frozenset({"technician", "supervisor", "admin", "auditor"}),
    WORK: frozenset({"technician", "supervisor", "admin"}),
    SUPERVISE: frozenset({"supervisor", "admin"}),
    ADMIN: frozenset({"admin"}),
    AUDIT: frozenset({"auditor", "admin"}),
    LAB: frozenset({"supervisor", "admin", "auditor"}),
}
SESSION_COOKIE = "gemid_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# a key or session once looked up is trusted this long without asking the database again: the lookup (a
# thread hop and a query) was most of authentication's cost per request. A revoked key or ended session
# therefore stops working within this time, on every process and replica.
PRINCIPAL_CACHE_SECONDS = 1.0


@dataclass(frozen=True)
class Rule:
    access: str
    action: str | None = None  # what the audit trail records for it (None: nothing)


# (method, path template) -> the access it needs and its audit action. HEAD is checked as GET.
ACCESS: dict[tuple[str, str], Rule] = {
    # probes, the page, its assets, the docs: open
    ("GET", "/healthz"): Rule(OPEN),
    ("GET", "/readyz"): Rule(OPEN),
    ("GET", "/metrics"): Rule(OPEN),
    ("GET", "/openapi.json"): Rule(OPEN),
    ("GET", "/docs"): Rule(OPEN),
    ("GET", "/docs/oauth2-redirect"): Rule(OPEN),
    ("GET", "/redoc"): Rule(OPEN),
    ("GET", "/docs-assets/{path:path}"): Rule(OPEN),
    ("GET", "/"): Rule(OPEN),
    ("GET", "/static/{asset:path}"): Rule(OPEN),
    ("GET", "/ui-config.json"): Rule(OPEN),
    ("GET", "/r/{report_id}"): Rule(OPEN),  # redirects to the page, which then asks to sign in
    ("GET", "/r/{report_id}/print"): Rule(OPEN),
    # signing in and out (the routes say who signed in, or failed to)
    ("GET", "/signin"): Rule(OPEN, "sign_in"),
    ("POST", "/v1/session"): Rule(OPEN, "sign_in"),
    ("GET", "/v1/session"): Rule(ANY),
    ("DELETE", "/v1/session"): Rule(ANY, "sign_out"),
    # reports
    ("POST", "/v1/identify"): Rule(WORK, "create"),
    ("GET", "/v1/reports"): Rule(READ, "list"),
    ("GET", "/v1/reports/{report_id}"): Rule(READ, "view"),
    ("GET", "/v1/reports/{report_id}/revisions"): Rule(READ, "view"),
    ("GET", "/v1/reports/{report_id}/image"): Rule(READ, "view_photo"),
    ("GET", "/v1/reports/{report_id}/preview.jpg"): Rule(READ, "view_photo"),
    ("GET", "/v1/reports/{report_id}/qr.svg"): Rule(READ, "view"),
    ("POST", "/v1/reports/{report_id}/readings"): Rule(WORK, "readings"),
    ("POST", "/v1/reports/{report_id}/confirmation"): Rule(SUPERVISE, "confirmation"),
    ("GET", "/v1/parcels/{reference:path}.csv"): Rule(READ, "export"),  # before the next: both match "X.csv"
    ("GET", "/v1/parcels/{reference:path}.pdf"): Rule(READ, "export"),  # the manifest; "X.pdf" as above
    ("GET", "/v1/parcels/{reference:path}"): Rule(READ, "view_parcel"),  # a technician: its desk's stones only
    ("GET", "/v1/reports.csv"): Rule(READ, "export"),
    # signed reports: the public keys and a printed report's verification page are open (the code is an
    # unguessable token of one report; it enumerates nothing)
    ("GET", "/v1/keys"): Rule(OPEN),
    ("GET", "/v1/scale-card.pdf"): Rule(OPEN),  # the same printed sheet for everyone
    ("GET", "/verify/{code}"): Rule(OPEN),
    ("GET", "/v1/verify/{code}"): Rule(OPEN),
    # the learning loop's figures over the whole lab (accuracy of confirmed reports, drift)
    ("GET", "/v1/field"): Rule(LAB, "view_field"),
    # the audit trail
    ("GET", "/v1/audit"): Rule(AUDIT, "view_audit"),
}


def _template_regex(template: str) -> re.Pattern[str]:
    out, pos = [], 0
    for m in re.finditer(r"\{(\w+)(:path)?\}", template):
        out.append(re.escape(template[pos:m.start()]))
        out.append(f"(?P<{m.group(1)}>.*)" if m.group(2) else f"(?P<{m.group(1)}>[^/]+)")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("^" + "".join(out) + "$")


class AccessTable:
    """The table compiled for lookups: literal paths by dictionary, templates by regex (fewest parameters
    first, so /v1/reports/export would win over /v1/reports/{report_id})."""

    def __init__(self, table: dict[tuple[str, str], Rule]) -> None:
        self.exact = {k: v for k, v in table.items() if "{" not in k[1]}
        templated = sorted(((k, v) for k, v in table.items() if "{" in k[1]), key=lambda kv: kv[0][1].count("{"))
        self.patterns = [(method, _template_regex(path), rule) for (method, path), rule in templated]

    def lookup(self, method: str, path: str) -> tuple[Rule | None, dict[str, str]]:
        method = "GET" if method == "HEAD" else method
        rule = self.exact.get((method, path))
        if rule is not None:
            return rule, {}
        for m, regex, rule in self.patterns:
            if m == method and (found := regex.match(path)):
                return rule, found.groupdict()
        return None, {}


def _bearer(headers: Headers) -> str | None:
    value = headers.get("authorization")
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else ""


def _cookie(headers: Headers, name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


def _skipped(n: int) -> str:
    return f" ({n} more from this address since the last such entry)" if n else ""


class Sampled:
    """At most one record per key (an address) per `every` seconds, counting those skipped in between; the
    table forgets everything past MAX_SAMPLED keys, so a flood from many addresses cannot grow it."""

    MAX_SAMPLED = 10_000

    def __init__(self, every: float) -> None:
        self.every = every
        self._last: dict[str, tuple[float, int]] = {}

    def record(self, key: str) -> int | None:
        """None: skip this one; else record it, and this many were skipped since the last record."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last[0] < self.every:
            self._last[key] = (last[0], last[1] + 1)
            return None
        if len(self._last) >= self.MAX_SAMPLED:
            self._last.clear()
        self._last[key] = (now, 0)
        return last[1] if last is not None else 0


class AccessMiddleware:
    """The one place that decides whether a request may reach its route (see the module's docstring), adds the
    security headers to every answer, and records the audit trail's entry of each declared action."""

    def __init__(self, app: ASGIApp, service: Any, table: dict[tuple[str, str], Rule] | None = None) -> None:
        self.app = app
        self.service = service  # the FastAPI app: its state holds the store, the audit writer, the settings
        self.table = AccessTable(ACCESS if table is None else table)
        settings = service.state.settings
        self.per_key = RateLimiter(settings.rate_per_key, settings.rate_per_key * settings.rate_burst_seconds)
        self._unauthenticated = Sampled(60.0)  # refusals before sign-in (host, origin, unknown key): by kind, address
        self.per_address = RateLimiter(settings.rate_per_address,
                                       settings.rate_per_address * settings.rate_burst_seconds)
        self.failed_sign_ins = FailedSignIns()
        service.state.failed_sign_ins = self.failed_sign_ins
        self._known: dict[tuple[str, str], tuple[Principal, float]] = {}  # (kind, token hash) -> (who, until)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        https = scope.get("scheme") == "https"
        state = self.service.state
        audit: dict[str, Any] = {}

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                add_security_headers(headers, path, https)
                message = {**message, "headers": headers}
                if audit.get("action"):
                    await self._audit(scope, audit, message["status"])
            await send(message)

        async def refuse(status: int, code: str, text: str, headers: dict[str, str] | None = None) -> None:
            await error_response(status, code, text, headers)(scope, receive, secured)

        headers = Headers(scope=scope)
        allowed = state.allowed_hosts
        if path not in PROBES and allowed is not None and host_name(headers.get("host", "")) not in allowed:
            address = (scope.get("client") or ("unknown", 0))[0]
            host = headers.get("host", "")[:100]
            if (skipped := self._unauthenticated.record(f"host|{address}")) is not None:
                # on the trail (DNS rebinding tries), once a minute per address at most: a flood of them filled
                # the trail (17,596 entries in 20 s, an outside try) and spent the address's request budget
                audit.update(action="denied", params={}, unsafe=False, address=address,
                             detail=f"{method} {path[:200]} to host {host!r}: host not allowed" + _skipped(skipped))
            await refuse(400, "host_not_allowed", (f"this service does not answer to the host name '{host}'"
                                                   if host else "this request names no host (Host header)")
                         + "; add it to GEMID_ALLOWED_HOSTS")
            return
        rule, params = self.table.lookup(method, path)
        if rule is None:
            if not (path == "/v1" or path.startswith("/v1/")):
                await self.app(scope, receive, secured)
                return
            rule = Rule(ANY)  # undeclared under /v1: signed in at least, then the router says 404 or 405
        unsafe = method not in SAFE_METHODS
        origin = headers.get("origin")
        if unsafe and origin is not None and not origin_allowed(origin, allowed):
            # refused cross-site requests are on the trail, as a refused role is (an outside try found none); as
            # for every refusal before sign-in, once a minute per address (a flood wrote 5,727 entries in 10 s)
            refused_from = (scope.get("client") or ("unknown", 0))[0]
            if (skipped := self._unauthenticated.record(f"origin|{refused_from}")) is not None:
                audit.update(action="denied", params=params, unsafe=True, address=refused_from,
                             detail=f"{method} {path} from a page of {origin[:100]}: origin not allowed"
                                    + _skipped(skipped))
            await refuse(403, "origin_not_allowed", f"requests from pages of {origin[:100]} are not accepted "
                         "(GEMID_ALLOWED_HOSTS)")
            return
        address = (scope.get("client") or ("unknown", 0))[0]
        if path.startswith("/v1/") and (wait := self.per_address.take(address)):
            await self._too_many(refuse, wait, "this address")
            return
        if rule.access == OPEN:
            if rule.action:
                audit.update(action=rule.action, params=params, unsafe=unsafe, address=address)
            await self.app(scope, receive, secured)
            return
        if state.store is None:
            await refuse(503, "not_ready", "the service is starting; try again in a moment")
            return
        principal, presented = await self._authenticate(headers, state.store.engine)
        if principal is None:
            if presented and (skipped := self._unauthenticated.record(f"{presented}|{address}")) is not None:
                audit.clear()
                audit.update(action="failed_sign_in", params=params, unsafe=True, address=address,
                             detail=(f"{presented} not recognised on {method} {path}"[:400] + _skipped(skipped)))
            await refuse(401, "unauthorised", "sign in first: send `Authorization: Bearer KEY` (gemid keys "
                         "create) or sign in on the web page" if not presented else
                         f"the {presented} is not valid (revoked, expired or mistyped)",
                         {"WWW-Authenticate": 'Bearer realm="gemid"'})
            return
        if wait := self.per_key.take(principal.name):
            await self._too_many(refuse, wait, f"'{principal.name}'")
            return
        if unsafe and principal.csrf is not None:
            token = headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(token.encode(), principal.csrf.encode()):
                audit.update(action="denied", params=params, unsafe=True, address=address, principal=principal,
                             detail=f"{method} {path} without the page's CSRF token")
                await refuse(403, "csrf_failed", "this request lacks the page's CSRF token (X-CSRF-Token); "
                             "reload the page")
                return
        if rule.action:
            audit.update(action=rule.action, params=params, unsafe=unsafe, address=address)
        audit["principal"] = principal
        if principal.role not in ALLOWED_ROLES[rule.access]:
            audit.update(action="denied", params=params, unsafe=True, address=address,
                         detail=f"{method} {path} needs {rule.access}")
            await refuse(403, "forbidden", f"'{principal.name}' ({principal.role}) may not do this: "
                         f"it needs {' or '.join(sorted(ALLOWED_ROLES[rule.access]))}")
            return
        report_id = params.get("report_id")
        if report_id and principal.desk_only and not await self._same_desk(report_id, principal):
            await refuse(404, "report_not_found", f"no report with id {report_id[:64]}")
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, secured)

    async def _too_many(self, refuse: Any, wait: float, who: str) -> None:
        seconds = max(1, round(wait + 0.5))
        await refuse(429, "too_many_requests", f"too many requests from {who}; try again in {seconds} s "
                     "(GEMID_RATE_PER_KEY, GEMID_RATE_PER_ADDRESS)", {"Retry-After": str(seconds)})

    async def _authenticate(self, headers: Headers, engine: Any) -> tuple[Principal | None, str | None]:
        """(the caller, what credential it showed) from a Bearer key, else the session cookie."""
        token = _bearer(headers)
        if token is not None:
            return await self._lookup("API key", token, accounts.principal_for_key, engine), "API key"
        cookie = _cookie(headers, SESSION_COOKIE)
        if cookie:
            return await self._lookup("session", cookie, accounts.principal_for_session, engine), "session"
        return None, None

    async def _lookup(self, kind: str, token: str, find: Any, engine: Any) -> Principal | None:
        if not token or len(token) > 200:
            return None
        cache_key = (kind, accounts.token_hash(token))
        now = time.monotonic()
        known = self._known.get(cache_key)
        if known is not None and known[1] > now:
            return known[0]
        principal = await to_thread.run_sync(find, engine, token)
        if principal is not None:  # only accounts found are remembered: a new key works at once
            if len(self._known) > 10_000:
                self._known = {k: v for k, v in self._known.items() if v[1] > now}
            self._known[cache_key] = (principal, now + PRINCIPAL_CACHE_SECONDS)
        return principal

    async def _same_desk(self, report_id: str, principal: Principal) -> bool:
        store = self.service.state.store
        found = await to_thread.run_sync(store.desk_of, report_id[:64])
        return found is None or found[0] == principal.desk  # an unknown id: the route's own 404

    async def _audit(self, scope: Scope, audit: dict[str, Any], status: int) -> None:
        writer = self.service.state.audit
        if writer is None:
            return
        extra = scope.get("state") or {}
        principal: Principal | None = extra.get("principal") or audit.get("principal")
        action = extra.get("audit_action") or audit["action"]
        detail = audit.get("detail") or extra.get("audit_detail") or f"{scope['method']} {scope['path']} → {status}"
        base = {"actor": principal.name if principal else extra.get("audit_actor"),
                "actor_kind": principal.kind if principal else None,
                "desk": principal.desk if principal else None, "address": audit["address"][:64]}
        ids = extra.get("audit_reports") or [audit["params"].get("report_id")]
        entries = [AuditEntry(action=action, report_id=(rid or None) and rid[:64], detail=detail[:2000], **base)
                   for rid in ids]
        try:
            if audit["unsafe"]:
                await writer.write(*entries)  # a change is not answered before its trace is committed
            else:
                for entry in entries:
                    writer.add(entry)
        except Exception as exc:  # the database failed after the change itself was stored: said in the log
            log.error("audit entries not written for %s %s: %s", scope["method"], scope["path"], exc)


ACCESS_ERRORS = {
    "401": "no credentials, or a key or session that is not valid (revoked, expired, mistyped)",
    "403": "the account's role may not do this; or a page's request without its CSRF token, or from another origin",
    "429": "too many requests from this key or address (GEMID_RATE_PER_KEY, GEMID_RATE_PER_ADDRESS): see Retry-After",
}


def document_access(app: Any) -> None:
    """The OpenAPI says what the table enforces: each protected operation's credentials (Bearer key or the
    page's session cookie), who may call it, and the 401/403/429 answers it can give."""
    plain = app.openapi
    table = AccessTable(ACCESS)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = plain()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["bearer"] = {"type": "http", "scheme": "bearer", "description": "an API key (gemid keys create)"}
        schemes["session"] = {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                              "description": "the web page's sign-in; its unsafe requests also send X-CSRF-Token"}
        for path, operations in schema.get("paths", {}).items():
            for method, op in operations.items():
                rule, _ = table.lookup(method.upper(), path)
                access = rule.access if rule else ANY
                responses = op.setdefault("responses", {})
                wanted = ["429"] if path.startswith("/v1/") else []
                if access != OPEN:
                    op["security"] = [{"bearer": []}, {"session": []}]
                    roles = ", ".join(sorted(ALLOWED_ROLES[access]))
                    op["description"] = (op.get("description") or "") + f"\n\nWho may call it: {roles}."
                    wanted = ["401", "403", *wanted]
                for status in wanted:
                    responses.setdefault(status, {
                        "description": ACCESS_ERRORS[status],
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
