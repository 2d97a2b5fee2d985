"""`gemid identify --server URL`: send the photos to a running gemid service, so that command-line work lands
in the service's store (History, parcels, exports) instead of staying on one PC.

Each photo is one `POST /v1/identify` (multipart, as the page sends it), with the reference and readings as
form fields, so a failure costs only that photo and the service's per-photo answers (a tray photo's stones,
a duplicate's stored reports, a refusal) come back as they are. A key (`--api-key` or `GEMID_API_KEY`) is
sent as `Authorization: Bearer`, for a service that asks for one. Plain urllib: the CLI needs no HTTP
library, and this module must not import the service's code (gemid.vision never imports gemid.serve).
"""

from __future__ import annotations

import json
import mimetypes
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path, PurePath
from typing import Any
from urllib import error, parse, request

from gemid.readings import STORED
from gemid.report import FileError, Readings, Report

TIMEOUT = 300.0  # seconds for one photo: a busy service queues it behind others (it answers 503 when full)


class ServiceUnavailable(RuntimeError):
    """The service could not be asked at all (unreachable, not a gemid service, the key refused): nothing was
    sent for the photos left, so the command cannot run."""


def identify_url(server: str, grade: bool, force: bool = False) -> str:
    """The service's /v1/identify under `server` (a base URL, with or without a path prefix); `force`: a photo
    already stored under the reference is stored again instead of linked."""
    parts = parse.urlsplit(server.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ServiceUnavailable(f"--server must be an http:// or https:// address, not '{server}'")
    base = server.strip().rstrip("/") + "/"
    query = parse.urlencode([(k, "true" if v else "false") for k, v, default in
                             (("grade", grade, True), ("force", force, False)) if v != default])
    return parse.urljoin(base, "v1/identify") + (f"?{query}" if query else "")


def _form(path: Path, name: str, reference: str | None, readings: Readings | None,
          coin_mm: float | None = None, ruler: bool = False) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    fields: dict[str, str] = {}
    if reference:
        fields["reference"] = reference
    if coin_mm is not None:
        fields["coin_mm"] = f"{coin_mm:g}"
    if ruler:
        fields["ruler"] = "true"
    if readings is not None:
        for key, value in readings.model_dump(exclude_none=True).items():
            fields[key] = str(value).lower() if isinstance(value, bool) else str(value)
    chunks: list[bytes] = []
    for key, value in fields.items():
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'.encode()
                      + value.encode() + b"\r\n")
    # the file's own name, not the folders it was given with: they would be stored and signed in the service's
    # reports (a technician's home folder in a report a buyer verifies); a file name is text in a header: no
    # quote marks or newlines
    quoted = parse.quote(PurePath(name).name or name, safe=" .-_()")
    ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="{quoted}"\r\n'
                  f"Content-Type: {ctype}\r\n\r\n".encode() + path.read_bytes() + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def _entries(body: Any, name: str, status: int) -> list[Report | FileError]:
    """The service's answer for one photo: its reports and refusals, or its request-level error."""
    if isinstance(body, dict) and isinstance(body.get("reports"), list):
        out: list[Report | FileError] = []
        for entry in body["reports"]:
            if isinstance(entry, dict) and "report_id" in entry:
                out.append(Report.model_validate(entry, context={STORED: True}))
            else:  # a refusal is not stored: it names the file as the technician gave it, like a local one
                out.append(FileError.model_validate(entry).model_copy(update={"file": name}))
        return out
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        return [FileError.refusal(name, str(err.get("code", "service_error")), str(err.get("message", "")))]
    return [FileError.refusal(name, "service_error", f"the service answered HTTP {status} without a gemid answer")]


def send_one(url: str, path: Path, name: str, *, reference: str | None, readings: Readings | None,
             api_key: str | None, timeout: float = TIMEOUT,
             coin_mm: float | None = None, ruler: bool = False) -> tuple[list[Report | FileError], list[str]]:
    """One photo to the service: (its entries, the service's notices in words)."""
    data, ctype = _form(path, name, reference, readings, coin_mm, ruler)
    headers = {"Content-Type": ctype, "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    req = request.Request(url, data=data, method="POST", headers=headers)
    try:
        with request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServiceUnavailable(f"cannot reach the gemid service at {url}: {reason}") from exc
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    if status in (401, 403):
        message = body["error"]["message"] if isinstance(body, dict) and isinstance(body.get("error"), dict) else ""
        hint = "" if api_key else " (no key was sent: pass --api-key or set GEMID_API_KEY)"
        raise ServiceUnavailable(f"the service refused the request (HTTP {status}): {message}{hint}".rstrip(": "))
    if status == 404 and not (isinstance(body, dict) and "error" in body):
        raise ServiceUnavailable(f"no gemid service at {url} (HTTP 404)")
    notices = [n.get("message", "") for n in (body or {}).get("notices", []) if isinstance(n, dict)] \
        if isinstance(body, dict) else []
    return _entries(body, name, status), notices


def send(server: str, items: Sequence[tuple[str, Path]], *, reference: str | None, readings: Readings | None,
         grade: bool, api_key: str | None, advance: Callable[[int], None],
         note: Callable[[str], None], force: bool = False, coin_mm: float | None = None,
         ruler: bool = False) -> list[Report | FileError]:
    """Every photo to the service, in order; the entries of all of them (a tray photo gives one per stone)."""
    url = identify_url(server, grade, force)
    out: list[Report | FileError] = []
    for name, path in items:
        try:
            entries, notices = send_one(url, path, name, reference=reference, readings=readings, api_key=api_key,
                                        coin_mm=coin_mm, ruler=ruler)
        except OSError as exc:  # the photo itself could not be read here
            entries, notices = [FileError.refusal(name, "unreadable", f"cannot read the file: {exc}")], []
        for text in notices:
            note(f"{name}: {text}")
        out.extend(entries)
        advance(1)
    return out
