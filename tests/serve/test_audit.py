"""The audit trail (gemid.serve.audit) on SQLite and on a real PostgreSQL: an entry for each action with who,
desk, what, which report and from where; `gemid audit verify` finds an edited, deleted or truncated entry;
`gemid audit export` writes JSON lines; the keys and users commands work on the store of GEMID_* settings."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

pytest.register_assert_rewrite("serve_support")

from fastapi.testclient import TestClient  # noqa: E402
from serve_support import make_settings, stone, upload  # noqa: E402
from sqlalchemy import delete, insert, text, update  # noqa: E402

from gemid import signing  # noqa: E402
from gemid.serve import audit  # noqa: E402
from gemid.serve.app import create_app  # noqa: E402
from gemid.serve.keys import open_signer  # noqa: E402
from gemid.serve.models_db import AuditHeadRow, AuditRow, AuditSealRow  # noqa: E402
from gemid.serve.settings import Settings  # noqa: E402
from gemid.serve.store import ReportStore  # noqa: E402

pytest_plugins = ["serve_support", "postgres_support"]


def gemid(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gemid.cli", *args], capture_output=True, text=True, timeout=120,
                          input=stdin, env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", **env})


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """The GEMID_* settings of one store, SQLite file or PostgreSQL database, as the commands read them."""
    return {"GEMID_DATA_DIR": str(tmp_path / "data"), "GEMID_DB_URL": database_url,
            "GEMID_SIGNING_KEY": str(tmp_path / "signing-key.pem")}  # PostgreSQL's replicas share one key file


def test_each_action_is_recorded_and_the_chain_verifies(env, tmp_path, tiny_bundle, identifier):
    made = gemid(env, "keys", "create", "--name", "desk-1 scanner", "--role", "technician", "--desk", "desk-1")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    assert len(key) >= 43 and " " not in key  # 256 bits, alone on the last line
    supervisor = gemid(env, "keys", "create", "--name", "sup", "--role", "supervisor").stdout.strip().splitlines()[-1]
    added = gemid(env, "users", "add", "nadia", "--role", "auditor", "--password-stdin", stdin="a long secret\n")
    assert added.returncode == 0, added.stderr
    assert gemid(env, "keys", "create", "--name", "sup", "--role", "admin").returncode == 1  # the name is taken
    assert "unknown role" in gemid(env, "keys", "create", "--name", "x", "--role", "boss").stderr
    # a technician without a desk would see every report made without one: refused, saying what to give
    deskless = gemid(env, "keys", "create", "--name", "x", "--role", "technician")
    assert deskless.returncode == 1 and "give --desk" in deskless.stderr, deskless.stderr

    settings = make_settings(Path(env["GEMID_DATA_DIR"]), tiny_bundle, db_url=env["GEMID_DB_URL"],
                             signing_key=Path(env["GEMID_SIGNING_KEY"]))
    tech, sup = {"Authorization": f"Bearer {key}"}, {"Authorization": f"Bearer {supervisor}"}
    with TestClient(create_app(settings, identifier=identifier), base_url="http://localhost") as c:
        r = c.post("/v1/identify", files=[upload("a.png", stone("Ruby")), upload("b.png", stone("Emerald"))],
                   headers=tech)
        ids = [e["report_id"] for e in r.json()["reports"]]
        assert c.get(f"/v1/reports/{ids[0]}", headers=tech).status_code == 200
        assert c.get(f"/v1/reports/{ids[0]}/image", headers=tech).status_code == 200
        assert c.post(f"/v1/reports/{ids[0]}/readings", json={"ri": 1.765}, headers=tech).status_code == 201
        assert c.post(f"/v1/reports/{ids[1]}/confirmation", json={"label": "Emerald", "method": "Raman"},
                      headers=sup).status_code == 201
        assert c.post("/v1/session", json={"name": "nadia", "password": "wrong"}).status_code == 401
        assert c.post("/v1/session", json={"name": "nadia", "password": "a long secret"}).status_code == 200
        assert c.get("/v1/audit", headers=tech).status_code == 403
        assert c.get("/v1/reports", headers={"Authorization": "Bearer forged-key"}).status_code == 401
        entries = c.get("/v1/audit").json()["entries"]  # nadia, the auditor, signed in with the cookie
    assert gemid(env, "keys", "revoke", "sup").returncode == 0
    assert "no active key" in gemid(env, "keys", "revoke", "sup").stderr

    def one(action: str, **where) -> dict:
        found = [e for e in entries if e["action"] == action and all(e[k] == v for k, v in where.items())]
        assert len(found) == 1, (action, where, [(e["action"], e["report_id"]) for e in entries])
        return found[0]

    for rid in ids:
        created = one("create", report_id=rid)
        assert (created["actor"], created["actor_kind"], created["desk"]) == ("desk-1 scanner", "key", "desk-1")
        assert created["address"] == "testclient" and "POST /v1/identify" in created["detail"]
    assert one("view", report_id=ids[0])["actor"] == "desk-1 scanner"
    assert one("view_photo", report_id=ids[0])["desk"] == "desk-1"
    assert one("readings", report_id=ids[0])["actor"] == "desk-1 scanner"
    assert one("confirmation", report_id=ids[1])["actor"] == "sup"
    assert one("sign_in")["actor"] == "nadia"
    failed = [e for e in entries if e["action"] == "failed_sign_in"]
    assert {e["actor"] for e in failed} >= {"nadia"} and any("API key" in (e["detail"] or "") for e in failed)
    assert one("denied")["actor"] == "desk-1 scanner"
    assert {e["action"] for e in entries} >= {"key_created", "user_added"}
    seqs = [e["seq"] for e in entries]
    assert seqs == list(range(1, len(seqs) + 1))
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(entries, entries[1:], strict=False))

    # a key rotation and a backup are on the trail too (an outside try found neither there)
    assert gemid(env, "keys", "rotate-signing").returncode == 0
    backed = gemid(env, "backup", str(tmp_path / "backup"))
    assert backed.returncode == 0, backed.stderr
    verified = gemid(env, "audit", "verify")
    assert verified.returncode == 0 and "intact" in verified.stdout, verified.stderr
    out = tmp_path / "trail.jsonl"
    assert gemid(env, "audit", "export", "--out", str(out)).returncode == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[: len(entries)] == entries
    assert [e["action"] for e in lines[-3:]] == ["key_revoked", "signing_key_rotated", "store_backed_up"]
    # the service sealed its entries, and the console commands after it could read the key file: all sealed,
    # by the first key and, after the rotation, the new one
    assert f"sealed through entry {len(lines)} by key" in verified.stdout, verified.stdout
    assert len({e["seal"]["key_id"] for e in lines if e["seal"]}) == 2
    assert all(e["seal"] is None or e["seal"]["algorithm"] == "Ed25519" for e in lines) and lines[-1]["seal"]


def _tamper(env: dict[str, str], change) -> subprocess.CompletedProcess:
    store = ReportStore.open(env["GEMID_DB_URL"].replace("postgresql://", "postgresql+psycopg://"))
    try:
        with store.engine.begin() as conn:
            change(conn)
    finally:
        store.close()
    return gemid(env, "audit", "verify")


def test_an_edited_deleted_or_truncated_entry_breaks_the_chain(env):
    for i in range(5):
        assert gemid(env, "keys", "create", "--name", f"k{i}", "--role", "technician", "--desk", "d1").returncode == 0
    assert gemid(env, "audit", "verify").returncode == 0

    edited = _tamper(env, lambda c: c.execute(update(AuditRow).where(AuditRow.seq == 3).values(actor="someone else")))
    assert edited.returncode == 1 and "entry 3" in edited.stderr and "edited" in edited.stderr, edited.stderr
    removed = _tamper(env, lambda c: c.execute(delete(AuditRow).where(AuditRow.seq == 2)))
    assert removed.returncode == 1 and "entry 3" in removed.stderr and "deleted" in removed.stderr, removed.stderr


def test_removing_the_last_entries_is_seen(env):
    for i in range(3):
        assert gemid(env, "keys", "create", "--name", f"k{i}", "--role", "technician", "--desk", "d1").returncode == 0
    cut = _tamper(env, lambda c: c.execute(delete(AuditRow).where(AuditRow.seq == 3)))
    assert cut.returncode == 1 and "removed from the end" in cut.stderr, cut.stderr


def _settings(env: dict[str, str]) -> Settings:
    return Settings(data_dir=Path(env["GEMID_DATA_DIR"]), db_url=env["GEMID_DB_URL"],
                    signing_key=Path(env["GEMID_SIGNING_KEY"]))


def test_many_writers_extend_one_chain(env):
    """Two stores (as two replicas would) appending at once in groups, each sealing with the shared key: one
    chain, no entry lost, every group sealed."""
    import threading

    url = env["GEMID_DB_URL"].replace("postgresql://", "postgresql+psycopg://")
    stores = [ReportStore.open(url) for _ in range(2)]
    signers = [audit.Sealing(open_signer(_settings(env), s.engine)) for s in stores]
    try:
        def write(store: ReportStore, n: int) -> None:
            for i in range(20):
                audit.append(store.engine, [audit.AuditEntry(action="view", actor=f"w{n}", detail=str(i))] * 3,
                             signers[n])

        threads = [threading.Thread(target=write, args=(s, n)) for n, s in enumerate(stores)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        check = audit.verify(stores[0].engine)
        assert (check.entries, check.sealed_through, check.problem) == (120, 120, None)
        with stores[0].engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one() == 120
    finally:
        for s in stores:
            s.close()


def _rewrite(conn, change) -> None:
    """What someone with write access to the database but not the key file can do: change entries and
    recompute every hash after them, so the hash chain alone checks out again."""
    from sqlalchemy import select

    prev = audit.GENESIS
    for row in [dict(r._mapping) for r in conn.execute(select(*AuditRow.__table__.c).order_by(AuditRow.seq))]:
        change(row)
        row["prev_hash"], row["hash"] = prev, audit.entry_hash(prev, row)
        prev = row["hash"]
        conn.execute(update(AuditRow).where(AuditRow.seq == row["seq"]).values(
            actor=row["actor"], actor_kind=row["actor_kind"], prev_hash=row["prev_hash"], hash=row["hash"]))
    conn.execute(update(AuditHeadRow).values(hash=prev))


def test_a_rewritten_chain_no_longer_matches_its_seals(env, tmp_path):
    for i in range(3):
        assert gemid(env, "keys", "create", "--name", f"k{i}", "--role", "technician", "--desk", "d1").returncode == 0
    before = gemid(env, "audit", "verify")  # no service has run: no key yet, so the console could not seal
    assert before.returncode == 0 and "no seal yet" in before.stdout and "entries 1..3" in before.stdout
    store = ReportStore.open(_settings(env).database_url)
    try:
        signer = open_signer(_settings(env), store.engine)  # the service's start: its key, then the head sealed
        assert audit.seal_head(store.engine, audit.Sealing(signer)) == 3
        audit.append(store.engine, [audit.AuditEntry(action="view", actor="desk-1 scanner", actor_kind="key")],
                     audit.Sealing(signer))
    finally:
        store.close()
    assert gemid(env, "keys", "create", "--name", "k3", "--role", "technician", "--desk", "d1").returncode == 0  # reads the key
    intact = gemid(env, "audit", "verify")
    assert intact.returncode == 0 and f"sealed through entry 5 by key {signer.key_id}" in intact.stdout

    # the hash chain recomputed around an edit: consistent again, but the seals were made over the old one
    def blame(row):
        row["actor"] = "someone else" if row["seq"] == 2 else row["actor"]
    rewritten = _tamper(env, lambda c: _rewrite(c, blame))
    assert rewritten.returncode == 1 and "entry 3" in rewritten.stderr, rewritten.stderr
    assert "seal was made over a different chain" in rewritten.stderr


def test_removed_or_forged_seals_are_seen(env, tmp_path):
    store = ReportStore.open(_settings(env).database_url)
    try:
        sealing = audit.Sealing(open_signer(_settings(env), store.engine))
        for i in range(3):
            audit.append(store.engine, [audit.AuditEntry(action="view", actor=f"w{i}", actor_kind="key")], sealing)
    finally:
        store.close()
    public = tmp_path / "public.pem"
    public.write_text(signing.public_pem(signing.load_private_key(Path(env["GEMID_SIGNING_KEY"])).public_key()))
    other = tmp_path / "other.pem"
    other.write_text(signing.public_pem(signing.new_private_key().public_key()))
    assert gemid(env, "audit", "verify", "--key", str(public)).returncode == 0
    wrong = gemid(env, "audit", "verify", "--key", str(other))
    assert wrong.returncode == 1 and "not among the public keys given" in wrong.stderr, wrong.stderr

    # a seal made with a key of the forger's own: it does not verify under the store's key
    forger = signing.new_private_key()

    def forge(conn) -> None:
        value = base64.b64encode(forger.sign(audit.seal_bytes(3, conn.execute(
            text("SELECT hash FROM audit_seals WHERE seq = 3")).scalar_one()))).decode()
        conn.execute(update(AuditSealRow).where(AuditSealRow.seq == 3).values(signature=value))
    forged = _tamper(env, forge)
    assert forged.returncode == 1 and "entry 3" in forged.stderr and "not made with the signing key" in forged.stderr

    # the seals deleted, then the chain rewritten: service entries that no seal covers
    def strip(conn) -> None:
        conn.execute(delete(AuditSealRow))
        _rewrite(conn, lambda row: row.update(actor="nobody") if row["seq"] == 1 else None)
    stripped = _tamper(env, strip)
    assert stripped.returncode == 1 and "entry 1" in stripped.stderr and "no seal covers it" in stripped.stderr


def test_a_common_or_quickly_guessed_password_is_refused(env):
    # an outside try set "password1" and "qwertyuiop": eight characters were the only rule
    for weak, why in (("password1", "very common password"), ("qwertyuiop", "common password"),
                      ("nadia2026", "too easy to guess"), ("short", "8 characters")):
        added = gemid(env, "users", "add", "nadia", "--role", "auditor", "--password-stdin", stdin=weak + "\n")
        assert added.returncode == 1 and why in added.stderr, (weak, added.stderr)
    listed = gemid(env, "keys", "list")
    assert "nadia" not in listed.stdout  # nothing was added
    assert gemid(env, "users", "add", "nadia", "--role", "auditor", "--password-stdin",
                 stdin="brass lantern monsoon\n").returncode == 0
    changed = gemid(env, "users", "password", "nadia", "--password-stdin", stdin="iloveyou\n")
    assert changed.returncode == 1 and "too easy to guess" in changed.stderr
    assert "password_set" not in gemid(env, "audit", "export").stdout  # refused before anything changed


def _service_sealing(env: dict[str, str], store: ReportStore) -> audit.Sealing:
    """What the service seals with: its key and its record of the last head it sealed (the data directory)."""
    settings = _settings(env)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return audit.Sealing(open_signer(settings, store.engine), settings.data_dir / audit.ANCHOR_FILE)


def _view(n: int) -> list[audit.AuditEntry]:
    return [audit.AuditEntry(action="view", actor=f"desk {n}", actor_kind="key", desk="d1")]


def test_the_service_never_seals_what_someone_else_wrote(env):
    """An outside try wrote entries straight into the table (one forged on the end; the whole trail rewritten
    with its seals deleted), then made the service write one: it sealed the forgery, and verify passed."""
    store = ReportStore.open(_settings(env).database_url)
    try:
        sealing = _service_sealing(env, store)
        for i in range(3):
            audit.append(store.engine, _view(i), sealing)
        with store.engine.begin() as conn:  # forged on the end, with a correct hash, no key
            head = conn.execute(text("SELECT seq, hash FROM audit_head")).one()
            row = {"seq": head[0] + 1, "at": datetime.now(UTC), "actor": "desk1", "actor_kind": "key", "desk": "d1",
                   "action": "confirmation", "report_id": None, "address": "10.0.0.9", "detail": "forged"}
            row["prev_hash"], row["hash"] = head[1], audit.entry_hash(head[1], row)
            conn.execute(insert(AuditRow).values(**row))
            conn.execute(update(AuditHeadRow).values(seq=row["seq"], hash=row["hash"]))
        audit.append(store.engine, _view(9), sealing)  # the service's next entry: appended, not sealed
        check = audit.verify(store.engine)
        assert check.broken_at == 4 and "no seal covers it" in check.problem, check

        # a second store, trail rewritten wholesale with every seal deleted: this machine's record refuses it
        with store.engine.begin() as conn:
            conn.execute(delete(AuditSealRow))
            _rewrite(conn, lambda row: row.update(actor_kind="cli"))
        audit.append(store.engine, _view(10), sealing)
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM audit_seals")).scalar_one() == 0  # nothing blessed
    finally:
        store.close()
    # the console's verify reads the same record: the rewritten entry 3 is not the one this machine sealed
    rewritten = gemid(env, "audit", "verify")
    assert rewritten.returncode == 1 and "entry 3" in rewritten.stderr and "this machine sealed" in rewritten.stderr


def test_a_cut_trail_and_a_retired_key_s_late_seal_are_seen(env, tmp_path):
    store = ReportStore.open(_settings(env).database_url)
    try:
        sealing = _service_sealing(env, store)
        for i in range(4):
            audit.append(store.engine, _view(i), sealing)
        with store.engine.begin() as conn:  # the last two entries and their seals cut, the head wound back
            conn.execute(delete(AuditRow).where(AuditRow.seq > 2))
            conn.execute(delete(AuditSealRow).where(AuditSealRow.seq > 2))
            kept = conn.execute(text("SELECT hash FROM audit_log WHERE seq = 2")).scalar_one()
            conn.execute(update(AuditHeadRow).values(seq=2, hash=kept))
    finally:
        store.close()
    cut = gemid(env, "audit", "verify")
    assert cut.returncode == 1 and "this machine sealed through entry 4" in cut.stderr, cut.stderr

    # a retired key (a leaked old key file) sealing an entry dated after its retirement
    retired_at = datetime(2026, 1, 1, tzinfo=UTC)
    store = ReportStore.open(_settings(env).database_url)
    try:
        (Path(env["GEMID_DATA_DIR"]) / audit.ANCHOR_FILE).unlink()
        kid = open_signer(_settings(env), store.engine).key_id
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE signing_keys SET retired_at = :t WHERE key_id = :k"), {"t": retired_at, "k": kid})
        late = audit.verify(store.engine)
        assert late.problem and "retired at 2026-01-01" in late.problem and "dated after it" in late.problem
    finally:
        store.close()


def test_a_public_key_swapped_under_a_genuine_id_is_not_trusted_or_published(env, tmp_path):
    store = ReportStore.open(_settings(env).database_url)
    try:
        signer = open_signer(_settings(env), store.engine)
        audit.append(store.engine, _view(0), audit.Sealing(signer))
        theirs = signing.new_private_key()
        with store.engine.begin() as conn:  # the forger's public key under the genuine key's id, and its seal
            conn.execute(text("UPDATE signing_keys SET public_pem = :p WHERE key_id = :k"),
                         {"p": signing.public_pem(theirs.public_key()), "k": signer.key_id})
            value = base64.b64encode(theirs.sign(audit.seal_bytes(1, conn.execute(
                text("SELECT hash FROM audit_seals WHERE seq = 1")).scalar_one()))).decode()
            conn.execute(update(AuditSealRow).where(AuditSealRow.seq == 1).values(signature=value))
        from gemid.serve.keys import public_keys

        assert public_keys(store.engine) == []  # neither published (GET /v1/keys) nor trusted
        assert "not among the public keys given" in audit.verify(store.engine).problem
    finally:
        store.close()


def test_audit_verify_takes_the_keys_json_and_refuses_a_missing_store(env, tmp_path):
    store = ReportStore.open(_settings(env).database_url)
    try:
        signer = open_signer(_settings(env), store.engine)
        audit.append(store.engine, _view(0), audit.Sealing(signer))
        from gemid.serve.keys import public_keys

        listed = [{"key_id": k.key_id, "algorithm": k.algorithm, "public_pem": k.public_pem,
                   "created_at": k.created_at.isoformat(), "retired_at": None} for k in public_keys(store.engine)]
    finally:
        store.close()
    keys_json = tmp_path / "keys.json"
    keys_json.write_text(json.dumps({"keys": listed}))  # as GET /v1/keys answers
    ok = gemid(env, "audit", "verify", "--key", str(keys_json))
    assert ok.returncode == 0 and f"by key {signer.key_id}" in ok.stdout, ok.stderr
    if env["GEMID_DB_URL"].startswith("sqlite"):
        nowhere = gemid({**env, "GEMID_DATA_DIR": str(tmp_path / "nowhere"),
                         "GEMID_DB_URL": f"sqlite:///{tmp_path / 'nowhere' / 'gemid.db'}"}, "audit", "verify")
        assert nowhere.returncode == 2 and "no store at" in nowhere.stderr, nowhere
        assert not (tmp_path / "nowhere").exists()  # none made: "intact: 0 entries" would have misled


def _forge(conn, **fields) -> int:
    """An entry written straight into the table with a correct hash (no key needed): its seq."""
    head = conn.execute(text("SELECT seq, hash FROM audit_head")).one()
    row = {"seq": head[0] + 1, "at": datetime.now(UTC), "actor": "desk1", "actor_kind": "key", "desk": "d1",
           "action": "confirmation", "report_id": None, "address": "10.0.0.9", "detail": "forged", **fields}
    row["prev_hash"], row["hash"] = head[1], audit.entry_hash(head[1], row)
    conn.execute(insert(AuditRow).values(**row))
    conn.execute(update(AuditHeadRow).values(seq=row["seq"], hash=row["hash"]))
    return row["seq"]


def test_a_bogus_seal_or_a_forged_console_entry_is_not_sealed_over(env):
    """An outside try's second round: a seal row with a made-up signature on a forged entry made the service
    seal on top of it (then the bogus row was deleted and verify passed); a forged entry marked as a console
    command's, with a desk's actor and address, was sealed too."""
    store = ReportStore.open(_settings(env).database_url)
    try:
        sealing = _service_sealing(env, store)
        audit.append(store.engine, _view(0), sealing)
        with store.engine.begin() as conn:
            seq = _forge(conn)
            conn.execute(insert(AuditSealRow).values(
                seq=seq, hash=conn.execute(text("SELECT hash FROM audit_head")).scalar_one(),
                key_id="0" * 16, signature="AAAA"))
        audit.append(store.engine, _view(1), sealing)
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT max(seq) FROM audit_seals")).scalar_one() == seq  # not sealed over
        with store.engine.begin() as conn:
            conn.execute(delete(AuditSealRow).where(AuditSealRow.seq == seq))
        assert audit.verify(store.engine).broken_at == seq

        # a fresh store: a "console" entry that no console command writes
        with store.engine.begin() as conn:
            for table in ("audit_seals", "audit_log"):
                conn.execute(text(f"DELETE FROM {table}"))
            conn.execute(update(AuditHeadRow).values(seq=0, hash=audit.GENESIS))
        (Path(env["GEMID_DATA_DIR"]) / audit.ANCHOR_FILE).unlink()
        sealing = _service_sealing(env, store)
        audit.append(store.engine, _view(0), sealing)
        with store.engine.begin() as conn:
            lie = _forge(conn, actor_kind="cli")  # desk1's confirmation from 10.0.0.9, marked cli
        audit.append(store.engine, _view(1), sealing)
        check = audit.verify(store.engine)
        assert check.broken_at == lie and "no seal covers it" in check.problem, check
    finally:
        store.close()


def test_an_unreadable_anchor_stops_sealing(env):
    store = ReportStore.open(_settings(env).database_url)
    try:
        audit.append(store.engine, _view(0), _service_sealing(env, store))
        (Path(env["GEMID_DATA_DIR"]) / audit.ANCHOR_FILE).write_text("garbage")
        sealing = _service_sealing(env, store)  # as the service starts: fail closed, not "nothing sealed yet"
        audit.append(store.engine, _view(1), sealing)
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT max(seq) FROM audit_seals")).scalar_one() == 1
        assert "unreadable" in (sealing.unreadable or "")
    finally:
        store.close()
    said = gemid(env, "audit", "verify")  # one line, not a traceback
    assert said.returncode == 1 and "anchor" in said.stderr and "Traceback" not in said.stderr, said.stderr


def test_a_key_row_holding_another_public_key_stops_the_service_clearly(env):
    from gemid.serve.keys import SigningKeyError

    store = ReportStore.open(_settings(env).database_url)
    try:
        signer = open_signer(_settings(env), store.engine)
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE signing_keys SET public_pem = :p WHERE key_id = :k"),
                         {"p": signing.public_pem(signing.new_private_key().public_key()), "k": signer.key_id})
        with pytest.raises(SigningKeyError, match="holds a different public key"):
            open_signer(_settings(env), store.engine)
    finally:
        store.close()
