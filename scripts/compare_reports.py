"""One-off check for a refactor that must not change behaviour: the CLI's and the API's JSON for a fixed set
of photos, with the fields that differ run to run (report ids, times) and `schema_version` removed.

Run it once on the tree before the change and once after, then compare the two files:

    PYTHONPATH=/tmp/before python scripts/compare_reports.py --out /tmp/before.json
    python scripts/compare_reports.py --out /tmp/after.json
    python scripts/compare_reports.py --diff /tmp/before.json /tmp/after.json

The photos: drawn stones (always), bad files (truncated, text, empty) and, when ../shared holds them,
the first photo of each gems68 species. The CLI runs with and without readings; the API identifies the
same photos, then adds readings to one report.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

VOLATILE = {"report_id", "created_at", "schema_version", "id", "updated_at", "signed_at", "took_ms",
            "elapsed_ms", "seconds"}
GEMS68 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gems68" / "train"


def _stone(colour: tuple[int, int, int], size: int = 384) -> bytes:
    yy, xx = np.mgrid[:size, :size]
    img = np.full((size, size, 3), 245, np.uint8)
    r = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) ** 0.5
    inside = r < size * 0.3
    shade = (1.0 - 0.35 * (r / (size * 0.3))).clip(0, 1)
    for c in range(3):
        img[..., c][inside] = (np.array(colour[c]) * shade[inside]).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    return buf.getvalue()


def photos(folder: Path) -> list[Path]:
    out = []
    for name, colour in {"red": (170, 20, 40), "green": (20, 140, 60), "blue": (30, 60, 170)}.items():
        p = folder / f"drawn_{name}.png"
        p.write_bytes(_stone(colour))
        out.append(p)
    (folder / "text.jpg").write_bytes(b"not a photo at all")
    (folder / "empty.png").write_bytes(b"")
    (folder / "truncated.png").write_bytes(_stone((200, 200, 40))[:400])
    out += [folder / "text.jpg", folder / "empty.png", folder / "truncated.png"]
    if GEMS68.is_dir():
        for species in sorted(GEMS68.iterdir()):
            first = sorted(species.glob("*.jpg"))[:1]
            out += first
    return out


def scrub(value):
    if isinstance(value, dict):
        return {k: (Path(v).name if k == "file" and isinstance(v, str) else scrub(v))
                for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, str) and "/v1/reports/" in value:
        return "/v1/reports/<id>"
    return value


def cli(files: list[Path], *extra: str) -> list:
    code = "import sys; from gemid.cli import main; sys.exit(main())"
    run = subprocess.run([sys.executable, "-c", code, "identify", "--json", "--jobs", "1", *extra,
                          *map(str, files)], capture_output=True, text=True, env=os.environ.copy())
    return scrub(json.loads(run.stdout))


def api(files: list[Path], data_dir: Path) -> dict:
    from fastapi.testclient import TestClient

    from gemid.serve.app import create_app
    from gemid.serve.settings import Settings

    settings = Settings(data_dir=data_dir, analysis="threads", inference_concurrency=1, max_files=200)
    out: dict = {}
    with TestClient(create_app(settings)) as client:
        parts = [("images", (p.name, p.read_bytes(), "application/octet-stream")) for p in files]
        r = client.post("/v1/identify", files=parts, data={"reference": "LOT-7"})
        out["identify"] = [r.status_code, scrub(r.json())]
        first = next(e for e in r.json()["reports"] if "error" not in e)
        r = client.post(f"/v1/reports/{first['report_id']}/readings", json={"ri": 1.762, "sg": 4.0})
        out["readings"] = [r.status_code, scrub(r.json())]
        r = client.post("/v1/reports/nope/readings", json={"ri": 1.7})
        out["missing"] = [r.status_code, scrub(r.json())]
        r = client.post("/v1/identify", files=[("images", ("x.jpg", b"", "image/jpeg"))])
        out["empty"] = [r.status_code, scrub(r.json())]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--diff", nargs=2, type=Path)
    args = ap.parse_args()
    if args.diff:
        a, b = (json.loads(p.read_text()) for p in args.diff)
        if a == b:
            print("identical")
            return 0
        for key in a:
            if a[key] != b.get(key):
                print(f"differs: {key}")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        files = photos(folder)
        result = {
            "cli": cli(files),
            "cli_readings": cli(files, "--ri", "1.718", "--sg", "3.60", "--reference", "LOT-1"),
            "cli_screen": cli(files[:6], "--no-grade"),
            "api": api(files, Path(tmp) / "data"),
        }
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True))
    print(f"{args.out}: {len(files)} photos")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
