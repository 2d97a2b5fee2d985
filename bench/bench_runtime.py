"""Runtime latency of one photo through `gemid identify`, stage by stage, and the model on three engines.

    python -m bench.bench_runtime                          # shipped bundle, a rendered 1024 px JPEG, 2 threads
    python -m bench.bench_runtime --photo stone.jpg --repeats 50 --threads 2 --json runtime.json
    python -m bench.bench_runtime --checkpoint runs/gems68-lite0/best.pt   # PyTorch eager on the trained weights
    python -m bench.bench_runtime --threads 1 --size 512   # one analysis worker of bench_service, per photo
    python -m bench.bench_runtime --kinds-only             # just issue 33's table: product vs 12 MP phone photos

Prints
- per-stage latency, p50 and p95 in milliseconds: decode, segment, quality, crop + preprocess, species
  (ONNX Runtime fp32 and int8, batch 1), stone area (shared by the graders), colour, clarity, test guidance, the whole `Identifier.identify` (fp32, graded) and the
  service's default screen (int8, `grade=False`);
- end to end by kind of photo (issue 33): the full report (fp32, graded) and the screen (int8, `grade=False`)
  of a 512-px product photo and of a 12 MP phone-style photo of the same rendered stone as JPEG and HEIC
  (`gemid.datasets.synth.phone`), with the ratios phone / product (target <= 1.6x) and screen / full;
- the model alone at batch 1 and 8 on ONNX Runtime fp32, ONNX Runtime int8 and PyTorch eager (only when
  torch and `gemid.training` import), as ms per image and as ratios to PyTorch eager and to ORT fp32.

The photo defaults to a stone drawn by the synthetic renderer at 1024 px, saved as JPEG (quality 90), so the
figures need no data. PyTorch eager uses the checkpoint when given, else the same architecture with fresh
weights (latency does not depend on the weight values). Each figure comes from timed repeats after warm-up
runs; the machine's other load shows up in p95, so run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import cpu_description  # noqa: E402


def timed(fn: Callable[[], Any], repeats: int, warmup: int = 3) -> dict[str, float]:
    """p50 / p95 / mean milliseconds of fn() over `repeats` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    ms = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t) * 1e3)
    a = np.array(ms)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "mean": float(a.mean()),
            "n": repeats}


def default_photo(side: int = 1024) -> bytes:
    """A rendered stone as a phone-sized JPEG (no data needed)."""
    import cv2

    from gemid.datasets.synth import StoneSpec, render

    rgb, _mask, _truth = render(StoneSpec(lab=(42.0, 50.0, 20.0), scale=0.55), size=side, seed=0)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def stage_latency(bundle_dir: Path, data: bytes, threads: int, repeats: int) -> dict[str, dict[str, float]]:
    from gemid.vision.decode import decode
    from gemid.vision.pipeline import Identifier
    from gemid.vision.quality import assess
    from gemid.vision.scale import find_card
    from gemid.vision.segment import segment
    from gemid.vision.stone_area import locate

    ident = Identifier(bundle_dir, threads=threads)
    img = decode(data, working=True)  # the working image, as identify decodes it
    seg = segment(img.rgb)
    crop = ident.classifier.crop(img.rgb, seg)
    out: dict[str, dict[str, float]] = {
        "decode (whole photo)": timed(lambda: decode(data), max(3, repeats // 3)),
        "decode (working image)": timed(lambda: decode(data, working=True), repeats),
        "scale card search": timed(lambda: find_card(img.rgb), repeats),  # on every photo, card or not
        "segment": timed(lambda: segment(img.rgb), repeats),
        "quality": timed(lambda: assess(img.rgb, seg, ident.bundle.input.crop.margin, scale=img.scale), repeats),
        "crop + preprocess": timed(lambda: ident.classifier.preprocess(ident.classifier.crop(img.rgb, seg)), repeats),
        "species (ORT fp32)": timed(lambda: ident.classifier.predict([crop]), repeats),
    }
    if ident.shapes is not None:  # on every stone: hand features + the ImageNet embedder (224 px) + regression
        out["cut shape"] = timed(lambda: ident.shapes.classify(img.rgb, seg), repeats)
    screen: Identifier | None = None  # the int8 model, as the service runs it by default
    if "int8" in ident.bundle.files:
        screen = Identifier(bundle_dir, variant="int8", threads=threads)
        out["species (ORT int8)"] = timed(lambda: screen.classifier.predict([crop]), repeats)
    report = ident.identify(data)
    top1 = report.species.top[0].label
    area = locate(img.rgb, seg, photo_scale=img.scale)  # found once per photo, shared by both graders
    out["stone area"] = timed(lambda: locate(img.rgb, seg, photo_scale=img.scale), repeats)
    optional = {
        "colour": (ident._grade_colour, (img.rgb, seg), {"area": area}),
        "clarity": (ident._grade_clarity, (img.rgb, seg, top1), {"area": area}),
        "test guidance": (ident._recommend, (list(report.species.top),), {}),
    }
    for name, (fn, fargs, kw) in optional.items():
        if fn is None:
            continue
        try:
            fn(*fargs, **kw)
        except Exception as exc:  # a grader that fails is left out of the figures, and said so
            print(f"{name}: not timed, it failed ({type(exc).__name__}: {exc})", file=sys.stderr)
            continue
        out[name] = timed(lambda fn=fn, fargs=fargs, kw=kw: fn(*fargs, **kw), repeats)
    out["identify (whole, fp32)"] = timed(lambda: ident.identify(data), repeats)
    if screen is not None:  # what the service's default screen (grade=false, int8) asks of a worker
        out["identify (screen, int8)"] = timed(lambda: screen.identify(data, grade=False), repeats)
    return out


KIND_SPEC = {"cut": "oval", "aspect": 1.3, "lab": (40.0, 55.0, 20.0), "noise": 2.0}  # bench_service's stone


def kinds_latency(bundle_dir: Path, threads: int, repeats: int) -> dict[str, dict[str, float]]:
    """p50 ms of the whole identify, full report (fp32) and screen (int8), per kind of photo."""
    import cv2

    from gemid.datasets.synth import StoneSpec, render
    from gemid.datasets.synth.phone import encode_photo, phone_frame
    from gemid.vision.pipeline import Identifier

    spec = StoneSpec(**KIND_SPEC)  # type: ignore[arg-type]
    rgb, _m, _t = render(spec, size=512)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    frame = phone_frame(spec)
    kinds = {"product 512 px JPEG": buf.tobytes(), "phone 12 MP JPEG": encode_photo(frame, "jpeg"),
             "phone 12 MP HEIC": encode_photo(frame, "heic")}
    full = Identifier(bundle_dir, threads=threads)
    screen = Identifier(bundle_dir, variant="int8" if "int8" in full.bundle.files else "fp32", threads=threads)
    out: dict[str, dict[str, float]] = {}
    for name, data in kinds.items():
        n = repeats if name.startswith("product") else max(5, repeats // 2)
        out[name] = {"full": timed(lambda d=data: full.identify(d), n)["p50"],
                     "screen": timed(lambda d=data: screen.identify(d, grade=False), n)["p50"],
                     "kB": len(data) / 1e3}
    return out


def print_kinds(kinds: dict[str, dict[str, float]]) -> None:
    ref = kinds["product 512 px JPEG"]
    print(f"\n{'end to end (identify), p50':<28}{'full ms':>9}{'screen ms':>11}{'full/screen':>13}"
          f"{'full vs product':>17}{'screen vs product':>19}")
    for name, row in kinds.items():
        print(f"{name:<28}{row['full']:>9.1f}{row['screen']:>11.1f}{row['full'] / row['screen']:>12.2f}x"
              f"{row['full'] / ref['full']:>16.2f}x{row['screen'] / ref['screen']:>18.2f}x")
    worst = max(row[m] / ref[m] for name, row in kinds.items() for m in ("full", "screen") if name != "product 512 px JPEG")
    print(f"phone photo vs product photo, worst of JPEG/HEIC and full/screen: {worst:.2f}x "
          f"(target <= 1.6x: {'met' if worst <= 1.6 else 'MISSED'})")


def engine_latency(bundle_dir: Path, threads: int, repeats: int, checkpoint: Path | None) -> dict[str, Any]:
    """The model alone: ms per image at batch 1 and 8 on ORT fp32, ORT int8 and PyTorch eager."""
    from gemid.vision.bundle import load_bundle
    from gemid.vision.classify import SpeciesClassifier

    bundle = load_bundle(bundle_dir)
    size = bundle.input.size
    rng = np.random.default_rng(0)
    x8 = rng.standard_normal((8, 3, size, size)).astype(np.float32)
    engines: dict[str, Callable[[np.ndarray], Any]] = {}
    fp32 = SpeciesClassifier(bundle, threads=threads)
    engines["ORT fp32"] = fp32.run
    if "int8" in bundle.files:
        engines["ORT int8"] = SpeciesClassifier(bundle, variant="int8", threads=threads).run
    note = ""
    torch_model = _torch_model(bundle, checkpoint)
    if isinstance(torch_model, str):
        note = torch_model
    else:
        import torch

        torch.set_num_threads(threads)

        def eager(x: np.ndarray) -> Any:
            with torch.inference_mode():
                return torch_model(torch.from_numpy(x))

        engines["PyTorch eager"] = eager
    res: dict[str, Any] = {"batch": {}, "note": note}
    for batch in (1, 8):
        x = x8[:batch]
        res["batch"][batch] = {name: timed(lambda f=f, x=x: f(x), max(5, repeats // batch))["p50"] / batch
                               for name, f in engines.items()}
    return res


def _torch_model(bundle: Any, checkpoint: Path | None) -> Any:
    """The PyTorch model for the eager comparison, or a string saying why there is none."""
    try:
        import torch  # noqa: F401

        from gemid.training.model import create_model
    except ImportError as exc:
        return f"PyTorch eager skipped: {exc} (runtime-only install)"
    if checkpoint is not None:
        from gemid.training.restore import load_checkpoint

        model = load_checkpoint(checkpoint).model
    else:
        name = bundle.training.get("model")
        if not name:
            return "PyTorch eager skipped: the bundle does not name its architecture (training.model)"
        model = create_model(str(name), num_classes=len(bundle.labels), pretrained=False,
                             extra_heads={k: len(v) for k, v in bundle.heads.items()} or None)
    return model.eval()


def profile(bundle_dir: Path, data: bytes, threads: int, n: int) -> None:
    """cProfile of `n` full identifications (after one warm-up): the functions that cost the most time."""
    import cProfile
    import io
    import pstats

    from gemid.vision.pipeline import Identifier

    ident = Identifier(bundle_dir, threads=threads)
    ident.identify(data)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        ident.identify(data)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
    print(f"\ncProfile, {n} full identifications (own time per function, all calls):")
    print("\n".join(out.getvalue().splitlines()[4:]))


def main(argv: list[str] | None = None) -> int:
    from gemid.vision.bundle import DEFAULT_BUNDLE_DIR

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=DEFAULT_BUNDLE_DIR, help="bundle directory")
    p.add_argument("--photo", type=Path, help="photo to time (default: a rendered 1024 px JPEG)")
    p.add_argument("--size", type=int, default=1024,
                   help="side of the rendered photo (512 with --threads 1: what one analysis worker of "
                        "bench_service spends per photo)")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime, OpenCV and PyTorch threads")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--checkpoint", type=Path, help="PyTorch checkpoint for the eager comparison")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--phone", choices=("jpeg", "heic"),
                   help="time the stages on a rendered 12 MP phone-style photo (gemid.datasets.synth.phone) instead")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="also cProfile N full identifications of the photo and print the 25 costliest functions")
    p.add_argument("--kinds-only", action="store_true", help="only the product vs phone photo table")
    p.add_argument("--no-kinds", action="store_true", help="leave out the product vs phone photo table")
    p.add_argument("--no-engines", action="store_true", help="leave out the model-alone engine comparison")
    args = p.parse_args(argv)
    if not (args.model / "bundle.json").is_file():
        print(f"no model bundle at {args.model}: run `gemid export` or pass --model DIR", file=sys.stderr)
        return 2

    if args.phone:
        from gemid.datasets.synth import StoneSpec
        from gemid.datasets.synth.phone import phone_photo

        data = phone_photo(StoneSpec(**KIND_SPEC), fmt=args.phone)  # type: ignore[arg-type]
    else:
        data = args.photo.read_bytes() if args.photo else default_photo(args.size)
    from gemid.vision.decode import decode

    img = decode(data)
    print(f"photo: {args.photo or 'rendered stone'} {img.width}×{img.height} {img.format} {img.bytes / 1e3:.0f} kB; "
          f"model: {args.model}; threads {args.threads}; {args.repeats} repeats\n"
          f"CPU: {cpu_description()}; load average {os.getloadavg()[0]:.1f} (other load inflates p95, and PyTorch's OpenMP most of all)")
    import cv2

    cv2.setNumThreads(args.threads)  # as the service pins each analysis (gemid.serve.analysis.load_identifier)
    from gemid.vision.workers import limit_blas

    limit_blas(1)  # as `gemid identify` and the service's workers run numpy's BLAS
    kinds = None if args.no_kinds else kinds_latency(args.model, args.threads, args.repeats)
    if kinds is not None:
        print_kinds(kinds)
        print(f"load average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    if args.kinds_only:
        return 0
    stages = stage_latency(args.model, data, args.threads, args.repeats)
    print(f"\n{'stage':<26}{'p50 ms':>10}{'p95 ms':>10}")
    for name, t in stages.items():
        print(f"{name:<26}{t['p50']:>10.2f}{t['p95']:>10.2f}")
    if args.profile:
        profile(args.model, data, args.threads, args.profile)

    if args.no_engines:
        if args.json:
            args.json.write_text(json.dumps({"stages": stages, "kinds": kinds, "threads": args.threads,
                                             "cpu": cpu_description()}, indent=2))
        return 0
    engines = engine_latency(args.model, args.threads, args.repeats, args.checkpoint)
    print("\nmodel alone, ms per image (p50)")
    for batch, row in engines["batch"].items():
        ref = row.get("PyTorch eager")
        base = row["ORT fp32"]
        cells = []
        for name, ms in row.items():
            ratio = f", {ref / ms:.2f}× eager" if ref else ""
            cells.append(f"{name} {ms:.2f} ms ({base / ms:.2f}× ORT fp32{ratio})")
        print(f"  batch {batch}: " + "; ".join(cells))
    if engines["note"]:
        print("  " + engines["note"])
    if args.json:
        args.json.write_text(json.dumps({"stages": stages, "engines": engines, "kinds": kinds, "threads": args.threads, "cpu": cpu_description(),
                                         "photo": str(args.photo or "rendered"), "model": str(args.model)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
