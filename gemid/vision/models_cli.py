"""`gemid models`: the model bundles found (the species model's `bundle.json`, the cut-shape model's
`shape.json`), their identity, metrics and each file's sha256 check."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from gemid.vision.bundle import MODELS_DIR


def register(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("models", help="list the model bundles found and their metrics",
                       description="Model bundles under DIR/*/bundle.json (species) and DIR/*/shape.json "
                                   "(cut shape), with metrics and a sha256 check of each file.")
    m.add_argument("--dir", type=Path, default=MODELS_DIR, help=f"where to look (default: {MODELS_DIR})")
    m.add_argument("--json", action="store_true", help="print JSON instead of a table")
    m.set_defaults(func=_models)


def describe_bundle(meta: Path) -> dict[str, Any]:
    """What `gemid models` shows for one bundle.json: identity, metrics and each ONNX file's sha256 check."""
    from gemid.errors import ModelError
    from gemid.vision.bundle import load_bundle, sha256_file

    root = meta.parent
    try:
        b = load_bundle(root, verify=False)
    except ModelError as exc:
        return {"dir": str(root), "error": str(exc)}
    files = {}
    for variant, entry in b.files.items():
        path = root / entry.path
        status = ("missing" if not path.is_file()
                  else "ok" if sha256_file(path) == entry.sha256 else "altered (sha256 mismatch)")
        files[variant] = {"path": entry.path, "sha256": entry.sha256, "status": status}
    metrics = {k: v for k, v in b.metrics.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and (k.startswith("val_") or k == "ece")}
    return {"dir": str(root), "name": b.name, "version": b.version, "created_at": b.created_at,
            "labels": len(b.labels), "input_size": b.input.size, "temperature": b.temperature,
            "heads": list(b.heads), "metrics": metrics, "files": files}


def describe_shape(meta: Path) -> dict[str, Any]:
    """What `gemid models` shows for the cut-shape model's shape.json (gemid.vision.shape): the same columns."""
    from gemid.vision.bundle import sha256_file

    root = meta.parent
    try:
        config = json.loads(meta.read_text(encoding="utf-8"))
        files = {}
        for part, entry in config["files"].items():
            path = root / entry["path"]
            status = ("missing" if not path.is_file()
                      else "ok" if sha256_file(path) == entry["sha256"] else "altered (sha256 mismatch)")
            files[part] = {"path": entry["path"], "sha256": entry["sha256"], "status": status}
        metrics = {k: v for k, v in config.get("chosen", {}).items()
                   if isinstance(v, float) and not isinstance(v, bool) and "top1" in k}
        return {"dir": str(root), "name": config.get("name", root.name), "version": config.get("version", "-"),
                "created_at": None, "labels": len(config["labels"]), "input_size": None, "temperature":
                config.get("temperature"), "heads": [], "metrics": metrics, "files": files}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return {"dir": str(root), "error": f"{meta} is not a readable shape model: {exc}"}


def _models(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    found = sorted(Path(args.dir).glob("*/bundle.json"))
    rows = [describe_bundle(m) for m in found] + [describe_shape(m) for m in sorted(Path(args.dir).glob("*/shape.json"))]
    healthy = bool(rows) and not any(
        "error" in r or any(f["status"] != "ok" for f in r["files"].values()) for r in rows)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0 if healthy else 1
    console = Console()
    if not rows:
        console.print(f"no model bundles under {args.dir} (looked for */bundle.json and */shape.json)")
        return 1
    table = Table(title=f"model bundles in {args.dir}")
    for col in ("Bundle", "Version", "Labels", "Metrics", "Files"):
        table.add_column(col, overflow="fold")
    for r in rows:
        if "error" in r:
            table.add_row(r["dir"], "", "", "", f"[red]{r['error']}[/red]")
            continue
        metrics = "\n".join(f"{k}: {_fmt_metric(k, v)}" for k, v in r["metrics"].items())
        files = "\n".join(f"{v}: {f['path']} [{'green' if f['status'] == 'ok' else 'red'}]{f['status']}[/]"
                          for v, f in r["files"].items())
        table.add_row(f"{r['name']}\n[dim]{r['dir']}[/dim]", r["version"], str(r["labels"]), metrics, files)
    console.print(table)
    return 0 if healthy else 1


def _fmt_metric(key: str, value: float) -> str:
    return f"{value:.1%}" if 0.0 <= value <= 1.0 and "delta" not in key else f"{value:.4g}"
