"""Training throughput and inference latency of the species model, from one run.

    python -m bench.bench_training                 # Lite0 at 224 px, 2 threads (about 1-2 min on 2 cores)
    python -m bench.bench_training --model efficientnet_lite2 --threads 4 --json bench_training.json

Prints
- training throughput (images/s) of the two modes `gemid train` offers, on the same model and batch:
  *full fine-tuning* (augment → whole network forward + backward + AdamW step) and *cached features*
  (the frozen stem + first blocks computed once per augmented view, so a step runs only the upper blocks
  and heads: `--freeze 11 --cache-views V`, the default), plus the one-off cost of caching a view;
- inference latency at batch 1 and 8 of PyTorch eager, ONNX Runtime fp32 and ONNX Runtime int8 (the
  exported graph with folded padding; int8 = static QDQ calibrated on drawn-stone crops — representative
  enough for timing, not for accuracy), as milliseconds per batch and as speed-ups over PyTorch eager.

Inputs are drawn stones put through the runtime crop and the training augmentation, so the augmentation
cost is real; the weights are the ImageNet ones with a fresh 68-class head (timing does not depend on
training). Each figure is the median of timed repeats after warm-up runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import cpu_description  # noqa: E402

N_CLASSES = 68  # the shipped model's label count


def _crops(n: int, side: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Training-style crops (TRAIN_MARGIN around the stone) and masks of drawn stones of varied colours."""
    import cv2

    from gemid.training.presets import TRAIN_MARGIN
    from gemid.vision.crop import crop_square, square_box
    from gemid.vision.segment import segment

    rng = np.random.default_rng(seed)
    imgs, masks = [], []
    for i in range(n):
        img = np.full((192, 256, 3), int(rng.integers(200, 250)), np.uint8)
        colour = rng.integers(20, 230, 3).tolist()
        centre = (int(rng.integers(100, 156)), int(rng.integers(80, 112)))
        cv2.ellipse(img, centre, (int(rng.integers(40, 70)), int(rng.integers(35, 60))), float(rng.uniform(0, 180)),
                    0, 360, colour, -1, cv2.LINE_AA)
        cv2.circle(img, centre, 15, [min(255, c + 40) for c in colour], -1, cv2.LINE_AA)
        seg = segment(img)
        box = square_box(seg.bbox, TRAIN_MARGIN, (256, 192))
        imgs.append(cv2.resize(crop_square(img, box), (side, side), interpolation=cv2.INTER_AREA))
        m = crop_square(np.repeat(seg.mask[..., None], 3, 2), box, fill=(0, 0, 0))[..., 0]
        masks.append(cv2.resize(m, (side, side), interpolation=cv2.INTER_NEAREST))
        del i
    return np.stack(imgs), np.stack(masks)


def _median_time(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_training(model_name: str, size: int, batch: int, steps: int, freeze: int) -> dict:
    import torch

    from gemid.training.data import train_side_for
    from gemid.training.model import create_model
    from gemid.training.presets import TrainAugment, to_tensor
    from gemid.training.train import (
        Upper,
        build_optimizer,
        compute_loss,
        freeze_lower,
        lower_features,
        set_train_mode,
    )

    crops, masks = _crops(batch, train_side_for(size))
    augment = TrainAugment(size, 0.12, seed=0)
    y = torch.arange(batch) % N_CLASSES
    res: dict = {"batch": batch, "steps": steps, "size": size}

    # augmentation alone (paid every step by full fine-tuning, once per cached view otherwise)
    t = _median_time(lambda: np.stack([augment(crops[i], masks[i], 0, i) for i in range(batch)]), steps, 0)
    res["augment_img_per_s"] = batch / t

    # full fine-tuning: every block trains
    model = create_model(model_name, N_CLASSES).to(memory_format=torch.channels_last)
    opt = build_optimizer(model, 1e-4, 1e-3, 0.05)
    model.train()

    def full_step(view=[0]):  # noqa: B006 - a counter: a fresh augmented view per step
        view[0] += 1
        imgs = np.stack([augment(crops[i], masks[i], view[0], i) for i in range(batch)])
        x = to_tensor(imgs, model.cfg.mean, model.cfg.std).contiguous(memory_format=torch.channels_last)
        loss = compute_loss(model.forward_all(x), {"species": y}, 0.1, 0.5)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    res["full_finetune_img_per_s"] = batch / _median_time(full_step, steps)

    # cached features: stem + blocks[:freeze] frozen and precomputed, the rest trains
    model = create_model(model_name, N_CLASSES).to(memory_format=torch.channels_last)
    freeze_lower(model, freeze)
    upper = Upper(model, freeze)
    opt = build_optimizer(upper, 1e-3, 3e-3, 0.05)
    imgs = np.stack([augment(crops[i], masks[i], 0, i) for i in range(batch)])
    x = to_tensor(imgs, model.cfg.mean, model.cfg.std).contiguous(memory_format=torch.channels_last)
    model.eval()
    t_cache = _median_time(lambda: lower_features(model, x, freeze), steps, 1)
    feats = lower_features(model, x, freeze).to(torch.float16)
    set_train_mode(model, freeze)

    def cached_step():
        out = upper(feats.float().contiguous(memory_format=torch.channels_last))
        loss = compute_loss(out, {"species": y}, 0.1, 0.5)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    res["cached_step_img_per_s"] = batch / _median_time(cached_step, steps)
    res["cache_one_view_img_per_s"] = batch / (t_cache + batch / res["augment_img_per_s"])
    res["frozen_blocks"] = freeze
    res["cached_feature_shape"] = list(feats.shape[1:])
    return res


def bench_inference(model_name: str, size: int, repeats: int, threads: int) -> dict:
    import torch

    from gemid.training.model import create_model
    from gemid.training.onnx_export import export_onnx, ort_session
    from gemid.training.presets import to_tensor
    from gemid.training.quantize import quantize_int8
    from gemid.vision.crop import stone_crop
    from gemid.vision.segment import segment

    model = create_model(model_name, N_CLASSES).eval()
    crops_train, _ = _crops(16, size, seed=1)
    crops = np.stack([stone_crop(c, segment(c), margin=0.12, size=size) for c in crops_train])
    x = to_tensor(crops, model.cfg.mean, model.cfg.std)
    res: dict = {"size": size}
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "model.onnx", Path(tmp) / "model.int8.onnx"
        export_onnx(model, fp32, size)
        quantize_int8(fp32, int8, x.numpy())
        res["onnx_mb"] = fp32.stat().st_size / 1e6
        res["int8_mb"] = int8.stat().st_size / 1e6
        sessions = {"onnx_fp32": ort_session(fp32, threads), "onnx_int8": ort_session(int8, threads)}
        eager = model.to(memory_format=torch.channels_last)
        for b in (1, 8):
            xb = x[:b].contiguous(memory_format=torch.channels_last)
            xn = np.ascontiguousarray(x[:b].numpy())

            def torch_run(xb=xb):
                with torch.inference_mode():
                    eager(xb)

            ms = {"pytorch_eager": _median_time(torch_run, repeats, 2) * 1e3}
            for name, sess in sessions.items():
                inp = sess.get_inputs()[0].name
                ms[name] = _median_time(lambda sess=sess, inp=inp, xn=xn: sess.run(None, {inp: xn}), repeats, 2) * 1e3
            res[f"batch{b}_ms"] = ms
            res[f"batch{b}_speedup_vs_eager"] = {k: ms["pytorch_eager"] / v for k, v in ms.items()}
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--size", type=int, default=None, help="input side (default: the backbone's own)")
    p.add_argument("--batch", type=int, default=16, help="training batch")
    p.add_argument("--steps", type=int, default=5, help="timed training steps per mode (after one warm-up)")
    p.add_argument("--freeze", type=int, default=11, help="frozen blocks in cached-feature mode (gemid train's default)")
    p.add_argument("--repeats", type=int, default=15, help="timed inference runs per configuration")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args(argv)

    import onnxruntime
    import torch

    from gemid.training.model import CONFIGS

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5 * (os.cpu_count() or 1):
        print(f"WARNING: load average {load:.1f} on {os.cpu_count()} CPUs: other work competes for the cores "
              "(PyTorch's threads suffer most); these timings are not representative", file=sys.stderr)
    size = args.size or CONFIGS[args.model].input_size
    t0 = time.time()
    train = bench_training(args.model, size, args.batch, args.steps, args.freeze)
    infer = bench_inference(args.model, size, args.repeats, args.threads)
    out = {"model": args.model, "threads": args.threads, "load_average_at_start": load, "torch": torch.__version__,
           "onnxruntime": onnxruntime.__version__, "cpu_count": os.cpu_count(), "cpu": cpu_description(),
           "training": train,
           "inference": infer, "seconds": time.time() - t0}

    print(f"{args.model} at {size} px, {args.threads} threads (torch {torch.__version__}, "
          f"onnxruntime {onnxruntime.__version__})\nCPU: {cpu_description()}")
    print(f"\ntraining throughput, batch {train['batch']} (median of {train['steps']} steps):")
    print(f"  full fine-tuning (augment + whole network)   {train['full_finetune_img_per_s']:8.1f} img/s")
    print(f"  cached features (blocks[{train['frozen_blocks']}:] + heads)       "
          f"{train['cached_step_img_per_s']:8.1f} img/s   "
          f"({train['cached_step_img_per_s'] / train['full_finetune_img_per_s']:.1f}x full)")
    print(f"  caching one augmented view (augment + frozen part) {train['cache_one_view_img_per_s']:6.1f} img/s; "
          f"augmentation alone {train['augment_img_per_s']:.0f} img/s")
    print(f"\ninference latency (median of {args.repeats}); fp32 ONNX {infer['onnx_mb']:.1f} MB, "
          f"int8 {infer['int8_mb']:.1f} MB:")
    print(f"  {'':10}{'PyTorch eager':>16}{'ONNX fp32':>16}{'ONNX int8':>16}")
    for b in (1, 8):
        ms, sp = infer[f"batch{b}_ms"], infer[f"batch{b}_speedup_vs_eager"]
        print(f"  batch {b:<4}" + "".join(f"{ms[k]:>10.1f} ms    " for k in ("pytorch_eager", "onnx_fp32", "onnx_int8")))
        print(f"  {'ratio':<10}" + "".join(f"{sp[k]:>10.2f}x      " for k in ("pytorch_eager", "onnx_fp32", "onnx_int8"))
              + " (speed-up over PyTorch eager)")
    print(f"\n({out['seconds']:.0f} s in all)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
