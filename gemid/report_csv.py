"""The one CSV export of reports: the service's /v1/reports.csv and parcels, and `gemid identify --csv`.

The columns are `gemid.report.ROW_FIELDS`, each row `gemid.report.table_row`, one per stone.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from gemid.report import ROW_FIELDS, FileError, Report, table_row

_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet would run as a formula at a cell's start


def _csv_cell(value: str) -> str:
    """A cell a spreadsheet shows as text: a file name or reference typed as `=HYPERLINK(...)` must not run as
    a formula on the desk PC that opens the export."""
    return "'" + value if value.startswith(_FORMULA) else value


def rows_csv(entries: Sequence[Report | FileError]) -> str:
    """Reports (and refusals, which keep their row) as CSV, ROW_FIELDS as the header, one row per stone: the
    one export of the service's /v1/reports.csv and parcels and of `gemid identify --csv`. A byte-order mark
    so spreadsheet programs read UTF-8 (Urdu references, µ in a file name); formulas neutralised."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.DictWriter(out, fieldnames=ROW_FIELDS, restval="", lineterminator="\r\n")
    writer.writeheader()
    for r in entries:
        writer.writerow({k: _csv_cell(v) for k, v in table_row(r).items()})
    return out.getvalue()
