"""`gemid identify` (photos → reports); `gemid models` (the bundles found) is `gemid.vision.models_cli`.

A parcel of stones is the unit of work at a certification desk: many files, folders or globs at once,
one bad file reported in its own row while the others still run, and an exit code that says whether any
failed (0 all good, 1 some failed, 2 could not run). Heavy imports happen inside the handlers.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gemid.messages import percent
from gemid.vision import models_cli

if TYPE_CHECKING:
    from gemid.report import FileError, ModelInfo, Readings, Report

IMAGE_EXTS = {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".heic", ".heif", ".avif"}
PROGRESS_OVER = 3  # show a progress bar for more files than this


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _number(text: str) -> float:  # a decimal comma as the page and the API take it ("1,762")
    from gemid.messages import decimal_point

    try:
        return float(decimal_point(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _coin_mm(text: str) -> float:
    from gemid.errors import GemidInputError
    from gemid.vision.coin import coin_diameter

    try:
        return coin_diameter(text)
    except GemidInputError as exc:
        raise argparse.ArgumentTypeError(exc.message.removeprefix("coin_mm: ")) from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "identify", help="identify gemstones in photos (files, folders, globs)",
        description="Preliminary species, colour and clarity from photos, with the confirmatory test to do "
                    "next. Exit code: 0 every file analysed, 1 some files failed, 2 could not run.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders (searched recursively) or globs")
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print one JSON array of reports on stdout")
    out.add_argument("--csv", metavar="FILE", type=Path, help="also write one row per stone to FILE")
    out.add_argument("--top", metavar="N", type=_positive_int, default=3,
                     help="candidates to show (default: 3; the JSON always has at least 10)")
    model = p.add_argument_group("model")
    model.add_argument("--model", metavar="DIR", type=Path, default=None,
                       help="model bundle directory (default: the shipped models/gemid-species)")
    model.add_argument("--int8", action="store_true", help="use the int8-quantised model (faster)")
    model.add_argument("--threads", metavar="N", type=_positive_int, default=None,
                       help="ONNX Runtime threads (default: one per core; with --jobs, 1 per worker)")
    model.add_argument("--jobs", metavar="N", type=_positive_int, default=None,
                       help="worker processes for a parcel (default: one per core for more than 32 files, "
                            "else 1; each loads its own copy of the model, ~150-250 MB)")
    service = p.add_argument_group("service", "send the photos to a running gemid service instead of analysing "
                                   "them here: the reports land in its store (History, parcels)")
    service.add_argument("--server", metavar="URL", help="the service's address, e.g. http://lab-pc:8000/")
    service.add_argument("--api-key", metavar="KEY", default=None,
                         help="the service's key, sent as 'Authorization: Bearer' (default: $GEMID_API_KEY)")
    service.add_argument("--force", action="store_true",
                         help="store a photo again even when the service already holds it under --reference "
                              "(without it, the stored reports are shown and nothing new is stored)")
    p.add_argument("--reference", metavar="REF", help="parcel or lot number recorded in every report")
    scale = p.add_mutually_exclusive_group()  # a coin or a ruler beside the stones, not both
    scale.add_argument("--coin-mm", metavar="MM", type=_coin_mm, default=None,
                       help="a coin of this diameter lies beside the stones, as their scale: each stone is measured "
                            "in mm (gemid's printed scale card, when it is in the photo, is used instead, more exact)")
    scale.add_argument("--ruler", action="store_true", help="a millimetre ruler lies beside the stones, as their "
                       "scale: each stone is measured in mm (the scale card, when in the photo, is used instead)")
    p.add_argument("--no-grade", dest="grade", action="store_false",
                   help="skip colour and clarity grading: a quick species screen (several times faster)")
    add_reading_flags(p.add_argument_group("readings", "confirmatory test readings: re-rank the photo's candidates"))
    p.add_argument("--debug", action="store_true", help="show internal error details")
    p.set_defaults(func=_identify)

    models_cli.register(sub)


# the flag a reading field is given on the command line, where it is not the field's own name
_READING_FLAGS = {"uv_lw": "--uv", "uv_sw": "--uv-sw"}


def add_reading_flags(group: argparse._ArgumentGroup) -> None:
    """One flag per field of `Readings`, made from the schema itself so the CLI cannot drift from the API."""
    import typing

    from gemid.report import Readings

    for name, field in Readings.model_fields.items():
        flag = _READING_FLAGS.get(name, "--" + name.replace("_", "-"))
        text = field.description
        kinds = [a for a in typing.get_args(field.annotation) if a is not type(None)]
        if kinds == [bool]:
            group.add_argument(flag, dest=name, action="store_const", const=True, default=None, help=text)
        elif kinds and typing.get_origin(kinds[0]) is typing.Literal:
            group.add_argument(flag, dest=name, choices=list(typing.get_args(kinds[0])), help=text)
        else:
            group.add_argument(flag, dest=name, type=_number, metavar="X", help=text)


def reading_flag(name: str) -> str:
    return _READING_FLAGS.get(name, "--" + name.replace("_", "-"))


# --- identify -------------------------------------------------------------------------------------------


def expand_paths(args: list[str]) -> list[tuple[str, Path | None, str | None]]:
    """(shown name, path or None, error message or None) for every file the arguments name, in order."""
    out: list[tuple[str, Path | None, str | None]] = []
    seen: set[Path] = set()

    def add(path: Path, shown: str) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            out.append((shown, path, None))

    def add_dir(d: Path) -> int:
        found = sorted(f for f in d.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS
                       and not any(part.startswith(".") for part in f.relative_to(d).parts))
        for f in found:
            add(f, str(f))
        return len(found)

    for arg in args:
        path = Path(arg)
        if path.is_dir():
            if not add_dir(path):
                out.append((arg, None, f"no image files ({', '.join(sorted(IMAGE_EXTS))}) in this folder"))
        elif path.exists():
            add(path, arg)
        elif glob.has_magic(arg):
            matches = sorted(glob.glob(arg, recursive=True))
            n = 0
            for match in matches:
                mp = Path(match)
                if mp.is_dir():
                    n += add_dir(mp)
                elif mp.is_file():
                    add(mp, match)
                    n += 1
            if not n:
                out.append((arg, None, "no files match this pattern"))
        else:
            out.append((arg, None, "no such file or folder"))
    return out


def _usage_error(message: str) -> int:
    print(f"gemid identify: error: {message}", file=sys.stderr)
    return 2


def _identify(args: argparse.Namespace) -> int:
    import warnings

    from gemid.console import cli_logging, quiet_decoder_warnings

    with cli_logging(args.debug), warnings.catch_warnings():
        quiet_decoder_warnings(args.debug)
        return _run_identify(args)


def _run_identify(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from gemid.errors import ModelError
    from gemid.messages import validation_message
    from gemid.report import MAX_REFERENCE, FileError, Readings
    from gemid.vision import parcel
    from gemid.vision.bundle import DEFAULT_BUNDLE_DIR
    from gemid.vision.classify import MIN_TOP_K
    from gemid.vision.pipeline import CHUNK, Identifier
    from gemid.vision.workers import ModelSpec, limit_blas

    try:
        readings = Readings(**{k: getattr(args, k) for k in Readings.model_fields})
    except ValidationError as exc:
        problems = validation_message(exc, field=lambda loc: reading_flag(str(loc[0])) if loc else "readings",
                                      limit=None)
        return _usage_error(f"invalid reading: {problems}")
    if args.reference is not None and len(args.reference) > MAX_REFERENCE:
        return _usage_error(f"--reference is longer than {MAX_REFERENCE} characters")

    files = expand_paths(args.paths)
    if not readings.is_empty() and len(files) > 1:  # one stone's readings, never spread over a parcel
        return _usage_error(f"readings describe one stone: give one photo with them, not {len(files)} files")
    pending = [(shown, path) for shown, path, err in files if err is None]
    errors = {i: FileError.refusal(shown, "not_found", err)
              for i, (shown, _p, err) in enumerate(files) if err is not None}
    if args.server:
        return _identify_remote(args, files, pending, errors, readings)
    if args.force:
        return _usage_error("--force only applies with --server: a run on this computer stores nothing")
    jobs = args.jobs or parcel.default_jobs(len(pending), os.cpu_count() or 1)
    jobs = min(jobs, max(1, len(pending)))
    # one spec for this process and the workers; in this process `threads` None means one per core
    spec = ModelSpec(bundle_dir=Path(args.model or DEFAULT_BUNDLE_DIR), variant="int8" if args.int8 else "fp32",
                     threads=args.threads or 1, top_k=max(MIN_TOP_K, args.top), console=True, debug=args.debug)

    def load(load_model: bool = True) -> Identifier:
        limit_blas(1)  # the graders' small matrix products: threads only wait on each other (workers.limit_blas)
        return Identifier(spec.bundle_dir, variant=spec.variant, threads=args.threads, top_k=spec.top_k,
                          load_model=load_model)

    try:
        # with workers, this process only reads the bundle (the table's title, a clear error if it is missing)
        identifier = load(load_model=jobs == 1)
    except ModelError as exc:
        print(f"gemid identify: cannot load the model: {exc}", file=sys.stderr)
        return 2

    request = parcel.Request(args.reference, readings, args.grade, coin_mm=args.coin_mm, ruler=args.ruler)

    def run(advance: Callable[[int], None]) -> list[list[Report | FileError]]:
        nonlocal identifier
        if jobs > 1:
            out = parcel.run_parallel(spec, pending, request, jobs, advance)
            if out is not None:
                return out
            identifier = load()
        out = []
        for i in range(0, len(pending), CHUNK):
            chunk = pending[i : i + CHUNK]
            out.extend(parcel.run_items(identifier, chunk, request))
            advance(len(chunk))
        return out

    try:
        if len(pending) > PROGRESS_OVER:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            with Progress(TextColumn("identifying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                          console=Console(stderr=True), transient=True) as bar:
                task = bar.add_task("identify", total=len(pending))
                done = run(lambda n: bar.advance(task, n))
        else:
            done = run(lambda n: None)
    except ModelError as exc:
        print(f"gemid identify: cannot load the model: {exc}", file=sys.stderr)
        return 2

    results: list[Report | FileError] = []  # every stone of every photo (a tray photo gives several), in order
    it = iter(done)
    for i in range(len(files)):
        results.extend([errors[i]] if i in errors else next(it))
    return _output(args, results, identifier.model_info)


def _identify_remote(args: argparse.Namespace, files: list[tuple[str, Path | None, str | None]],
                     pending: list[tuple[str, Path]], errors: dict[int, FileError],
                     readings: Readings) -> int:
    """--server: each photo to the service (gemid.vision.remote), its answers printed as a local run's."""
    from rich.console import Console

    from gemid.report import FileError
    from gemid.vision import remote

    key = args.api_key if args.api_key is not None else os.environ.get("GEMID_API_KEY") or None
    err = Console(stderr=True)
    done: dict[str, list[Report | FileError]] = {}
    try:
        for shown, path in pending:
            done[shown] = remote.send(args.server, [(shown, path)], reference=args.reference,
                                      readings=None if readings.is_empty() else readings, grade=args.grade,
                                      api_key=key, advance=lambda n: None, note=lambda t: err.print(t),
                                      force=args.force, coin_mm=args.coin_mm, ruler=args.ruler)
    except remote.ServiceUnavailable as exc:
        print(f"gemid identify: {exc}", file=sys.stderr)
        return 2
    results: list[Report | FileError] = []
    for i, (shown, _path, _err) in enumerate(files):
        results.extend([errors[i]] if i in errors else done[shown])
    info = next((r.model for r in results if not isinstance(r, FileError)), None)
    return _output(args, results, info)


def _output(args: argparse.Namespace, results: list[Report | FileError], info: ModelInfo | None) -> int:
    """The JSON, table and CSV of a run, local or on a service; the exit code."""
    from gemid.report import FileError

    try:
        if args.json:
            print(json.dumps([_entry(r) for r in results], ensure_ascii=False, indent=2))
        else:
            _print_table(results, args.top, info)
        sys.stdout.flush()
    except BrokenPipeError:  # `gemid identify … | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if args.csv:
        try:
            write_csv(args.csv, results)
        except OSError as exc:
            print(f"gemid identify: cannot write {args.csv}: {exc}", file=sys.stderr)
            return 1
    return 1 if any(isinstance(r, FileError) for r in results) else 0


def _entry(r: Report | FileError) -> dict[str, Any]:
    return r.model_dump(mode="json")


def _conclusion_cell(r: Report, style: dict[str, str]) -> str:
    c = r.conclusion
    if c is None:
        return r.species.decision
    head = f"[{style[c.decision]}]{c.decision}[/{style[c.decision]}]"
    if c.decision in ("refer", "rejected"):  # no answer to give: why (and what the readings fit, if any)
        return head + (f"\nfits: {', '.join(c.fits)}" if c.fits else "") + f"\n{c.reason}"
    if c.label:
        head += f"\n{c.label}" + (f" {percent(c.probability)}" if c.probability else "")
    head += f"\n[dim]{'photo + readings' if c.basis == 'photo+readings' else 'from the photo'}[/dim]"
    if c.cannot_exclude:
        head += f"\n[yellow]cannot exclude: {', '.join(c.cannot_exclude)}[/yellow]"
    return head


def _colour_short(r: Report) -> str:
    c = r.colour
    if c is None:
        return ""
    if c.status != "graded" or c.tone is None or c.saturation is None:
        return c.status.replace("_", " ")
    return f"{c.hue}\ntone {c.tone.value} · sat {c.saturation.value}\n[{c.hex}]██[/]"


def write_csv(path: Path, results: list[Report | FileError]) -> None:
    """One row per stone (a tray photo gives several); errors keep their row so nothing is silently dropped. The
    service's CSV, byte for byte in its columns (`gemid.report_csv.rows_csv`)."""
    from gemid.report_csv import rows_csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        f.write(rows_csv(results))


def _print_table(results: list[Report | FileError], top_n: int, info: ModelInfo | None) -> None:
    from rich.console import Console
    from rich.table import Table

    from gemid.report import FileError, clarity_text, next_test

    style = {"identified": "green", "uncertain": "yellow", "refer": "magenta", "rejected": "red"}
    console = Console()
    wide = console.width >= WIDE_TABLE
    title = f"gemid — {info.name} {info.version} ({info.variant})" if info else "gemid"
    table = Table(title=title, show_lines=True)
    # words wrap at spaces; a word longer than its column ends in "…" instead of breaking mid-word, and the
    # narrowest columns still hold "identified", "uncertain" and a grade; a file name, a desk's key to the
    # stone, folds whole onto a second line rather than lose its end ("emerald_0.…")
    for col, ratio, least in _COLUMNS[: None if wide else -1]:
        table.add_column(col, overflow="fold" if col == "File" else "ellipsis", ratio=ratio, min_width=least)
    for r in results:
        name = Path(r.file).name if r.file else ""
        if isinstance(r, FileError):
            # the refusal where a result would be: "error" and its code as the conclusion, the message beside it
            cells = [name, f"[red]error[/red]\n[dim]{r.error.code}[/dim]", f"[red]{r.error.message}[/red]", "", "",
                     "", ""]
            table.add_row(*cells[: len(table.columns)])
            continue
        name += _stone_cell(r)
        species = f"{r.species.decision}\n" + "\n".join(
            f"{c.label} {percent(c.probability)}" for c in r.species.top[:top_n])
        warnings = "\n".join(w.message for w in r.quality.warnings)
        if not wide and warnings:
            name += f"\n[yellow]{warnings}[/yellow]"
        cells = [name, _conclusion_cell(r, style), species, _colour_short(r), clarity_text(r), next_test(r), warnings]
        table.add_row(*cells[: len(table.columns)])
    console.print(table)
    console.print(closing_counts(results))
    console.print("[dim]" + results_disclaimer() + "[/dim]")


WIDE_TABLE = 120  # columns from which warnings get a column of their own (else they go under the file name)
_COLUMNS = (("File", 2, 8), ("Conclusion", 3, 11), ("From the photo", 3, 11), ("Colour", 2, 8),
            ("Clarity", 2, 7), ("Next test", 2, 8), ("Warnings", 2, 10))


def _stone_cell(r: Report) -> str:
    """Under the file's name: which stone of a tray photo this row is, its cut shape and, with a scale in the
    photo (the card, a coin), its size (a tray photo gives a row per stone, all of the same file)."""
    s = r.stone
    if s is None:
        return ""
    lines = [f"stone {s.index} of {s.count}"] if s.count > 1 else []
    if s.shape is not None:
        lines.append(f"{s.shape.label.replace('_', ' ')} {percent(s.shape.probability)}")
    if s.size is not None and s.size.status == "measured":
        lines.append(f"{s.size.length_mm:.2f} × {s.size.width_mm:.2f} mm")
    elif s.size is not None:  # a scale was there (or asked for) and this stone has no size: say why
        lines.append("no size: " + (s.size.reason or "it could not be measured"))
    return "".join(f"\n[dim]{line}[/dim]" for line in lines)


def closing_counts(results: list[Report | FileError]) -> str:
    """The line that closes a parcel: how many photos and stones, how many of each conclusion, and how many
    files failed. A tray photo's stones each have a row (stone 1 of n starts its photo)."""
    from gemid.report import FileError

    counts = dict.fromkeys(("identified", "uncertain", "refer", "rejected"), 0)
    errors = photos = 0
    for r in results:
        if isinstance(r, FileError):
            errors += 1
        else:
            counts[r.decision] += 1
            photos += int(r.stone is None or r.stone.index == 1)
    parts = [f"{n} {word}" for word, n in counts.items()] + [f"{errors} error{'s' if errors != 1 else ''}"]
    stones = len(results) - errors
    head = f"{len(results)} file{'s' if len(results) != 1 else ''}"
    if stones > photos:  # a photo held several stones
        files = photos + errors
        head = (f"{files} file{'s' if files != 1 else ''}, {stones} stone{'s' if stones != 1 else ''}")
    return f"{head}: " + " · ".join(parts)


def results_disclaimer() -> str:
    from gemid.report import DISCLAIMER

    return DISCLAIMER
