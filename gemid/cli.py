"""The `gemid` console command.

Each area registers its own subcommands; heavy imports (torch, onnxruntime, fastapi) happen only inside
the handlers, so `gemid identify` never loads torch and `gemid --help` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# module -> exposes register(subparsers); order is the order in --help
_AREAS = (
    "gemid.vision.cli",
    "gemid.serve.cli",
    "gemid.datasets.cli",
    "gemid.training.cli",
)


def build_parser() -> argparse.ArgumentParser:
    from gemid import __version__

    parser = argparse.ArgumentParser(prog="gemid", description="Preliminary gemstone identification from photos.")
    parser.add_argument("--version", action="version", version=f"gemid {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _AREAS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # an area not built yet must not break the others
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
