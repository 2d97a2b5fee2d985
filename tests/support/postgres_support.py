"""A throwaway PostgreSQL server for the store's tests: `initdb` in a temporary folder, listening only on a
Unix socket there, stopped and deleted afterwards. GEMID_DB_URL's PostgreSQL path is then tested on a real
server, not assumed from SQLAlchemy's portability.

Needs PostgreSQL's server programs (`initdb`, `pg_ctl`: on PATH or under /usr/lib/postgresql/*/bin) and the
`postgres` extra (psycopg); where either is missing the tests that ask for it skip and say why. PostgreSQL
refuses to run as root, so as root the server runs as the unprivileged `nobody` (via setpriv).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def _server_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(candidates[-1]).parent if candidates else None


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", *cmd]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """Base URL (no database name) of a running throwaway server: postgresql+psycopg://gemid@/{db}?host=…"""
    pytest.importorskip("psycopg", reason="the postgres extra (psycopg) is not installed")
    bindir = _server_bin()
    if bindir is None:
        pytest.skip("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
    root = Path(tempfile.mkdtemp(prefix="gemid-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        for p in (root, sock):
            os.chown(p, nobody.pw_uid, nobody.pw_gid)
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    run = {"check": True, "capture_output": True, "text": True, "env": env, "cwd": root}
    options = f"-k {sock} -c listen_addresses='' -c fsync=off -c full_page_writes=off"
    try:
        subprocess.run(_as_server_user([str(bindir / "initdb"), "-D", str(data), "-U", "gemid", "-A", "trust",
                                        "-E", "UTF8", "--no-sync"]), **run, timeout=120)
        subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                                        str(root / "server.log"), "-w", "-t", "60", "start"]), **run, timeout=90)
    except subprocess.CalledProcessError as exc:  # say why: PostgreSQL is installed, so this is a real failure
        log = (root / "server.log").read_text() if (root / "server.log").is_file() else ""
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"the test PostgreSQL server did not start: {exc.cmd[-1]} exited {exc.returncode}\n"
                    f"{exc.stdout}\n{exc.stderr}\n{log}")
    try:
        yield f"postgresql+psycopg://gemid@/{{db}}?host={sock}"
    finally:
        subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True, env=env, cwd=root, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A new, empty database on the throwaway server, for one test."""
    return new_database(postgres_server)


def new_database(postgres_server: str) -> str:
    """Create another empty database on the throwaway server; its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    host = postgres_server.rsplit("host=", 1)[1]
    with psycopg.connect(dbname="postgres", user="gemid", host=host, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres_server.format(db=name)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path: Path) -> str:
    """An empty database of each kind the service supports: a SQLite file, and a database on the server above."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gemid.db'}"
    return request.getfixturevalue("postgres_url")
