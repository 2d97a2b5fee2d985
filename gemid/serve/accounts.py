"""Accounts, API keys and web sessions: who may use the service, with which role, at which desk.

- People (`kind="user"`) sign in on the web page with a password (stored as an argon2id hash: a password
  check is rare, so it may be slow on purpose) or with a one-time sign-in link.
- API keys (`kind="key"`) are random 256-bit tokens, shown once and stored as their SHA-256: a key has all
  its entropy already, so a fast hash is as safe as a slow one, and checking it is one indexed lookup on
  every request (argon2 would cost ~50 ms a request).
- Sessions and sign-in links are tokens of the same kind in `sessions`; a session carries its CSRF token.

Roles: technician < supervisor < admin, each able to do what the ones before it can; auditor reads
everything and the audit trail, and changes nothing. Which role each route needs is one table,
gemid.serve.access. Everything here is synchronous (the service calls it off the event loop).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import Engine, bindparam, delete, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from gemid.serve.models_db import AccountRow, SessionRow

Role = Literal["technician", "supervisor", "admin", "auditor"]
ROLES: tuple[Role, ...] = ("technician", "supervisor", "admin", "auditor")
SESSION_LIFETIME = timedelta(hours=12)  # one working day at a desk; then sign in again
LINK_LIFETIME = timedelta(hours=24)  # a one-time sign-in link printed to a console
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,99}$"


class AccountError(ValueError):
    """A name taken, an unknown role or account: said in words to whoever ran the command."""


@dataclass(frozen=True)
class Principal:
    """Who sent a request: the account's name, kind, role and desk (and, for a web session, its CSRF token)."""

    name: str
    kind: str
    role: Role
    desk: str | None
    csrf: str | None = None  # set for a cookie session: its unsafe requests must echo it

    @property
    def desk_only(self) -> bool:
        """Whether this account sees only its own desk's reports (technicians)."""
        return self.role == "technician"


def new_token() -> str:
    """A 256-bit random token, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _password_hasher():
    from argon2 import PasswordHasher

    return PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) parameters


MIN_PASSWORD_LENGTH = 8
MIN_PASSWORD_SCORE = 3  # zxcvbn's "safely unguessable": ~10^8 guesses or more


def password_problem(password: str, name: str) -> str | None:
    """Why `password` will not do for the account `name`, or None. Length alone let "password1" and
    "qwertyuiop" through (an outside try); zxcvbn (Dropbox's estimator, its lists of common passwords, names
    and keyboard patterns) estimates the guesses an attacker needs, as NIST SP 800-63B asks a check against
    commonly used passwords."""
    from zxcvbn import zxcvbn

    if len(password) < MIN_PASSWORD_LENGTH:
        return f"a password needs {MIN_PASSWORD_LENGTH} characters or more"
    # zxcvbn refuses more than 72 characters (an outside try's 80-character passphrase got its error): past
    # that, the first 72 are what it can judge, and more characters only add guesses
    known = [w for w in {name, *name.split(), "gemid", "gemstone"} if len(w) >= 3]
    found = zxcvbn(password[:72], user_inputs=known)
    # what an attacker who knows the name must still guess: "Nadia2026!!" for nadia passed as a whole
    rest = password
    for word in sorted(known, key=len, reverse=True):
        rest = re.sub(re.escape(word), "", rest, flags=re.IGNORECASE)
    if rest != password and found["score"] >= MIN_PASSWORD_SCORE:
        found = zxcvbn(rest[:72]) if rest.strip() else {"score": 0, "feedback": {"warning": "", "suggestions": []}}
        if found["score"] < MIN_PASSWORD_SCORE:
            found["feedback"]["warning"] = "Without the account's name (or gemid's) it would be guessed quickly."
    if found["score"] < MIN_PASSWORD_SCORE:
        why = found["feedback"]["warning"] or "it could be found in fewer than 100 million guesses"
        hint = " ".join(found["feedback"]["suggestions"]) or "A few uncommon words in a row are easier to remember."
        return f"that password is too easy to guess: {why.rstrip('.')}. {hint}"
    return None


def hash_password(password: str) -> str:
    return _password_hasher().hash(password)


def check_password(stored: str | None, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    if not stored:
        return False
    try:
        return _password_hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def _checked(name: str, role: str, desk: str | None) -> None:
    if not re.fullmatch(NAME_PATTERN, name or ""):
        raise AccountError(f"'{name}' is not a usable name: 1-100 letters, digits, space, . _ @ -")
    if role not in ROLES:
        raise AccountError(f"unknown role '{role}'; one of: {', '.join(ROLES)}")
    if role == "technician" and not (desk or "").strip():
        # a technician sees its desk's reports only; without a desk it saw every report made without one (a
        # supervisor's, another desk-less technician's), an outside try found
        raise AccountError("a technician works at a desk and sees that desk's reports only: give --desk "
                           "(e.g. --desk main for a lab with one desk)")


def _insert(engine: Engine, **row: object) -> None:
    try:
        with engine.begin() as conn:
            conn.execute(insert(AccountRow).values(created_at=_now(), **row))
    except IntegrityError as exc:
        raise AccountError(f"an account or key named '{row['name']}' exists already") from exc


def _checked_password(password: str, name: str) -> None:
    problem = password_problem(password, name)
    if problem:
        raise AccountError(problem)


def add_user(engine: Engine, name: str, role: str, desk: str | None, password: str | None) -> None:
    _checked(name, role, desk)
    if password is not None:
        _checked_password(password, name)
    _insert(engine, name=name, kind="user", role=role, desk=desk or None,
            password_hash=hash_password(password) if password else None)


def set_password(engine: Engine, name: str, password: str) -> None:
    """A new password ends the user's sessions and outstanding sign-in links: a reset is what follows a
    suspected compromise (an outside try stayed signed in, and an old link still worked, after one)."""
    _checked_password(password, name)
    with engine.begin() as conn:
        account = conn.execute(select(AccountRow.id).where(AccountRow.name == name, AccountRow.kind == "user",
                                                           AccountRow.revoked_at.is_(None))).scalar_one_or_none()
        if account is None:
            raise _no_user(engine, name)
        conn.execute(update(AccountRow).where(AccountRow.id == account).values(password_hash=hash_password(password)))
        conn.execute(delete(SessionRow).where(SessionRow.account_id == account))


def create_key(engine: Engine, name: str, role: str, desk: str | None) -> str:
    """A new API key; the token is returned once and only its SHA-256 is stored."""
    _checked(name, role, desk)
    token = new_token()
    _insert(engine, name=name, kind="key", role=role, desk=desk or None, key_sha256=token_hash(token))
    return token


def revoke(engine: Engine, name: str, kind: str) -> None:
    """Revoke a key (or disable a user): its token stops working on the next request; its sessions end."""
    with engine.begin() as conn:
        account = conn.execute(select(AccountRow.id).where(AccountRow.name == name, AccountRow.kind == kind,
                                                           AccountRow.revoked_at.is_(None))).scalar_one_or_none()
        if account is None:
            raise AccountError(f"no active {kind} named '{name}'")
        conn.execute(update(AccountRow).where(AccountRow.id == account).values(revoked_at=_now()))
        conn.execute(delete(SessionRow).where(SessionRow.account_id == account))


def list_accounts(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(AccountRow.name, AccountRow.kind, AccountRow.role, AccountRow.desk,
                                   AccountRow.created_at, AccountRow.revoked_at).order_by(AccountRow.id)).all()
    return [dict(r._mapping) for r in rows]


def has_admin(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(AccountRow.id).where(AccountRow.role == "admin",
                                                        AccountRow.revoked_at.is_(None)).limit(1)).first() is not None


def _principal(row: AccountRow | tuple, csrf: str | None = None) -> Principal:
    name, kind, role, desk = row[0], row[1], row[2], row[3]
    return Principal(name=name, kind=kind, role=role, desk=desk, csrf=csrf)


# The API key check, run on every request whose key is not remembered (gemid.serve.access): the statement is
# built once from the schema and compiled once per dialect, then run on a pooled DBAPI connection. Building a
# select, its cache key and SQLAlchemy's Connection/Result layers cost ~0.3 ms a call, ten times the indexed
# lookup itself (README, bench_auth). Role and desk come in the same row: one query, no join.
_ACCOUNT = AccountRow.__table__.c
KEY_LOOKUP = (select(_ACCOUNT.name, _ACCOUNT.kind, _ACCOUNT.role, _ACCOUNT.desk)
              .where(_ACCOUNT.key_sha256 == bindparam("key_sha256"), _ACCOUNT.revoked_at.is_(None)))
_compiled_key_lookup: dict[tuple[str, str, str], tuple[str, bool]] = {}


def _key_lookup_sql(engine: Engine) -> tuple[str, bool]:
    """(KEY_LOOKUP as the driver's SQL, whether its one parameter is positional) for this engine's dialect."""
    dialect = engine.dialect
    cache_key = (dialect.name, dialect.driver, dialect.paramstyle)
    found = _compiled_key_lookup.get(cache_key)
    if found is None:
        compiled = KEY_LOOKUP.compile(dialect=dialect)
        if compiled.positional:
            assert compiled.positiontup == ["key_sha256"], compiled.positiontup
        found = _compiled_key_lookup[cache_key] = (compiled.string, compiled.positional)
    return found


def principal_for_key(engine: Engine, token: str) -> Principal | None:
    """The account of an API key: one lookup on the unique index of its SHA-256; None for a bad or revoked key.

    The pool's connection is used as it is for every other query (SQLite's pragmas, PostgreSQL's pre-ping,
    the rollback when it goes back), only SQLAlchemy's statement and result layers are skipped: the columns
    are plain strings, with no type processing to lose."""
    sql, positional = _key_lookup_sql(engine)
    digest = token_hash(token)
    params: tuple[str] | dict[str, str] = (digest,) if positional else {"key_sha256": digest}
    dbapi_error = engine.dialect.loaded_dbapi.Error
    conn = engine.raw_connection()
    try:
        cursor = conn.cursor()
        try:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        finally:
            cursor.close()
    except dbapi_error as exc:  # as SQLAlchemy's own layers would: a lost connection is not pooled again
        lost = engine.dialect.is_disconnect(exc, conn.dbapi_connection, None)
        if lost:
            conn.invalidate(exc)
        raise DBAPIError.instance(sql, params, exc, dbapi_error, connection_invalidated=lost,
                                  dialect=engine.dialect) from exc
    finally:
        conn.close()  # back to the pool (which ends PostgreSQL's transaction)
    return None if row is None else _principal(row)


def principal_for_session(engine: Engine, token: str) -> Principal | None:
    """The account of a session cookie (with its CSRF token); None when unknown, expired or revoked."""
    with engine.connect() as conn:
        row = conn.execute(
            select(AccountRow.name, AccountRow.kind, AccountRow.role, AccountRow.desk, SessionRow.csrf)
            .join(AccountRow, AccountRow.id == SessionRow.account_id)
            .where(SessionRow.token_sha256 == token_hash(token), SessionRow.kind == "session",
                   SessionRow.expires_at > _now(), AccountRow.revoked_at.is_(None))).first()
    return None if row is None else _principal(row, csrf=row[4])


def _new_session(engine: Engine, account_id: int, kind: str, lifetime: timedelta) -> str:
    token = new_token()
    now = _now()
    with engine.begin() as conn:
        conn.execute(insert(SessionRow).values(token_sha256=token_hash(token), account_id=account_id, kind=kind,
                                               csrf=new_token(), created_at=now, expires_at=now + lifetime))
    return token


def _user_id(engine: Engine, name: str) -> int | None:
    with engine.connect() as conn:
        return conn.execute(select(AccountRow.id).where(AccountRow.name == name, AccountRow.kind == "user",
                                                        AccountRow.revoked_at.is_(None))).scalar_one_or_none()


def _no_user(engine: Engine, name: str) -> AccountError:
    """Why there is no active user `name`: none, or one disabled (an outside try was told "no user named" about
    a disabled one, and "exists already" when it tried to add it again)."""
    with engine.connect() as conn:
        disabled = conn.execute(select(AccountRow.id).where(AccountRow.name == name, AccountRow.kind == "user",
                                                            AccountRow.revoked_at.is_not(None))).first()
    if disabled is not None:
        return AccountError(f"user '{name}' is disabled: `gemid users enable {name}` first")
    return AccountError(f"no user named '{name}'")


def enable(engine: Engine, name: str) -> None:
    """Enable a disabled user again: same name, role and desk; a new password or link to sign in."""
    with engine.begin() as conn:
        n = conn.execute(update(AccountRow).where(AccountRow.name == name, AccountRow.kind == "user",
                                                  AccountRow.revoked_at.is_not(None))
                         .values(revoked_at=None)).rowcount
    if n != 1:
        raise AccountError(f"no disabled user named '{name}'")


def sign_in_link_token(engine: Engine, name: str) -> str:
    """A one-time sign-in token for user `name` (the console's link), valid for LINK_LIFETIME."""
    account = _user_id(engine, name)
    if account is None:
        raise _no_user(engine, name)
    with engine.begin() as conn:  # the newest link alone stands: one printed earlier and lost no longer works
        conn.execute(delete(SessionRow).where(SessionRow.account_id == account, SessionRow.kind == "link"))
    return _new_session(engine, account, "link", LINK_LIFETIME)


def sign_in_with_password(engine: Engine, name: str, password: str) -> tuple[str, Principal] | None:
    with engine.connect() as conn:
        row = conn.execute(select(AccountRow.id, AccountRow.password_hash)
                           .where(AccountRow.name == name, AccountRow.kind == "user",
                                  AccountRow.revoked_at.is_(None))).first()
    if row is None:
        check_password(_DUMMY_HASH(), password)  # the same time as a wrong password: names are not probed
        return None
    if not check_password(row[1], password):
        return None
    token = _new_session(engine, row[0], "session", SESSION_LIFETIME)
    principal = principal_for_session(engine, token)
    return (token, principal) if principal else None


def sign_in_with_link(engine: Engine, link_token: str) -> tuple[str, Principal] | None:
    """Exchange a one-time link for a session: the link is deleted in the same transaction, so it works once."""
    with engine.begin() as conn:
        account = conn.execute(delete(SessionRow).where(
            SessionRow.token_sha256 == token_hash(link_token), SessionRow.kind == "link",
            SessionRow.expires_at > _now()).returning(SessionRow.account_id)).scalar_one_or_none()
    if account is None:
        return None
    token = _new_session(engine, account, "session", SESSION_LIFETIME)
    principal = principal_for_session(engine, token)
    return (token, principal) if principal else None


def end_session(engine: Engine, token: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(SessionRow).where(SessionRow.token_sha256 == token_hash(token)))


_dummy: list[str] = []


def _DUMMY_HASH() -> str:  # noqa: N802 - a constant made once, lazily (argon2 is imported only when used)
    if not _dummy:
        _dummy.append(hash_password(new_token()))
    return _dummy[0]
