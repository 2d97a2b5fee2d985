"""Who may call what (gemid.serve.access): every route of the app is in the one access table, and every role
gets 401, 403 or its answer on every endpoint; technicians see only their desk; the page's session needs its
CSRF token; other origins and host names are refused; security headers on every answer; rates are bounded."""

from __future__ import annotations

import time

import pytest

pytest.register_assert_rewrite("serve_support")

from fastapi.routing import _IncludedRouter  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from serve_support import create_key, make_settings, stone, upload  # noqa: E402
from starlette.routing import Mount, Route  # noqa: E402

from gemid.serve import accounts  # noqa: E402
from gemid.serve.access import ACCESS, ALLOWED_ROLES, OPEN, PRINCIPAL_CACHE_SECONDS  # noqa: E402
from gemid.serve.app import create_app  # noqa: E402
from gemid.serve.store import ReportStore  # noqa: E402

pytest_plugins = ["serve_support"]

ROLES = ("technician", "supervisor", "admin", "auditor")


def app_routes(app) -> set[tuple[str, str]]:
    """(method, path template) of every route the app serves, through included routers and mounts."""
    found: set[tuple[str, str]] = set()

    def add(methods, path: str) -> None:
        for method in methods or ("GET",):
            if method != "HEAD":
                found.add((method, path))

    for route in app.routes:
        if isinstance(route, _IncludedRouter):
            for ctx in route.effective_route_contexts():
                add(ctx.methods, ctx.path)
        elif isinstance(route, Mount):
            add(("GET",), route.path + "/{path:path}")
        elif isinstance(route, Route) or hasattr(route, "methods"):
            add(route.methods, route.path)
        else:
            raise AssertionError(f"a route of an unknown kind: {route!r}")
    return found


def test_every_route_is_in_the_access_table_and_every_entry_is_a_route(settings, identifier):
    routes = app_routes(create_app(settings, identifier=identifier))
    undeclared = sorted(routes - set(ACCESS))
    assert not undeclared, f"routes without an entry in gemid.serve.access.ACCESS (declare their role): {undeclared}"
    stale = sorted(set(ACCESS) - routes)
    assert not stale, f"ACCESS entries for routes that do not exist: {stale}"
    assert ("GET", "/v1/reports/{report_id}") in routes and len(routes) >= 25


@pytest.fixture
def keyed(settings, identifier):
    """A started app, one key per role (technicians at desk-1), and a report issued at desk-1."""
    keys = {role: create_key(settings, role, "desk-1" if role == "technician" else None) for role in ROLES}
    with TestClient(create_app(settings, identifier=identifier), base_url="http://localhost") as c:
        r = c.post("/v1/identify", files=[upload("ruby.png", stone("Ruby"))], headers=bearer(keys["technician"]))
        assert r.status_code == 200, r.text
        yield c, keys, r.json()["reports"][0]["report_id"]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# what each route is sent when allowed (routes not listed are sent nothing more: an answer that is neither 401
# nor 403 is what this test checks)
BODIES = {
    ("POST", "/v1/identify"): {"files": [upload("e.png", stone("Emerald"))]},
    ("POST", "/v1/reports/{report_id}/readings"): {"json": {"ri": 1.765}},
    ("POST", "/v1/reports/{report_id}/confirmation"): {"json": {"label": "Ruby", "method": "Raman"}},
    ("POST", "/v1/session"): {"json": {"name": "nobody", "password": "wrong"}},
}


def _url(path: str, report_id: str) -> str:
    return (path.replace("{report_id}", report_id).replace("{asset:path}", "app.css")
            .replace("{path:path}", "swagger-ui.css").replace("{code}", "x" * 43).replace("{reference:path}", "LOT-1"))


def _refused_by_access(r) -> str | None:
    if r.status_code in (401, 403) and r.headers.get("content-type", "").startswith("application/json"):
        code = r.json()["error"]["code"]
        return code if code in ("unauthorised", "forbidden") else None
    return None


def test_every_role_on_every_endpoint(keyed):
    c, keys, rid = keyed
    for (method, path), rule in sorted(ACCESS.items()):
        url = _url(path, rid)
        body = BODIES.get((method, path), {})
        if rule.access == OPEN:
            r = c.request(method, url, **body)  # the sign-in routes' own 401 is a wrong password, not the table's
            assert _refused_by_access(r) is None, (method, path, r.text)
            continue
        r = c.request(method, url, **body)
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.json()["error"]["code"] == "unauthorised" and r.headers["www-authenticate"].startswith("Bearer")
        r = c.request(method, url, headers=bearer("not-a-key-" + "x" * 33), **body)
        assert r.status_code == 401 and "not valid" in r.json()["error"]["message"], (method, path)
        for role in ROLES:
            r = c.request(method, url, headers=bearer(keys[role]), **body)
            if role in ALLOWED_ROLES[rule.access]:
                assert r.status_code not in (401, 403), (method, path, role, r.text)
            else:
                assert r.status_code == 403, (method, path, role, r.status_code)
                error = r.json()["error"]
                assert error["code"] == "forbidden" and role in error["message"], error


def test_a_technician_sees_only_its_own_desk(keyed, settings):
    c, keys, rid = keyed
    other = create_key(settings, "technician", "desk-2")
    assert c.get("/v1/reports", headers=bearer(keys["technician"])).json()["total"] == 1
    assert c.get("/v1/reports", headers=bearer(other)).json()["total"] == 0
    assert c.get("/v1/reports", headers=bearer(keys["supervisor"])).json()["total"] == 1
    for tail in ("", "/revisions", "/image", "/preview.jpg", "/qr.svg"):
        r = c.get(f"/v1/reports/{rid}{tail}", headers=bearer(other))
        assert r.status_code == 404 and r.json()["error"]["code"] == "report_not_found", tail
        assert c.get(f"/v1/reports/{rid}{tail}", headers=bearer(keys["auditor"])).status_code == 200
    r = c.post(f"/v1/reports/{rid}/readings", json={"ri": 1.76}, headers=bearer(other))
    assert r.status_code == 404
    report = c.get(f"/v1/reports/{rid}", headers=bearer(keys["technician"])).json()
    assert report["issued_by"]["desk"] == "desk-1" and report["issued_by"]["name"].startswith("test-technician")
    r = c.post(f"/v1/reports/{rid}/readings", json={"ri": 1.76}, headers=bearer(keys["admin"]))
    assert r.status_code == 201 and r.json()["issued_by"]["desk"] is None  # each revision names its maker
    assert c.get(f"/v1/reports/{rid}?revision=1", headers=bearer(keys["admin"])).json()["issued_by"] == report["issued_by"]


def test_a_duplicate_is_only_found_at_the_same_desk(keyed, settings):
    c, keys, _rid = keyed
    photo = [upload("lot.png", stone("Sapphire Blue"))]
    first = c.post("/v1/identify", files=photo, data={"reference": "LOT-9"}, headers=bearer(keys["technician"]))
    again = c.post("/v1/identify", files=photo, data={"reference": "LOT-9"}, headers=bearer(keys["technician"]))
    assert [n["code"] for n in again.json()["notices"]] == ["duplicate"]  # the same desk: the stored report
    other = c.post("/v1/identify", files=photo, data={"reference": "LOT-9"},
                   headers=bearer(create_key(settings, "technician", "desk-2")))
    assert other.status_code == 200 and not other.json().get("notices")  # another desk: its own new report
    assert other.json()["reports"][0]["report_id"] != first.json()["reports"][0]["report_id"]
    assert other.json()["reports"][0]["issued_by"]["desk"] == "desk-2"


def test_a_revoked_key_stops_working(keyed, settings):
    c, _keys, _rid = keyed
    key = create_key(settings, "supervisor", name="to-revoke")
    assert c.get("/v1/reports", headers=bearer(key)).status_code == 200
    store = ReportStore.open(settings.database_url)
    try:
        accounts.revoke(store.engine, "to-revoke", "key")
    finally:
        store.close()
    time.sleep(PRINCIPAL_CACHE_SECONDS + 0.1)  # a key looked up is trusted this long without asking again
    assert c.get("/v1/reports", headers=bearer(key)).status_code == 401


def _user(settings, name: str, role: str, password: str | None = "correct horse", desk: str | None = None) -> None:
    store = ReportStore.open(settings.database_url)
    try:
        accounts.add_user(store.engine, name, role, desk, password)
    finally:
        store.close()


def test_the_page_session_needs_its_csrf_token_and_the_right_origin(keyed, settings):
    c, keys, rid = keyed
    _user(settings, "sana", "supervisor")
    r = c.post("/v1/session", json={"name": "sana", "password": "correct horse"})
    assert r.status_code == 200, r.text
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie  # plain HTTP here
    csrf = r.json()["csrf"]
    assert r.json()["role"] == "supervisor" and len(csrf) >= 43
    assert c.get("/v1/session").json()["name"] == "sana"  # the cookie alone signs reads
    assert c.get("/v1/reports").status_code == 200
    r = c.post(f"/v1/reports/{rid}/readings", json={"ri": 1.765})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
    r = c.post(f"/v1/reports/{rid}/readings", json={"ri": 1.765}, headers={"X-CSRF-Token": "x" * 43})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
    r = c.post(f"/v1/reports/{rid}/readings", json={"ri": 1.765},
               headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "origin_not_allowed"
    # both refusals are on the audit trail (an outside try found neither there)
    trail = c.get("/v1/audit", headers=bearer(keys["admin"])).json()["entries"]
    denied = [e["detail"] for e in trail if e["action"] == "denied"]
    assert sum("CSRF" in d for d in denied) == 2 and any("evil.example" in d for d in denied), denied
    assert [e["actor"] for e in trail if e["action"] == "denied" and "CSRF" in e["detail"]] == ["sana", "sana"]
    r = c.post(f"/v1/reports/{rid}/readings", json={"ri": 1.765},
               headers={"X-CSRF-Token": csrf, "Origin": "http://localhost:8000"})
    assert r.status_code == 201, r.text
    assert r.json()["issued_by"] == {"name": "sana", "desk": None}
    assert c.delete("/v1/session", headers={"X-CSRF-Token": csrf}).status_code == 204
    c.cookies.clear()
    assert c.get("/v1/reports").status_code == 401


def test_host_names_not_configured_are_refused_but_probes_answer(keyed):
    c, keys, _rid = keyed
    for host in ("evil.example", "localhost.evil.example", "127.0.0.2"):
        r = c.get("/v1/reports", headers={"Host": host, **bearer(keys["admin"])})
        assert r.status_code == 400 and r.json()["error"]["code"] == "host_not_allowed", host
        assert c.get("/", headers={"Host": host}).status_code == 400
    for host in ("localhost:8000", "127.0.0.1", "[::1]:9000"):
        assert c.get("/v1/reports", headers={"Host": host, **bearer(keys["admin"])}).status_code == 200, host
    assert c.get("/healthz", headers={"Host": "10.1.2.3:8000"}).status_code == 200
    time.sleep(0.3)  # refusals are queued like views: let the writer commit them
    trail = c.get("/v1/audit", params={"action": "denied"}, headers=bearer(keys["admin"])).json()["entries"]
    refused = [e["detail"] for e in trail if "host not allowed" in (e["detail"] or "")]
    # rebinding tries are on the trail, once a minute per address (a flood filled it, an outside try found)
    assert len(refused) == 1 and "'evil.example'" in refused[0], refused
    assert "names no host" in c.get("/v1/reports", headers={"Host": ""}).json()["error"]["message"]


def test_allowed_hosts_from_the_settings(tmp_path, tiny_bundle, identifier):
    settings = make_settings(tmp_path / "d", tiny_bundle, allowed_hosts="lab-pc.local, gemid.example")
    with TestClient(create_app(settings, identifier=identifier), base_url="http://gemid.example") as c:
        assert c.get("/").status_code == 200
        assert c.get("/", headers={"Host": "localhost"}).status_code == 400
        assert c.get("/", headers={"Host": "lab-pc.local:8000"}).status_code == 200


def test_security_headers_on_every_kind_of_answer(keyed):
    c, keys, rid = keyed
    for url in ("/", "/docs", "/redoc", "/openapi.json", "/static/app.css", "/healthz", "/v1/reports",
                f"/v1/reports/{rid}", f"/v1/reports/{rid}/image", "/no-such-page", "/v1/no-such"):
        r = c.get(url, headers=bearer(keys["admin"]))
        assert r.headers["x-content-type-options"] == "nosniff", url
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], url
        assert r.headers["referrer-policy"] == "same-origin", url
    assert "'unsafe-inline'" not in c.get("/").headers["content-security-policy"]
    assert "'unsafe-inline'" not in c.get("/v1/reports").headers["content-security-policy"]


def test_the_one_time_sign_in_link_works_once(keyed, settings):
    c, _keys, _rid = keyed
    _user(settings, "amir", "technician", password=None, desk="desk-1")
    store = ReportStore.open(settings.database_url)
    try:
        token = accounts.sign_in_link_token(store.engine, "amir")
    finally:
        store.close()
    r = c.get(f"/signin?token={token}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "./"
    assert "samesite=strict" in r.headers["set-cookie"].lower()
    me = c.get("/v1/session").json()
    assert (me["name"], me["role"], me["desk"]) == ("amir", "technician", "desk-1")
    c.cookies.clear()
    again = c.get(f"/signin?token={token}", follow_redirects=False)
    assert again.status_code == 401 and "used already" in again.text and "set-cookie" not in again.headers
    assert c.post("/v1/session", json={"name": "amir", "password": ""}).status_code == 422  # no password set


def test_a_new_password_ends_sessions_and_links_and_a_new_link_replaces_the_old(keyed, settings):
    # an outside try stayed signed in after a password reset, and a link printed before it still signed in
    c, _keys, _rid = keyed
    _user(settings, "saima", "technician", password="first pass 2026", desk="desk-1")
    store = ReportStore.open(settings.database_url)
    try:
        assert c.post("/v1/session", json={"name": "saima", "password": "first pass 2026"}).status_code == 200
        assert c.get("/v1/session").json()["name"] == "saima"
        old_link = accounts.sign_in_link_token(store.engine, "saima")
        link = accounts.sign_in_link_token(store.engine, "saima")  # the newest link alone stands
        assert c.get(f"/signin?token={old_link}", follow_redirects=False).status_code == 401
        accounts.set_password(store.engine, "saima", "second pass 2026")
        time.sleep(1.2)  # past the session cache
        assert c.get("/v1/session").status_code == 401
        c.cookies.clear()
        assert c.get(f"/signin?token={link}", follow_redirects=False).status_code == 401
        fresh = accounts.sign_in_link_token(store.engine, "saima")
        assert c.get(f"/signin?token={fresh}", follow_redirects=False).status_code == 303
    finally:
        store.close()


def test_a_disabled_user_is_said_to_be_disabled_and_can_be_enabled_again(keyed, settings):
    # an outside try was told "no user named 'tech2'" by `users link` and `users password` after disabling it,
    # and "exists already" by `users add`; nothing could enable it again
    c, _keys, _rid = keyed
    _user(settings, "omar", "technician", password="omar pass 2026", desk="desk-1")
    store = ReportStore.open(settings.database_url)
    try:
        accounts.revoke(store.engine, "omar", "user")
        for attempt in (lambda: accounts.set_password(store.engine, "omar", "new pass 2026"),
                        lambda: accounts.sign_in_link_token(store.engine, "omar")):
            with pytest.raises(accounts.AccountError, match="is disabled: `gemid users enable omar`"):
                attempt()
        assert c.post("/v1/session", json={"name": "omar", "password": "omar pass 2026"}).status_code == 401
        accounts.enable(store.engine, "omar")
        with pytest.raises(accounts.AccountError, match="no disabled user"):
            accounts.enable(store.engine, "omar")
        assert c.post("/v1/session", json={"name": "omar", "password": "omar pass 2026"}).status_code == 200
    finally:
        store.close()


def test_failed_sign_ins_wait_longer_each_time(keyed, settings):
    c, _keys, _rid = keyed
    _user(settings, "bilal", "technician", desk="desk-1")
    codes = [c.post("/v1/session", json={"name": "bilal", "password": f"guess {i}"}).status_code for i in range(4)]
    assert codes == [401, 401, 401, 401]
    r = c.post("/v1/session", json={"name": "bilal", "password": "correct horse"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["code"] == "too_many_sign_ins"


def test_past_the_rate_a_key_gets_429_with_retry_after(tmp_path, tiny_bundle, identifier):
    settings = make_settings(tmp_path / "d", tiny_bundle, rate_per_key=2, rate_burst_seconds=1.5)
    key = create_key(settings, "auditor")
    with TestClient(create_app(settings, identifier=identifier), base_url="http://localhost") as c:
        codes = [c.get("/v1/reports", headers=bearer(key)).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and 429 in codes[3:], codes
        r = c.get("/v1/reports", headers=bearer(key))
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["code"] == "too_many_requests"
        assert c.get("/healthz").status_code == 200  # the probes are not the key's


def _self_signed(tmp_path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key (PEM files), as a lab's own CA would issue."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    return str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")


@pytest.mark.slow
def test_serve_over_https_with_a_secure_cookie_and_hsts(tmp_path, tiny_bundle):
    import ssl

    import httpx2
    from serve_process import cli_key, free_port, start, stop

    cert, key_file = _self_signed(tmp_path)
    port = free_port()
    proc = start(tmp_path / "data", tiny_bundle, port, "--certfile", cert, "--keyfile", key_file)
    base = f"https://127.0.0.1:{port}"
    trusted = ssl.create_default_context(cafile=cert)
    try:
        deadline = time.monotonic() + 60
        while True:  # wait_ready speaks plain HTTP; this server answers only TLS
            try:
                if httpx2.get(f"{base}/readyz", verify=trusted, timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "gemid serve --certfile did not start"
                time.sleep(0.3)
        with httpx2.Client(base_url=base, verify=trusted) as c:
            admin = cli_key(tmp_path / "data")
            r = c.get("/v1/reports", headers={"Authorization": f"Bearer {admin}"})
            assert r.status_code == 200 and r.headers["strict-transport-security"].startswith("max-age=")
            store = ReportStore.open(f"sqlite:///{tmp_path / 'data' / 'gemid.db'}")
            try:
                accounts.add_user(store.engine, "hina", "technician", "desk-1", "a long secret")
            finally:
                store.close()
            r = c.post("/v1/session", json={"name": "hina", "password": "a long secret"})
            assert r.status_code == 200 and "secure" in r.headers["set-cookie"].lower()
    finally:
        stop(proc)
    out = proc.stdout.read()
    assert f"open https://127.0.0.1:{port}/" in out and "/signin?token=" in out  # the first admin's link too
