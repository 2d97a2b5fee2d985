"""Downloads the service answers: a body with the headers that make a browser save it under a safe name
(the CSV exports, the parcel manifest, the scale card)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi.responses import Response

CSV_TYPE = "text/csv; charset=utf-8"


def attachment(body: str | bytes, name: str, media_type: str = CSV_TYPE, ext: str = "csv") -> Response:
    """`body` as a download called `name`.`ext`: an ASCII-safe filename, and the exact one in UTF-8 (RFC 6266)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:80] or "export"
    return Response(body, media_type=media_type, headers={
        "Content-Disposition": f"attachment; filename=\"{safe}.{ext}\"; filename*=UTF-8''{quote(name[:80])}.{ext}"})
