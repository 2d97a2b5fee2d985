"""The `gemid` console command.

Each area registers its own subcommands; heavy imports (torch, onnxruntime, fastapi) happen only inside
the handlers, so `gemid identify` never loads torch and `gemid --help` is instant.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from gemid import __version__

    parser = argparse.ArgumentParser(prog="gemid", description="Preliminary gemstone identification from photos.")
    parser.add_argument("--version", action="version", version=f"gemid {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # each area registers its own subcommands; their modules import nothing heavy at the top
    from gemid.datasets import cli as datasets_cli
    from gemid.serve import accounts_cli, backup, field_cli, trust_cli
    from gemid.serve import cli as serve_cli
    from gemid.training import cli as training_cli
    from gemid.vision import cli as vision_cli

    # field_cli after datasets; accounts_cli and trust_cli share the `keys` group
    for area in (vision_cli, serve_cli, accounts_cli, datasets_cli, training_cli, field_cli, trust_cli, backup):
        area.register(sub)
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
