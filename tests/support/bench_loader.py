"""The benchmark scripts under bench/ as modules, for the tests that check their measurements: each script
runs as `python -m bench.NAME`, but the repository root is not on the tests' path."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench"


@contextmanager
def bench_module(name: str) -> Iterator[ModuleType]:
    """bench/NAME.py loaded under a name of its own (registered while in use: dataclasses look their module
    up), removed afterwards so tests cannot see each other's copy."""
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)
