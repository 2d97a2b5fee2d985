"""Reading /v1/identify's multipart body without holding its photos in memory.

Starlette's own form parser keeps each file in a SpooledTemporaryFile (unnamed), and the route then read
every photo whole into the server's memory to send it to a worker: 32 clients sending 19 MB photos took the
server to 1.07 GB. Here each photo streams straight into a named file in the data folder's `incoming/`
(the store's own disk: a full disk is found here, not half-way through storing), the worker reads it from
there by path, and the store copies it into place; the server process holds a few 64 KiB chunks per upload.

Two more things differ from Starlette's parser:
- a part's headers may be up to MAX_PART_HEADER bytes, so a long file name (5,000 characters) is read and
  then cut at the report's limit like a short one, instead of failing the body as "Invalid multipart data";
- a file past `max_bytes` is not written any further (its size is still counted): it is refused as too
  large, and a 1 GB body never lands on disk as one photo.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import python_multipart
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData, Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

MAX_PART_HEADER = 64 * 1024  # one part's header line: a file name far longer than any the store keeps
UPLOAD_PREFIX = ".upload-"


class SpooledUpload(UploadFile):
    """An uploaded file on disk under `path`; `oversize` when it passed the per-photo limit (the bytes after
    the limit were counted, not kept)."""

    path: Path
    received: int = 0  # bytes sent for this file, kept or not
    oversize: bool = False


class UploadParser(MultiPartParser):
    """Starlette's multipart parser, writing files to named files in `spool_dir` (see the module's text)."""

    def __init__(self, headers: Headers, stream: Any, *, spool_dir: Path, max_bytes: int, max_files: int,
                 max_fields: int, max_part_size: int) -> None:
        super().__init__(headers, stream, max_files=max_files, max_fields=max_fields, max_part_size=max_part_size)
        self.spool_dir = spool_dir
        self.max_bytes = max_bytes
        self.spooled: list[SpooledUpload] = []

    def on_headers_finished(self) -> None:
        super().on_headers_finished()
        part = self._current_part
        if part.file is None:
            return
        spooled_by_starlette = self._files_to_close_on_error.pop()
        spooled_by_starlette.close()
        fd, name = tempfile.mkstemp(dir=self.spool_dir, prefix=UPLOAD_PREFIX)
        upload = SpooledUpload(file=os.fdopen(fd, "w+b"), size=0, filename=part.file.filename,
                               headers=part.file.headers)
        upload.path = Path(name)
        upload.received = 0
        upload.oversize = False
        self.spooled.append(upload)
        part.file = upload

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        upload = self._current_part.file
        if not isinstance(upload, SpooledUpload):
            super().on_part_data(data, start, end)
            return
        upload.received += end - start
        if upload.received > self.max_bytes:  # counted, not kept: the photo is refused as too large
            upload.oversize = True
            return
        # written here, on the event loop: a page-cache write of one chunk is cheaper than a thread hop
        upload.file.write(data[start:end])
        upload.size = upload.received

    async def parse(self) -> FormData:
        """Starlette's `parse`, with room for long part headers and the files flushed to disk at the end."""
        _, params = parse_options_header(self.headers["Content-Type"])
        charset = params.get(b"charset", "utf-8")
        if isinstance(charset, bytes):
            charset = charset.decode("latin-1")
        try:
            self._charset = codecs.lookup(charset).name
        except LookupError:
            self._charset = "latin-1"
        try:
            boundary = params[b"boundary"]
        except KeyError:
            raise MultiPartException("Missing boundary in multipart.") from None
        callbacks: Any = {
            "on_part_begin": self.on_part_begin, "on_part_data": self.on_part_data, "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field, "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end, "on_headers_finished": self.on_headers_finished,
            "on_end": self.on_end,
        }
        try:
            parser = python_multipart.MultipartParser(boundary, callbacks, max_header_size=MAX_PART_HEADER)
            async for chunk in self.stream:
                parser.write(chunk)
            parser.finalize()
            for upload in self.spooled:
                upload.file.flush()  # the worker reads it by name
                upload.file.seek(0)
        except BaseException as exc:
            discard(self.spooled)
            if isinstance(exc, FormParserError):
                raise MultiPartException("Invalid multipart data.") from exc
            raise
        return FormData(self.items)


def discard(uploads: list[SpooledUpload]) -> None:
    """Close and delete the spooled files (the form is done with, or failed)."""
    for upload in uploads:
        with contextlib.suppress(OSError):
            upload.file.close()
        with contextlib.suppress(OSError):
            upload.path.unlink()


def clear_spool(spool_dir: Path) -> int:
    """Delete what a previous run left in `spool_dir` (a crash mid-request); the count deleted."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    n = 0
    for leftover in spool_dir.glob(UPLOAD_PREFIX + "*"):
        with contextlib.suppress(OSError):
            leftover.unlink()
            n += 1
    return n
