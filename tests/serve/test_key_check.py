"""The API key check (gemid.serve.accounts.principal_for_key), compiled once and run on the pool's DBAPI
connection, on SQLite and on a real PostgreSQL: it finds the same account (name, kind, role, desk) as the ORM
query it replaced, for a key of every role, refuses revoked, unknown and password accounts, and a key revoked
with `gemid keys revoke` is refused by a running service within the documented bound
(access.PRINCIPAL_CACHE_SECONDS, "within a second" in the README) even while it is used without pause."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import closing

import pytest

pytest.register_assert_rewrite("serve_support")

from fastapi.testclient import TestClient  # noqa: E402
from serve_support import make_settings  # noqa: E402
from sqlalchemy import Engine, select, text  # noqa: E402
from sqlalchemy.exc import OperationalError, ProgrammingError  # noqa: E402

from gemid.serve import accounts  # noqa: E402
from gemid.serve.access import PRINCIPAL_CACHE_SECONDS  # noqa: E402
from gemid.serve.accounts import Principal  # noqa: E402
from gemid.serve.app import create_app  # noqa: E402
from gemid.serve.models_db import AccountRow  # noqa: E402
from gemid.serve.store import ReportStore  # noqa: E402

pytest_plugins = ["serve_support", "postgres_support"]

# a key of each role, with and without a desk (technicians are bound to theirs; the others may name one)
KEYS = [("scanner desk-1", "technician", "desk-1"), ("supervisor lab", "supervisor", None),
        ("supervisor ISB", "supervisor", "ISB airport 2"), ("admin", "admin", None),
        ("auditor", "auditor", "head office")]


def orm_principal(engine: Engine, token: str) -> Principal | None:
    """The lookup as it was before it was compiled once: the ORM-annotated select through a Connection."""
    with engine.connect() as conn:
        row = conn.execute(select(AccountRow.name, AccountRow.kind, AccountRow.role, AccountRow.desk)
                           .where(AccountRow.key_sha256 == accounts.token_hash(token),
                                  AccountRow.revoked_at.is_(None))).first()
    return None if row is None else Principal(name=row[0], kind=row[1], role=row[2], desk=row[3])


@pytest.fixture
def store(database_url: str):
    opened = ReportStore.open(database_url)
    try:
        yield opened
    finally:
        opened.close()


def test_the_key_check_finds_the_same_account_as_the_orm_query(store):
    engine = store.engine
    tokens = {name: accounts.create_key(engine, name, role, desk) for name, role, desk in KEYS}
    for name, role, desk in KEYS:
        found = accounts.principal_for_key(engine, tokens[name])
        assert found == Principal(name=name, kind="key", role=role, desk=desk), found
        assert found == orm_principal(engine, tokens[name])
        assert found.desk_only == (role == "technician")
    accounts.add_user(engine, "amina", "technician", "desk-1", "a long secret")  # no key: never found by one
    for token in ("", "x" * 43, accounts.token_hash(tokens["admin"]), tokens["admin"] + "x"):
        assert accounts.principal_for_key(engine, token) is None
        assert orm_principal(engine, token) is None
    accounts.revoke(engine, "supervisor ISB", "key")
    assert accounts.principal_for_key(engine, tokens["supervisor ISB"]) is None
    assert orm_principal(engine, tokens["supervisor ISB"]) is None
    assert accounts.principal_for_key(engine, tokens["supervisor lab"]).name == "supervisor lab"


def test_a_database_error_is_sqlalchemys_and_the_pool_recovers(store):
    token = accounts.create_key(store.engine, "scanner", "technician", "desk-1")
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE accounts RENAME TO accounts_away"))
    with pytest.raises((OperationalError, ProgrammingError)):  # as every other query of the store raises
        accounts.principal_for_key(store.engine, token)
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE accounts_away RENAME TO accounts"))
    assert accounts.principal_for_key(store.engine, token).name == "scanner"


def test_each_role_signs_in_with_its_key_as_itself(database_url, tmp_path, tiny_bundle, identifier):
    settings = make_settings(tmp_path / "data", tiny_bundle, db_url=database_url,
                             signing_key=tmp_path / "signing-key.pem")
    with closing(ReportStore.open(settings.database_url)) as opened:
        tokens = {name: accounts.create_key(opened.engine, name, role, desk) for name, role, desk in KEYS}
    with TestClient(create_app(settings, identifier=identifier), base_url="http://localhost") as c:
        for name, role, desk in KEYS:
            r = c.get("/v1/session", headers={"Authorization": f"Bearer {tokens[name]}"})
            assert r.status_code == 200, r.text
            assert r.json() == {"name": name, "kind": "key", "role": role, "desk": desk, "csrf": None}


def test_a_key_revoked_with_the_command_is_refused_within_the_bound(database_url, tmp_path, tiny_bundle,
                                                                    identifier):
    data_dir, signing_key = tmp_path / "data", tmp_path / "signing-key.pem"
    settings = make_settings(data_dir, tiny_bundle, db_url=database_url, signing_key=signing_key)
    with closing(ReportStore.open(settings.database_url)) as opened:
        token = accounts.create_key(opened.engine, "desk-2 scanner", "technician", "desk-2")
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "GEMID_DATA_DIR": str(data_dir),
           "GEMID_DB_URL": database_url, "GEMID_SIGNING_KEY": str(signing_key)}
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings, identifier=identifier), base_url="http://localhost") as c:
        assert c.get("/v1/session", headers=headers).status_code == 200  # looked up: now remembered
        revoking = subprocess.Popen([sys.executable, "-m", "gemid.cli", "keys", "revoke", "desk-2 scanner"],
                                    env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while revoking.poll() is None:  # used without pause while the command runs: the key stays remembered
            assert c.get("/v1/session", headers=headers).status_code in (200, 401)
            time.sleep(0.02)
        revoked_by = time.monotonic()  # the revocation was committed before the command exited
        out, err = revoking.communicate()
        assert revoking.returncode == 0 and "revoked key desk-2 scanner" in out, err
        answers: list[tuple[float, int]] = []
        while time.monotonic() < revoked_by + PRINCIPAL_CACHE_SECONDS + 1.5:
            r = c.get("/v1/session", headers=headers)
            answers.append((time.monotonic() - revoked_by, r.status_code))
            time.sleep(0.02)
    refused = [at for at, status in answers if status == 401]
    assert refused, f"still accepted {answers[-1][0]:.2f} s after `gemid keys revoke`"
    # the bound, plus what one request takes on a busy machine
    assert refused[0] <= PRINCIPAL_CACHE_SECONDS + 0.3, f"first refused {refused[0]:.2f} s after the revocation"
    assert all(status == 401 for at, status in answers if at >= refused[0]), answers  # and refused from then on
    assert r.json()["error"]["code"] == "unauthorised"
