"""What the console commands that work on a store share (`gemid verify`, `keys rotate-signing`, `backup`,
`restore`, `audit`): the store the GEMID_* settings name, never one made on the way, the public keys of a file,
and the refusal they print in one line."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class Refused(Exception):
    """The command cannot run as asked; the message says why (exit 2)."""


def settings_for(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from gemid.serve.settings import Settings

    try:  # --data-dir overrides GEMID_DATA_DIR for this command only
        return Settings(**({"data_dir": args.data_dir} if getattr(args, "data_dir", None) else {}))
    except ValidationError as exc:
        raise Refused(f"invalid GEMID_* setting: {exc.errors()[0]['msg']}") from exc


def open_existing_store(settings: Any, *, upgrade: bool = False) -> Any:
    """The store of `settings`; Refused when there is none (a command must not create an empty one)."""
    from gemid.serve.store import ReportStore

    url = settings.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise Refused(f"no store at {settings.data_dir} (set GEMID_DATA_DIR or --data-dir)")
    try:
        return ReportStore.open(url, upgrade=upgrade)
    except Exception as exc:  # unreachable server, missing driver: one line
        raise Refused(f"cannot open the store: {exc}") from exc


def keys_from_file(path: Path) -> tuple[dict[str, Any], dict[str, datetime]]:
    """The public keys in a PEM or the JSON of GET /v1/keys, and (from that JSON) when retired ones retired."""
    from gemid import signing

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Refused(f"cannot read the key file {path}: {exc}") from exc
    try:
        retired: dict[str, datetime] = {}
        if text.lstrip().startswith("{"):  # the JSON of GET /v1/keys
            listed = json.loads(text)["keys"]
            found = [signing.load_public_pem(k["public_pem"]) for k in listed]
            retired = {signing.key_id(pk): _aware(datetime.fromisoformat(k["retired_at"]))
                       for k, pk in zip(listed, found, strict=True) if k.get("retired_at")}
        else:
            found = [signing.load_public_pem(text)]
    except (ValueError, KeyError, TypeError) as exc:
        raise Refused(f"{path} is neither an Ed25519 public key (PEM) nor the JSON of GET /v1/keys: {exc}") from exc
    return {signing.key_id(k): k for k in found}, retired


def _aware(when: datetime) -> datetime:
    """A date without a zone is UTC, as the service writes them (one without crashed the comparison)."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
