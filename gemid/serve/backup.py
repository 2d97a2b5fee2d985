"""`gemid backup DEST` and `gemid restore SRC`: a consistent copy of the store while it serves, and back.

Why it is consistent without stopping the service: the database is copied as one snapshot (SQLite's online
backup API; `pg_dump`, itself one transaction, for PostgreSQL), and photos are copied after it, only those
the snapshot's reports name. A photo is stored before its report row is committed and never deleted, so
every photo the snapshot needs exists by then; photos of reports stored during the backup are simply not in
it, like their rows. On PostgreSQL the photos live in the database (gemid.serve.photos), so the dump holds
them.

The backup folder: `manifest.json` (what it holds, and the SHA-256 of every file, checked before a restore
writes anything), `gemid.db` or `database.pgdump`, `images/` (SQLite stores), and with `--with-signing-key`
the private key as `signing-key.pem` (0600), marked in the manifest: whoever holds that backup can sign as
the service, so it is left out unless asked for. Without it a restored store verifies every report (the
public keys are in the database) and needs `gemid keys rotate-signing` before it signs new ones.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gemid.serve.data_lock import DataFolderBusy, try_exclusive

FORMAT = "gemid-backup"
VERSION = 1
MANIFEST = "manifest.json"


def register(subparsers: argparse._SubParsersAction) -> None:
    b = subparsers.add_parser("backup", help="copy the store (database, photos) to a folder while it serves",
                              description="Write a consistent snapshot of the store of the GEMID_* settings to DEST "
                                          "(a new or empty folder), with a manifest of SHA-256 hashes.")
    b.add_argument("dest", type=Path, metavar="DEST")
    b.add_argument("--with-signing-key", action="store_true",
                   help="include the private signing key (marked in the manifest; keep such a backup secret)")
    b.add_argument("--data-dir", help="the store (GEMID_DATA_DIR)")
    b.set_defaults(func=_backup_command)
    r = subparsers.add_parser("restore", help="put a backup back into an empty store",
                              description="Check every file of the backup SRC against its manifest, then restore "
                                          "it into the store of the GEMID_* settings, and verify every report.")
    r.add_argument("src", type=Path, metavar="SRC")
    r.add_argument("--force", action="store_true", help="replace a store that is not empty")
    r.add_argument("--data-dir", help="the store (GEMID_DATA_DIR)")
    r.set_defaults(func=_restore_command)


class BackupError(RuntimeError):
    """The backup or restore cannot go on; the message says why. Nothing half-done is left as if complete."""


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _libpq_url(sqlalchemy_url: str) -> str:
    """postgresql+psycopg://… (SQLAlchemy) as the postgresql://… that pg_dump and pg_restore take."""
    return "postgresql://" + sqlalchemy_url.split("://", 1)[1]


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed (Debian: postgresql-client); it is how a PostgreSQL store is "
                          "copied consistently")
    return found


def backup(settings: Any, dest: Path, *, with_signing_key: bool = False) -> dict[str, Any]:
    """Write the backup; returns its manifest."""
    from gemid.serve.store import ReportStore, schema_revision

    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest} exists and is not an empty folder; give a new one")
    url = settings.database_url
    dest.mkdir(parents=True, exist_ok=True)
    dest.chmod(0o700)  # password hashes, reports and photos: the owner's only (an outside try found them 0755)
    manifest: dict[str, Any] = {"format": FORMAT, "version": VERSION, "created_at": datetime.now(UTC).isoformat()}
    if url.startswith("sqlite:///"):
        source = Path(url.removeprefix("sqlite:///"))
        if not source.is_file():
            raise BackupError(f"no store at {settings.data_dir} (set GEMID_DATA_DIR or --data-dir)")
        src = sqlite3.connect(source)
        out = sqlite3.connect(dest / "gemid.db")
        try:
            with out:
                src.backup(out)  # the online backup API: one consistent snapshot, writers keep writing
        finally:
            src.close()
            out.close()
        snapshot = ReportStore.open(f"sqlite:///{dest / 'gemid.db'}", upgrade=False)
        manifest["database"] = {"kind": "sqlite", "file": "gemid.db"}
        photos = _copy_photos(snapshot, settings.images_dir, dest / "images")
    else:
        tool = _pg_tool("pg_dump")
        done = subprocess.run([tool, "--format=custom", "--no-owner", f"--file={dest / 'database.pgdump'}",
                               f"--dbname={_libpq_url(url)}"], capture_output=True, text=True)
        if done.returncode != 0:
            raise BackupError(f"pg_dump failed: {done.stderr.strip()}")
        snapshot = ReportStore.open(url, upgrade=False)
        manifest["database"] = {"kind": "postgresql", "file": "database.pgdump"}
        photos = 0  # in the dump
    try:
        n_reports, n_revisions = snapshot.counts()
        manifest["database"]["schema"] = schema_revision(snapshot.engine)
        from gemid.serve.keys import public_keys

        manifest["public_keys"] = [k.key_id for k in public_keys(snapshot.engine)]
    finally:
        snapshot.close()
    manifest.update(reports=n_reports, revisions=n_revisions, photos=photos)
    key = settings.signing_key_path
    if with_signing_key:
        if not key.is_file():
            raise BackupError(f"--with-signing-key: no key file at {key}")
        target = dest / "signing-key.pem"
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.read_bytes())
        manifest["signing_key"] = {"included": True, "file": "signing-key.pem",
                                   "warning": "the service's PRIVATE key: whoever holds this backup can sign as it"}
    else:
        manifest["signing_key"] = {"included": False}
    manifest["files"] = {p.relative_to(dest).as_posix(): _sha256(p)
                         for p in sorted(dest.rglob("*")) if p.is_file()}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _copy_photos(snapshot: Any, images_dir: Path, target: Path) -> int:
    """Copy the photos the snapshot's reports name; a missing or altered one stops the backup."""
    from sqlalchemy import select

    from gemid.serve.images import ImageStore
    from gemid.serve.models_db import ReportRow

    source = ImageStore(images_dir)
    with snapshot.engine.connect() as conn:
        wanted = sorted(set(conn.execute(select(ReportRow.image_sha256, ReportRow.image_ext)).all()))
    for sha, ext in wanted:
        path = source.get(sha, ext)
        if path is None:
            raise BackupError(f"photo {sha}.{ext} is missing from {images_dir}; the store is damaged")
        if _sha256(path) != sha:
            raise BackupError(f"photo {path} does not hold the bytes its name says; the store is damaged")
        out = ImageStore(target).path_for(sha, ext)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out)
    return len(wanted)


def _check_backup(src: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((src / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{src} is not a gemid backup: {MANIFEST} unreadable ({exc})") from exc
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise BackupError(f"{src} is not a gemid backup of version {VERSION}")
    listed = manifest.get("files") or {}
    present = {p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()} - {MANIFEST}
    if set(listed) != present:
        raise BackupError(f"{src}: files differ from the manifest (missing: {sorted(set(listed) - present)[:3]}, "
                          f"extra: {sorted(present - set(listed))[:3]})")
    for rel, sha in listed.items():
        if _sha256(src / rel) != sha:
            raise BackupError(f"{src / rel} is damaged: its SHA-256 is not the manifest's")
    return manifest


def restore(settings: Any, src: Path, *, force: bool = False) -> dict[str, Any]:
    """Check the backup, restore it into the store of `settings`; returns the manifest."""

    manifest = _check_backup(src)
    try:
        lock = try_exclusive(settings.data_dir)  # no service may write the store being replaced
    except DataFolderBusy as exc:
        raise BackupError(str(exc)) from None
    try:
        return _restore(settings, src, manifest, force=force)
    finally:
        if lock is not None:
            lock.close()


def _restore(settings: Any, src: Path, manifest: dict[str, Any], *, force: bool) -> dict[str, Any]:
    from gemid.serve.store import ReportStore

    url = settings.database_url
    kind = manifest["database"]["kind"]
    if (kind == "sqlite") != url.startswith("sqlite"):
        raise BackupError(f"this is a {kind} backup; the target store is {url.split(':')[0]}")
    key_target = settings.signing_key_path
    if manifest["signing_key"].get("included") and key_target.exists() and not force:
        raise BackupError(f"a signing key file exists at {key_target}; --force replaces it")
    if kind == "sqlite":
        db = Path(url.removeprefix("sqlite:///"))
        images = settings.images_dir
        if (db.exists() or (images.is_dir() and any(images.rglob("*")))) and not force:
            raise BackupError(f"the store at {settings.data_dir} is not empty; --force replaces it")
        db.parent.mkdir(parents=True, exist_ok=True)
        for leftover in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            leftover.unlink(missing_ok=True)
        tmp = db.with_name(db.name + ".restoring")
        shutil.copyfile(src / "gemid.db", tmp)
        os.replace(tmp, db)
        if (src / "images").is_dir():
            shutil.copytree(src / "images", images, dirs_exist_ok=True)
    else:
        store = ReportStore.open(url, upgrade=False)
        try:
            from sqlalchemy import inspect

            busy = "reports" in inspect(store.engine).get_table_names() and store.counts()[0] > 0
        finally:
            store.close()
        if busy and not force:
            raise BackupError("the target database already holds reports; --force replaces them")
        args = [_pg_tool("pg_restore"), "--no-owner", "--exit-on-error", f"--dbname={_libpq_url(url)}"]
        if force:
            args += ["--clean", "--if-exists"]
        done = subprocess.run([*args, str(src / "database.pgdump")], capture_output=True, text=True)
        if done.returncode != 0:
            raise BackupError(f"pg_restore failed: {done.stderr.strip()}")
    if manifest["signing_key"].get("included"):
        from gemid import signing

        signing.write_private_key(key_target, signing.load_private_key(src / "signing-key.pem"))
    ReportStore.open(url).close()  # a backup of an older gemid: brought to the current schema
    from gemid.serve.audit import ANCHOR_FILE

    # this machine's record of the last audit head it sealed is of the store replaced, whose trail went further
    (settings.data_dir / ANCHOR_FILE).unlink(missing_ok=True)
    if settings.data_dir.is_dir():
        settings.data_dir.chmod(0o700)  # as `gemid serve` keeps it
    return manifest


def verify_store(settings: Any) -> tuple[int, list[str]]:
    """Check every report of the store (signatures, chain, photo): (reports checked, problems)."""
    from gemid import signing
    from gemid.serve.keys import verification_keys
    from gemid.serve.photos import open_images
    from gemid.serve.store import ReportStore

    store = ReportStore.open(settings.database_url, upgrade=False)
    try:
        keys, retired = verification_keys(store.engine)
        images = open_images(settings, store.engine)
        problems: list[str] = []
        ids = store.report_ids()
        for rid in ids:
            found = store.image_of(rid)
            path = images.get(found[0], found[1]) if found else None
            photo = _sha256(path) if path else "missing"
            verdict = signing.verify_revisions(store.revision_bodies(rid), keys, photo_sha256=photo, retired=retired)
            problems += [f"report {rid}: {p}" for p in verdict.problems]
    finally:
        store.close()
    return len(ids), problems


def _audit(settings: Any, action: str, detail: str) -> None:
    """Backups and restores go to the audit trail too (an outside try found neither there)."""
    from gemid.serve.accounts_cli import cli_audit
    from gemid.serve.store import ReportStore

    store = ReportStore.open(settings.database_url)
    try:
        cli_audit(store.engine, action, detail)
    finally:
        store.close()


def _backup_command(args: argparse.Namespace) -> int:
    from gemid.serve.console import Refused, settings_for

    try:
        settings = settings_for(args)
        manifest = backup(settings, args.dest, with_signing_key=args.with_signing_key)
        _audit(settings, "store_backed_up", f"to {args.dest}: {manifest['reports']} reports"
               + (", signing key included" if manifest["signing_key"]["included"] else ""))
    except (BackupError, Refused, OSError, sqlite3.Error) as exc:
        print(f"gemid backup: {exc}", file=sys.stderr)
        return 2
    key = "signing key INCLUDED (keep this backup secret)" if manifest["signing_key"]["included"] else \
        "no signing key (use --with-signing-key to include it)"
    print(f"backed up {manifest['reports']} reports, {manifest['revisions']} revisions, {manifest['photos']} photos "
          f"to {args.dest}; {key}")
    return 0


def _restore_command(args: argparse.Namespace) -> int:
    from gemid.serve.console import Refused, settings_for

    try:
        settings = settings_for(args)
        manifest = restore(settings, args.src, force=args.force)
        n, problems = verify_store(settings)
        _audit(settings, "store_restored", f"from {args.src}: {manifest['reports']} reports, {len(problems)} "
               "problems" + (" (forced over a store)" if args.force else ""))
    except (BackupError, Refused, OSError, sqlite3.Error) as exc:
        print(f"gemid restore: {exc}", file=sys.stderr)
        return 2
    print(f"restored {manifest['reports']} reports from {args.src}; {n - len({p.split(':')[0] for p in problems})} "
          f"of {n} verify")
    for p in problems:
        print(f"  {p}")
    if not manifest["signing_key"].get("included"):
        print("no signing key in the backup: run `gemid keys rotate-signing` before serving (old reports still verify)")
    return 1 if problems else 0
