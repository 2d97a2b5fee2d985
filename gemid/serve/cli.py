"""`gemid serve`: the HTTP service and the technician web page, on uvicorn.

Settings come from the environment (GEMID_*, see gemid.serve.settings); the flags here override the
common ones. Before any worker starts, the model bundle is checked and the database migrated once, so a
wrong set-up fails with one clear line and several workers never race to migrate.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import os
import shutil
import sys
import tempfile
import textwrap
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine

# the flags that set a setting, and the environment variable each one sets for the HTTP worker processes
FLAG_SETTINGS = {"data_dir": "GEMID_DATA_DIR", "model_dir": "GEMID_MODEL_DIR", "variant": "GEMID_MODEL_VARIANT"}
_ENVIRONMENT = "{environment}"  # the epilog, written out from Settings when the help is shown


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve", help="run the HTTP service (API at /v1, docs at /docs, web page at /)",
        description="Run the gemid HTTP service. The flags override the environment settings listed below.",
        epilog=_ENVIRONMENT, formatter_class=_SettingsHelp,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this PC only)")
    p.add_argument("--port", type=int, default=8000, help="default: %(default)s")
    p.add_argument("--workers", type=int, default=1, help="HTTP worker processes (default: %(default)s)")
    p.add_argument("--data-dir", help="where reports and photos are stored (GEMID_DATA_DIR; default: {data_dir})")
    p.add_argument("--model-dir", help="model bundle directory (GEMID_MODEL_DIR; default: {model_dir})")
    p.add_argument("--variant", choices=("fp32", "int8"), help="model variant (GEMID_MODEL_VARIANT; default: {model_variant})")
    p.add_argument("--certfile", help="TLS certificate (PEM): serve HTTPS (with --keyfile; default: none, plain HTTP)")
    p.add_argument("--keyfile", help="TLS private key (PEM) of --certfile (default: none)")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"),
                   help="default: %(default)s")
    p.set_defaults(func=run)

    c = subparsers.add_parser(
        "scale-card", help="write the printable scale card (PDF) that photos measure stones' sizes against",
        description="Write gemid's scale card: print it at 100 %, check its 100 mm ruler, lay the stones inside "
                    "its four markers and photograph it from above; each stone's report then gives its length and "
                    "width in mm and an estimated weight. The service serves the same PDF at /v1/scale-card.pdf.")
    c.add_argument("-o", "--output", default="gemid-scale-card.pdf", help="default: %(default)s")
    c.add_argument("--lang", choices=("en", "ur"), default="en", help="the card's language (default: %(default)s)")
    c.set_defaults(func=write_scale_card)


def write_scale_card(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gemid.serve.manifest import FontMissing
    from gemid.serve.scale_card import build_card_pdf

    try:
        body = build_card_pdf(lang=args.lang)
    except FontMissing as exc:
        print(f"gemid scale-card: {exc}", file=sys.stderr)
        return 1
    Path(args.output).write_bytes(body)
    print(f"wrote {args.output} ({len(body) / 1024:.0f} KiB): print it at 100 % and check its ruler measures 100 mm")
    return 0


@functools.cache
def _setting_defaults() -> dict[str, Any]:
    from gemid.serve.settings import Settings

    return {name: field.get_default(call_default_factory=True) for name, field in Settings.model_fields.items()}


def _environment_help(width: int) -> str:
    """Every GEMID_* setting with what it does and its default on this machine, from the settings' fields."""
    from gemid.serve.settings import Settings

    lines = ["environment settings:"]
    for name, field in Settings.model_fields.items():
        default = _setting_defaults()[name]
        text = field.description or ""
        if default is not None:
            text += f"; default: {default}"
        lines.append(f"  GEMID_{name.upper()}")
        lines += textwrap.wrap(text, width=max(40, width), initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines)


class _SettingsHelp(argparse.RawDescriptionHelpFormatter):
    """Help that shows the settings' defaults, read from `Settings` only when the help is shown: importing it
    (pydantic-settings) would slow down every other gemid command."""

    def _expand_help(self, action: argparse.Action) -> str:
        text = super()._expand_help(action)
        return text.format_map(_setting_defaults()) if "{" in text else text

    def add_text(self, text: str | None) -> None:
        super().add_text(_environment_help(self._width) if text == _ENVIRONMENT else text)


def _log_config(level: str) -> dict:
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["gemid"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


def _shown_url(url: str) -> str:
    """The database URL with any password masked: it is printed, and may end up in a shared log."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not even parseable: show nothing of it that could hold a secret
        return "(unparseable GEMID_DB_URL)"


def _db_problem(exc: BaseException) -> str:
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        driver = exc.name.split(".")[0]
        if driver == "psycopg":
            return "its driver is not installed; install the postgres extra: pip install 'gemid[postgres]'"
        return (f"its driver ({driver}) is not installed; for PostgreSQL write postgresql://… and install the "
                "postgres extra: pip install 'gemid[postgres]'")
    return str(exc)


def _listen_problem(host: str, port: int) -> str | None:
    """Why the service could not listen on host:port (None: it can), tried with a throwaway socket set up
    exactly as uvicorn sets up its own (IPv6 only for an address with a colon, SO_REUSEADDR)."""
    import errno
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except (socket.gaierror, UnicodeError) as exc:
            return f"no such host or address ({exc})"
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "the port is already in use (another gemid serve?); choose another with --port"
            if exc.errno == errno.EACCES:
                return "permission denied (ports below 1024 need administrator rights); choose another with --port"
            if exc.errno == errno.EADDRNOTAVAIL:
                return "this machine has no such address; use 127.0.0.1 (this PC) or 0.0.0.0 (the network)"
            return str(exc)
    return None


def _raise_open_files_limit() -> None:
    """Open files up to the hard limit: each connection is one, and GEMID_MAX_CONNECTIONS should be what binds."""
    try:
        import resource
    except ImportError:  # Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))


def _first_admin(engine: Engine) -> str | None:
    """On a store without an administrator: create 'admin' (no password) and return a one-time sign-in token
    for the console, the way Jupyter prints its token; None when the store has one."""
    from gemid.serve import accounts, audit

    if accounts.has_admin(engine):
        return None
    name = "admin"
    try:
        accounts.add_user(engine, name, "admin", None, None)
    except accounts.AccountError:  # an 'admin' that is not (or no longer) an administrator: pick a free name
        import secrets

        name = f"admin-{secrets.token_hex(3)}"
        accounts.add_user(engine, name, "admin", None, None)
    audit.ensure_head(engine)
    audit.append(engine, [audit.AuditEntry(action="user_added", actor="gemid serve", actor_kind="cli",
                                           address="console", detail=f"first administrator {name}")])
    return accounts.sign_in_link_token(engine, name)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    for flag, env in FLAG_SETTINGS.items():
        value = getattr(args, flag, None)
        if value:
            os.environ[env] = str(value)  # the workers build their Settings from the environment

    from gemid.errors import ModelError
    from gemid.messages import validation_message
    from gemid.serve.keys import SigningKeyError, open_signer
    from gemid.serve.settings import Settings
    from gemid.serve.store import ReportStore
    from gemid.vision.bundle import load_bundle

    if args.workers < 1 or not 0 < args.port < 65536:
        print("gemid serve: --workers must be >= 1 and --port in 1..65535", file=sys.stderr)
        return 2
    if bool(args.certfile) != bool(args.keyfile):
        print("gemid serve: --certfile and --keyfile go together", file=sys.stderr)
        return 2
    for tls_file in filter(None, (args.certfile, args.keyfile)):
        if not os.path.isfile(tls_file):
            print(f"gemid serve: no such file: {tls_file}", file=sys.stderr)
            return 2
    os.environ["GEMID_LISTEN_HOST"] = args.host  # its own address is one of the names it answers to
    if args.workers > 1 and "GEMID_INFERENCE_CONCURRENCY" not in os.environ:
        # the cores are shared among the worker processes: 2 workers on 2 cores run one photo each
        os.environ["GEMID_INFERENCE_CONCURRENCY"] = str(max(1, (os.cpu_count() or 1) // args.workers))
    try:
        settings = Settings()
    except ValidationError as exc:
        named = validation_message(exc, field=lambda loc: "GEMID_" + "_".join(map(str, loc)).upper(), limit=None,
                                   show_input=True)  # as the environment variable a technician set
        print(f"gemid serve: invalid setting {named}", file=sys.stderr)
        return 2
    problem = _listen_problem(args.host, args.port)
    if problem:  # found before the model and the workers load, not after
        print(f"gemid serve: cannot listen on {args.host}:{args.port}: {problem}", file=sys.stderr)
        return 2
    try:
        bundle = load_bundle(settings.model_dir)
        bundle.onnx_path(settings.model_variant)
    except ModelError as exc:
        print(f"gemid serve: {exc}", file=sys.stderr)
        return 2
    try:
        store = ReportStore.open(settings.database_url)  # migrate once, before the workers start
    except Exception as exc:  # a wrong URL, a read-only directory, a missing driver: one clear line, not a trace
        print(f"gemid serve: cannot open the database {_shown_url(settings.database_url)}: {_db_problem(exc)}",
              file=sys.stderr)
        return 2
    # what the service keeps (the database with its password hashes and reports, the photos, the spool) is its
    # account's alone: an outside try found gemid.db and the folder readable by every local user
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # a PostgreSQL store's folder holds its photos and key
    settings.data_dir.chmod(0o700)
    try:  # the signing key too (made at first start): a replica without the shared key file stops here
        open_signer(settings, store.engine)
        first_link = _first_admin(store.engine)
    except SigningKeyError as exc:
        print(f"gemid serve: cannot sign reports: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()

    import uvicorn

    from gemid.serve.metrics import MULTIPROC_ENV

    scheme = "https" if args.certfile else "http"
    shown_host = f"[{args.host}]" if ":" in args.host else args.host
    base = settings.public_url or f"{scheme}://{shown_host}:{args.port}"
    print(f"gemid serve: model {bundle.name} {bundle.version} ({settings.model_variant}), "
          f"data in {settings.data_dir}\n  open {base}/  (API docs: /docs)", file=sys.stderr)
    if first_link:
        print(f"  no administrator yet: created 'admin'. Sign in once with this link (valid 24 h):\n"
              f"      {base}/signin?token={first_link}\n"
              f"  then add people (gemid users add) and keys (gemid keys create)", file=sys.stderr, flush=True)
    else:  # the first start's link may have scrolled past long ago (an outside try found no way back in said)
        print("  sign in with your name and password; no password, or lost it? `gemid users link NAME` prints a "
              "one-time sign-in link (`gemid users list` names the administrators)", file=sys.stderr, flush=True)
    counts = None
    if args.workers > 1 and not os.environ.get(MULTIPROC_ENV):
        # several HTTP processes: their metrics meet in a fresh folder (old counts would inflate the totals)
        counts = tempfile.mkdtemp(prefix="gemid-metrics-")
        os.environ[MULTIPROC_ENV] = counts
    try:
        _raise_open_files_limit()
        # the bounds of gemid.serve.connections (head deadline, connection cap) and uvicorn's keep-alive
        uvicorn.run("gemid.serve.app:create_app", factory=True, host=args.host, port=args.port,
                    workers=args.workers, log_level=args.log_level, log_config=_log_config(args.log_level),
                    http="gemid.serve.connections:GuardedHttpTools",
                    ssl_certfile=args.certfile, ssl_keyfile=args.keyfile,
                    timeout_keep_alive=max(1, round(settings.keep_alive_timeout)))
    finally:
        if counts is not None:
            shutil.rmtree(counts, ignore_errors=True)
    return 0
