"""Who is using a data folder: every running service holds a shared lock on `<data>/serve.lock`, and
`gemid restore` needs it exclusively, so it refuses to replace the store under a service.

An outside try ran `gemid restore --force` beside a running `gemid serve`: the restore replaced gemid.db
and reported success, while the service went on writing (and signing, with a key the restored store did not
know) into the deleted file; every report made after the restore was lost at the next start. A POSIX
`flock` is released by the kernel when its process ends, crash included, so a stale lock cannot block a
restore. It guards one machine's SQLite store; a PostgreSQL store shared by replicas elsewhere is the
administrator's to quiesce (the README says so).
"""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import IO

LOCK_NAME = "serve.lock"

__all__ = ["LOCK_NAME", "DataFolderBusy", "hold_shared", "try_exclusive"]


class DataFolderBusy(RuntimeError):
    """A gemid service holds the data folder."""


def hold_shared(data_dir: Path) -> IO[bytes]:
    """Take the folder's shared lock for a service process (several may hold it: uvicorn's workers, tests'
    apps); close the returned file to release it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    f = open(data_dir / LOCK_NAME, "ab")  # noqa: SIM115 - held for the service's life, closed by its caller
    fcntl.flock(f.fileno(), fcntl.LOCK_SH)
    return f


def try_exclusive(data_dir: Path) -> IO[bytes] | None:
    """The folder's lock alone (None when the folder does not exist yet), or DataFolderBusy when a service
    holds it."""
    if not data_dir.is_dir():
        return None
    f = open(data_dir / LOCK_NAME, "ab")  # noqa: SIM115 - returned to the caller, who closes it
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise DataFolderBusy(f"a gemid service is using {data_dir} (it holds {data_dir / LOCK_NAME}); stop it "
                             "first, then restore") from None
    return f
