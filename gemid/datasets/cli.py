"""`gemid dataset ...`: audit, import and split labelled photos.

    gemid dataset audit DIR|MANIFEST [--json FILE] [--threshold N] [--strict]
    gemid dataset import DIR|CSV --out data/gems68.csv [--val-fraction 0.2 --seed 0 | --kfold K --fold I|all]
    gemid dataset split MANIFEST [--out FILE] [--val-fraction 0.2 --seed 0 | --kfold K --fold I|all]
    gemid dataset synth --n N --out DIR [--seed 0 --size 256 --cut CUT --background BACKGROUND]

Heavy modules (OpenCV, rich, the audit) are imported inside the commands, so `gemid --help` stays quick.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from gemid.datasets.thresholds import DEFAULT_COLOUR_THRESHOLD, DEFAULT_THRESHOLD, HASH_BITS


def register(subparsers: argparse._SubParsersAction) -> None:
    """`gemid dataset` and its subcommands; every flag's help names its default (`gemid dataset X --help`)."""
    p = subparsers.add_parser("dataset", help="audit, import and split labelled photos",
                              description="Audit, import and split labelled photos (manifest CSV).")
    p.set_defaults(func=lambda _args: (p.print_help(), 2)[1])
    sub = p.add_subparsers(dest="dataset_command", metavar="SUBCOMMAND")

    a = _parser(sub, "audit", "decode every photo by content; report sizes, formats, bad files, "
                              "near-duplicates within/across classes and splits")
    a.add_argument("source", type=Path, help="folder with one sub-folder per species, or a manifest CSV")
    a.add_argument("--json", type=Path, metavar="FILE",
                   help="also write the report as JSON, '-' for stdout (default: the table only)")
    _common(a)
    a.add_argument("--strict", action="store_true",
                   help="exit 1 when there are unusable files, label conflicts or split leaks")
    a.set_defaults(func=_cmd_audit)

    i = _parser(sub, "import", "folder-per-class or CSV -> manifest with a near-duplicate-aware split")
    i.add_argument("source", type=Path, help="folder with one sub-folder per species, or a CSV (map its columns)")
    i.add_argument("--out", type=Path, required=True,
                   help="manifest CSV to write; photo paths in it are relative to its folder")
    _common(i)
    _split_args(i)
    i.add_argument("--no-split", action="store_true", help="keep the splits the source gives (or none)")
    i.add_argument("--keep-unusable", action="store_true",
                   help="keep undecodable/truncated files in the manifest (default: leave them out)")
    c = i.add_argument_group("CSV sources")
    c.add_argument("--path-column", default="path", metavar="COLUMN",
                   help="column with the photo's path (default: %(default)s)")
    c.add_argument("--species-column", default="species", metavar="COLUMN",
                   help="column with the label (default: %(default)s)")
    for column, what in (("colour_grade", "colour grade"), ("clarity_grade", "clarity grade"),
                         ("split", "train/val/test split"), ("source", "source name")):
        c.add_argument(f"--{column.split('_')[0]}-column", metavar="COLUMN",
                       help=f"column with the {what} (default: {column} when the CSV has it, else none)")
    c.add_argument("--root", type=Path, help="folder relative paths in the CSV are under (default: the CSV's)")
    i.set_defaults(func=_cmd_import)

    s = _parser(sub, "split", "(re)assign train/val in a manifest, keeping near-duplicate groups whole")
    s.add_argument("manifest", type=Path, help="manifest CSV to split")
    s.add_argument("--out", type=Path, help="where to write (default: rewrite MANIFEST in place)")
    _common(s, with_source=False)
    _split_args(s)
    s.set_defaults(func=_cmd_split)

    _register_synth(sub)


def _parser(sub: argparse._SubParsersAction, name: str, text: str, **kwargs: Any) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".", **kwargs)


def _register_synth(sub: argparse._SubParsersAction) -> None:
    from gemid.datasets.synth import BACKGROUNDS, CUTS  # numpy-light at import

    p = sub.add_parser("synth", help="render synthetic stones with known colour and clarity truth",
                       description="Render synthetic loose stones (images + manifest.csv + truth.jsonl).")
    p.add_argument("--n", type=int, required=True, help="number of stones")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="the same seed renders the same stones (default: %(default)s)")
    p.add_argument("--size", type=int, default=256, help="image side in pixels (default: %(default)s)")
    p.add_argument("--cut", choices=CUTS, help="only this cut (default: any)")
    p.add_argument("--background", choices=BACKGROUNDS, help="only this background (default: any)")
    p.set_defaults(func=_cmd_synth)


def _common(p: argparse.ArgumentParser, *, with_source: bool = True) -> None:
    p.add_argument("--threshold", type=int, default=DEFAULT_THRESHOLD, metavar="BITS",
                   help=f"largest pHash Hamming distance (of {HASH_BITS} bits) at which two photos are "
                        "near-duplicates (default: %(default)s)")
    p.add_argument("--colour-threshold", type=float, default=DEFAULT_COLOUR_THRESHOLD, metavar="DELTA_E",
                   help="largest colour difference at which two photos within --threshold are still "
                        "near-duplicates: mean CIELAB delta-E between their 8x8 thumbnails (default: %(default)s)")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="decoding threads (default: %(default)s, this machine's cores up to 2)")
    if with_source:
        p.add_argument("--source", dest="source_name", help="source name recorded in the manifest "
                                                            "(default: the folder's name, e.g. gems68)")


def _split_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of each species for validation (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same split (default: %(default)s)")
    p.add_argument("--kfold", type=int, metavar="K",
                   help="K folds instead of one hold-out fraction (default: none, --val-fraction)")
    p.add_argument("--fold", type=_fold, default=0, metavar="I|all",
                   help="with --kfold: which fold (0-based) is val, or 'all' to name every row's fold (fold0, fold1…) "
                        "for `gemid train --cv` (default: %(default)s)")


def _fold(text: str) -> int | None:
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fold number or 'all', got {text!r}") from None


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _scan(rows: list, paths: list[Path], root: Path, args: argparse.Namespace) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from gemid.datasets.audit import scan

    err = _console(stderr=True)
    with Progress(TextColumn("decoding + hashing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("scan", total=len(paths))
        return scan(rows, paths, root=root, threshold=args.threshold, colour_threshold=args.colour_threshold,
                    jobs=args.jobs,
                    on_progress=lambda n: bar.advance(task, n))


def _load(source: Path, args: argparse.Namespace, *, as_import: bool) -> tuple[list, list[Path], Path, str]:
    """(rows, resolved paths, display root, source name) from a folder, a manifest or (import) any CSV."""
    from gemid.datasets.audit import rows_from
    from gemid.datasets.importers import import_csv, import_folder

    if source.is_file() and as_import:
        res = import_csv(source, path_column=args.path_column, species_column=args.species_column,
                         colour_column=args.colour_column, clarity_column=args.clarity_column,
                         split_column=args.split_column, source_column=args.source_column,
                         source=args.source_name, root=args.root)
        return res.rows, [Path(r.path) for r in res.rows], res.root, str(source)
    if source.is_dir() and getattr(args, "source_name", None):
        res = import_folder(source, source=args.source_name)
        rows, paths, root, ignored = res.rows, [Path(r.path) for r in res.rows], res.root, res.ignored
    else:
        rows, paths, root, ignored = rows_from(source)
    for f in ignored:
        print(f"note: ignored non-image file {f}", file=sys.stderr)
    return rows, paths, root, str(source)


def _run(fn: Any, args: argparse.Namespace) -> int:
    """Typed, expected failures become one clear line on stderr and exit code 2."""
    from gemid.datasets.manifest import ManifestError
    from gemid.datasets.splits import SplitError

    try:
        return fn(args)
    except (ManifestError, SplitError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _cmd_audit(args: argparse.Namespace) -> int:
    return _run(_audit, args)


def _audit(args: argparse.Namespace) -> int:
    from gemid.datasets.audit import build_report, render

    rows, paths, root, name = _load(args.source, args, as_import=False)
    report = build_report(_scan(rows, paths, root, args), source=name)
    text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    if args.json and str(args.json) == "-":
        sys.stdout.write(text)
    else:
        render(report, _console())
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(text, encoding="utf-8")
            print(f"wrote {args.json}")
    return 1 if args.strict and report["problems_found"] else 0


def _split_rows(rows: list, sc: Any, args: argparse.Namespace) -> list:
    from gemid.datasets.splits import assign_splits, straddling_groups

    out = assign_splits(rows, sc.groups, val_fraction=args.val_fraction, seed=args.seed,
                        kfold=args.kfold, fold=args.fold)
    leaks = straddling_groups(out, sc.groups)
    if leaks:  # cannot happen by construction; refuse to write a leaking split if it ever does
        raise ValueError(f"internal error: {len(leaks)} near-duplicate group(s) straddle splits")
    return out


def _summary(rows: list, sc: Any, out: Path, dropped: int) -> None:
    from collections import Counter

    counts = Counter(r.split or "(none)" for r in rows)
    parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    kept = sum(len(g) for g in sc.groups)
    print(f"wrote {out}: {len(rows)} photos ({parts}), {len({r.species for r in rows})} species; "
          f"{len(sc.groups)} near-duplicate group(s) ({kept} photos) kept whole"
          + (f"; left out {dropped} unusable file(s)" if dropped else ""))


def _cmd_import(args: argparse.Namespace) -> int:
    return _run(_import, args)


def _import(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from gemid.datasets.manifest import write_manifest

    rows, paths, root, _ = _load(args.source, args, as_import=True)
    sc = _scan(rows, paths, root, args)
    for i, info in enumerate(sc.infos):
        if not info.ok:
            print(f"{'kept' if args.keep_unusable else 'left out'} {sc.display_path(i)}: {info.problem} "
                  f"({info.message})", file=sys.stderr)
    keep = list(range(len(rows))) if args.keep_unusable else sc.usable
    index = {old: new for new, old in enumerate(keep)}
    kept_rows = [rows[i] for i in keep]
    sc = replace(sc, rows=kept_rows, infos=[sc.infos[i] for i in keep],
                 groups=[[index[i] for i in g if i in index] for g in sc.groups])
    if not args.no_split:
        kept_rows = _split_rows(kept_rows, sc, args)
    write_manifest(kept_rows, args.out)
    _summary(kept_rows, sc, args.out, len(rows) - len(keep))
    return 0


def _cmd_split(args: argparse.Namespace) -> int:
    return _run(_split, args)


def _split(args: argparse.Namespace) -> int:
    from gemid.datasets.audit import common_root
    from gemid.datasets.manifest import Manifest, read_manifest, write_manifest

    m = read_manifest(args.manifest)
    rows = list(m.rows)
    paths = [m.resolve(r) for r in rows]
    sc = _scan(rows, paths, common_root(paths, m.root), args)
    bad = [i for i, info in enumerate(sc.infos) if not info.ok]
    for i in bad:
        print(f"warning: {sc.display_path(i)}: {sc.infos[i].problem} ({sc.infos[i].message})", file=sys.stderr)
    new = _split_rows(rows, sc, args)
    out = args.out or args.manifest
    write_manifest(Manifest(rows=tuple(new), root=m.root), out)
    _summary(new, sc, out, 0)
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from gemid.datasets.synth import render_dataset

    constraints = {k: v for k, v in (("cut", args.cut), ("background", args.background)) if v}
    try:
        path = render_dataset(args.n, args.out, seed=args.seed, size=args.size, **constraints)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.n} stones: {path}")
    return 0
