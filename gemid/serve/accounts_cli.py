"""`gemid users`, `gemid keys` and `gemid audit`: accounts, API keys and the audit trail, on the store named by
the usual GEMID_* settings (GEMID_DATA_DIR, GEMID_DB_URL), from the machine's console. Each change is an
entry of the audit trail, made by `cli:<the system user>`.

`gemid keys` is a group: its subcommands are added in `register_keys`, one `add_parser` each
(`create`, `revoke`, `list`, and the signing key's `rotate-signing`).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

ROLE_HELP = "technician | supervisor | admin | auditor"


def register(subparsers: argparse._SubParsersAction) -> None:
    users = subparsers.add_parser("users", help="people who sign in to the web page (add, link, password, list)")
    u = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    add = u.add_parser("add", help="add a person with a role and desk; asks for a password")
    add.add_argument("name")
    add.add_argument("--role", required=True, help=ROLE_HELP)
    add.add_argument("--desk", help="their desk (technicians see only their desk's reports)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--no-password", action="store_true", help="no password: sign in with `gemid users link`")
    add.set_defaults(func=_users_add)
    link = u.add_parser("link", help="print a one-time sign-in link for a person (valid 24 h)")
    link.add_argument("name")
    link.add_argument("--url", help="the service's address (default: GEMID_PUBLIC_URL or http://127.0.0.1:8000)")
    link.set_defaults(func=_users_link)
    pw = u.add_parser("password", help="set a person's password")
    pw.add_argument("name")
    pw.add_argument("--password-stdin", action="store_true")
    pw.set_defaults(func=_users_password)
    rm = u.add_parser("disable", help="disable a person (their sessions end)")
    rm.add_argument("name")
    rm.set_defaults(func=_users_disable)
    en = u.add_parser("enable", help="enable a disabled person again (then a new password or link)")
    en.add_argument("name")
    en.set_defaults(func=_users_enable)
    ls = u.add_parser("list", help="every person and key, with role, desk and state")
    ls.set_defaults(func=_list)

    keys = subparsers.choices.get("keys")  # the signing key's commands (gemid.serve.trust_cli) share the group
    if keys is None:
        keys = subparsers.add_parser("keys", help="API keys (create, revoke, list) and the service's signing key")
        keys.set_defaults(func=lambda _args, p=keys: p.print_help() or 2)
        group = keys.add_subparsers(dest="keys_command", metavar="ACTION")
    else:
        group = next(a for a in keys._actions if isinstance(a, argparse._SubParsersAction))
    register_keys(group)

    audit = subparsers.add_parser("audit", help="the audit trail: verify its hash chain, export it")
    a = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    ver = a.add_parser("verify", help="check the chain and its seals; exit 1 naming the first broken entry")
    ver.add_argument("--key", action="append", metavar="PUBLIC.pem",
                     help="check the seals against this public key, or the JSON of GET /v1/keys, kept outside the "
                          "database (repeatable) instead of the keys the store lists")
    ver.add_argument("--data-dir", help="the store (GEMID_DATA_DIR)")
    ver.set_defaults(func=_verify)
    exp = a.add_parser("export", help="every entry as JSON lines (stdout, or --out FILE)")
    exp.add_argument("--out", help="file to write (default: standard output)")
    exp.add_argument("--data-dir", help="the store (GEMID_DATA_DIR)")
    exp.set_defaults(func=_export)


def register_keys(k: argparse._SubParsersAction) -> None:
    """The subcommands of `gemid keys`; another one is one more `k.add_parser(...)` here."""
    create = k.add_parser("create", help="a new API key; printed once, alone on the last line")
    create.add_argument("--name", required=True, help="what the key is for, e.g. 'desk-3 scanner'")
    create.add_argument("--role", required=True, help=ROLE_HELP)
    create.add_argument("--desk", help="the desk it works for (technicians see only their desk's reports)")
    create.set_defaults(func=_keys_create)
    revoke = k.add_parser("revoke", help="revoke a key: it stops working within a second")
    revoke.add_argument("name")
    revoke.set_defaults(func=_keys_revoke)
    k.add_parser("list", help="every person and key, with role, desk and state").set_defaults(func=_list)


def _engine() -> Any:
    """The store's engine (migrated), from the GEMID_* settings."""
    from gemid.serve.settings import Settings
    from gemid.serve.store import ReportStore

    return ReportStore.open(Settings().database_url).engine


def cli_audit(engine: Any, action: str, detail: str) -> None:
    """An audit entry for a console command, made by `cli:<the system user>`."""
    from gemid.serve import audit
    from gemid.serve.keys import console_signer
    from gemid.serve.settings import Settings

    settings = Settings()
    audit.ensure_head(engine)
    who = f"cli:{getpass.getuser()}"
    signer = console_signer(settings, engine)
    sealing = audit.Sealing(signer, settings.data_dir / audit.ANCHOR_FILE) if signer is not None else None
    audit.append(engine, [audit.AuditEntry(action=action, actor=who[:100], actor_kind="cli", address="console",
                                           detail=detail)], sealing)


def _fail(message: str) -> int:
    print(f"gemid: {message}", file=sys.stderr)
    return 1


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise ValueError("the two passwords differ")
    return first


def _guarded(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        from gemid.serve.accounts import AccountError

        try:
            return fn(args)
        except (AccountError, ValueError) as exc:
            return _fail(str(exc))
    return run


@_guarded
def _users_add(args: argparse.Namespace) -> int:
    from gemid.serve import accounts

    password = None if args.no_password else _read_password(args.password_stdin)
    engine = _engine()
    accounts.add_user(engine, args.name, args.role, args.desk, password)
    cli_audit(engine, "user_added", f"user {args.name} ({args.role}, desk {args.desk or '-'})")
    print(f"added {args.role} {args.name}" + (f" at desk {args.desk}" if args.desk else ""))
    return 0


def sign_in_url(base: str | None, token: str) -> str:
    from gemid.serve.settings import Settings

    base = (base or Settings().public_url or "http://127.0.0.1:8000").rstrip("/")
    return f"{base}/signin?token={token}"


@_guarded
def _users_link(args: argparse.Namespace) -> int:
    from gemid.serve import accounts

    engine = _engine()
    token = accounts.sign_in_link_token(engine, args.name)
    cli_audit(engine, "sign_in_link", f"one-time sign-in link for {args.name}")
    print(f"one-time sign-in link for {args.name} (valid {accounts.LINK_LIFETIME.total_seconds() / 3600:g} h):")
    print(sign_in_url(args.url, token))
    return 0


@_guarded
def _users_password(args: argparse.Namespace) -> int:
    from gemid.serve import accounts

    password = _read_password(args.password_stdin)
    engine = _engine()
    accounts.set_password(engine, args.name, password)
    cli_audit(engine, "password_set", f"password of {args.name}")
    print(f"password of {args.name} set")
    return 0


@_guarded
def _users_enable(args: argparse.Namespace) -> int:
    from gemid.serve import accounts

    engine = _engine()
    accounts.enable(engine, args.name)
    cli_audit(engine, "user_enabled", f"user {args.name}")
    print(f"enabled {args.name}: give them a new password (gemid users password) or a link (gemid users link)")
    return 0


@_guarded
def _users_disable(args: argparse.Namespace) -> int:
    from gemid.serve import accounts

    engine = _engine()
    accounts.revoke(engine, args.name, "user")
    cli_audit(engine, "user_disabled", f"user {args.name}")
    print(f"disabled {args.name}")
    return 0


@_guarded
def _keys_create(args: argparse.Namespace) -> int:
    from gemid.serve import accounts

    engine = _engine()
    token = accounts.create_key(engine, args.name, args.role, args.desk)
    cli_audit(engine, "key_created", f"key {args.name} ({args.role}, desk {args.desk or '-'})")
    print(f"API key '{args.name}' ({args.role}" + (f", desk {args.desk}" if args.desk else "") + "); shown once, "
          "send it as `Authorization: Bearer KEY`:")
    print(token)
    return 0


@_guarded
def _keys_revoke(args: argparse.Namespace) -> int:
    from gemid.serve import accounts

    engine = _engine()
    accounts.revoke(engine, args.name, "key")
    cli_audit(engine, "key_revoked", f"key {args.name}")
    print(f"revoked key {args.name}")
    return 0


def _list(_args: argparse.Namespace) -> int:
    from gemid.serve import accounts

    for a in accounts.list_accounts(_engine()):
        state = f"revoked {a['revoked_at']:%Y-%m-%d}" if a["revoked_at"] else "active"
        print(f"{a['kind']:<5} {a['name']:<30} {a['role']:<11} {a['desk'] or '-':<15} {state}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from gemid.serve import audit
    from gemid.serve.console import Refused, keys_from_file, open_existing_store, settings_for

    try:
        keys, retired = None, None
        for path in args.key or []:  # a PEM, or the JSON of GET /v1/keys (as `gemid verify --key` reads)
            found, when = keys_from_file(Path(path))
            keys, retired = {**(keys or {}), **found}, {**(retired or {}), **when}
        settings = settings_for(args)
        store = open_existing_store(settings)  # never an empty store made here: "0 entries, intact" would mislead
    except Refused as exc:
        return _fail(str(exc)) + 1  # 2: not run (1 is a broken trail)
    try:
        audit.ensure_head(store.engine)
        try:
            anchor = audit.read_anchor(settings.data_dir / audit.ANCHOR_FILE)
        except audit.AnchorUnreadable as exc:
            print(f"gemid audit verify: {exc}", file=sys.stderr)
            return 1
        check = audit.verify(store.engine, keys, retired=retired, anchor=anchor)
    finally:
        store.close()
    if check.problem:
        print(f"gemid audit verify: the trail breaks at entry {check.broken_at}: {check.problem}", file=sys.stderr)
        return 1
    sealed = (f"sealed through entry {check.sealed_through} by key {', '.join(sorted(check.key_ids))}"
              if check.sealed_through else "no seal yet")
    print(f"audit trail intact: {check.entries} entries, {sealed}"
          + (f"; this machine sealed through entry {anchor.seq}" if anchor is not None else ""))
    if check.unsealed:
        print(f"entries {check.sealed_through + 1}..{check.entries}: console commands run without the signing "
              "key, sealed by the service when it next starts or writes an entry")
    return 0


def _export(args: argparse.Namespace) -> int:
    from gemid.serve import audit
    from gemid.serve.console import Refused, open_existing_store, settings_for

    try:
        engine = open_existing_store(settings_for(args)).engine
    except Refused as exc:
        return _fail(str(exc)) + 1  # 2: not run (1 is a broken trail)
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout  # noqa: SIM115
    try:
        n = 0
        for line in audit.export(engine):
            out.write(line + "\n")
            n += 1
    finally:
        if out is not sys.stdout:
            out.close()
    if args.out:
        os.chmod(args.out, 0o600)
        print(f"wrote {n} entries to {args.out}", file=sys.stderr)
    return 0
