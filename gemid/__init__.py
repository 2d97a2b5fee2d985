"""gemid: preliminary gemstone identification and grading from photos.

The documented way to use gemid from Python::

    from gemid import Identifier

    identifier = Identifier()                 # the shipped model bundle, verified on load
    report = identifier.identify("stone.jpg")  # a gemid.report.Report
    print(report.species.top[0].label, report.colour, report.clarity)

`Identifier`, `Report`, `Readings` and `DISCLAIMER` are loaded on first use, so `import gemid` (and every
`gemid` command's start-up) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["DISCLAIMER", "Identifier", "Readings", "Report", "__version__"]

if TYPE_CHECKING:
    from gemid.report import DISCLAIMER, Readings, Report
    from gemid.vision.pipeline import Identifier

_LAZY = {"Identifier": "gemid.vision.pipeline", "Report": "gemid.report", "Readings": "gemid.report",
         "DISCLAIMER": "gemid.report"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gemid' has no attribute {name!r}")
