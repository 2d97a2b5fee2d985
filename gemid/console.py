"""What gemid's commands print on the technician's console: brief warnings, no tracebacks unless --debug.

Shared by `gemid identify` and its parcel worker processes (which print to the same console), so that a
warning reads the same wherever the photo was analysed.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator


class _BriefFormatter(logging.Formatter):
    """Log lines without tracebacks: a technician sees what failed, not Python internals."""

    def format(self, record: logging.LogRecord) -> str:
        return f"warning: {record.getMessage()}"


def _brief_logging(debug: bool) -> tuple[list[logging.Handler], int, bool]:
    """Brief warnings on stderr (tracebacks only with --debug); returns what it replaced."""
    logger = logging.getLogger("gemid")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    handler = logging.StreamHandler(sys.stderr)
    if not debug:
        handler.setFormatter(_BriefFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    logger.propagate = False
    return saved


def quiet_decoder_warnings(debug: bool) -> None:
    import warnings

    # decompression bombs are refused by gemid.vision.decode with a message of its own
    from PIL import Image

    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    if not debug:  # a decoder's own notes ("Corrupt EXIF data" …) name library files, not the photo;
        # decode already acts on them (a broken EXIF block means "as stored") and reports what matters
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")


def worker_console(debug: bool) -> None:
    """A parcel worker process speaks to the technician's console as `gemid identify` itself does."""
    _brief_logging(debug)
    quiet_decoder_warnings(debug)


@contextlib.contextmanager
def cli_logging(debug: bool) -> Iterator[None]:
    """Brief warnings on stderr while the command runs; the logger is restored after (in-process callers)."""
    logger = logging.getLogger("gemid")
    saved = _brief_logging(debug)
    try:
        yield
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]
