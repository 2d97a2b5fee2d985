"""`gemid train --cv`: K-fold cross-validation over every labelled photo, then the model that ships.

Why: with one 80/20 split, a fifth of the photos never trains the model, and the temperature and abstain
thresholds were fitted on the same 411 photos whose accuracy was reported. Here each photo is predicted once
by a model that never saw it or any near-duplicate of it (the folds come from `gemid dataset split --kfold K
--fold all`, near-duplicate groups kept whole), and those out-of-fold predictions (OUT/oof.npz) are what
`gemid evaluate --oof` fits the temperature and thresholds on and reports. The shipped checkpoint
(OUT/last.pt) is then trained on all K folds with the same recipe and the same number of epochs: no model
selection on any photo's result.

Every model shares the frozen lower blocks, so their cached features are computed once, for V augmented
views of every photo, and each fold trains only the upper part on its K-1 folds' features.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gemid.datasets.manifest import manifest_sha256, read_manifest
from gemid.training.data import load_crops, train_side_for
from gemid.training.model import create_model
from gemid.training.presets import TrainAugment, to_tensor
from gemid.training.train import (
    Upper,
    build_optimizer,
    cosine_lambda,
    evaluate_logits,
    freeze_lower,
    grade_targets,
    lower_features,
    record_command,
    seed_everything,
    set_train_mode,
    topk_acc,
    train_step,
)
from gemid.training.views import cache_lower_features

OOF_FILE = "oof.npz"


def fit_upper(model, feats: torch.Tensor, y: torch.Tensor, grades: dict[str, torch.Tensor], idx: np.ndarray, args,
              device: torch.device, n_frozen: int, seed: int) -> list[dict]:
    """Train blocks[n_frozen:] and the heads on cached views of the photos `idx`; one record per epoch."""
    torch.manual_seed(seed)  # drop-path draws from the global generator: a fold trained alone trains the same
    upper = Upper(model, n_frozen).to(device)
    opt = build_optimizer(upper, args.lr, args.head_lr, args.weight_decay)
    steps = math.ceil(len(idx) / args.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_lambda(args.epochs * steps, steps))
    idx_t = torch.as_tensor(idx)
    log = []
    for epoch in range(args.epochs):
        set_train_mode(model, n_frozen)
        g = torch.Generator().manual_seed(seed * 1000 + epoch)
        order = idx_t[torch.randperm(len(idx_t), generator=g)]
        seen, correct, loss_sum, t0 = 0, 0, 0.0, time.time()
        for s in range(steps):
            batch = order[s * args.batch_size : (s + 1) * args.batch_size]
            views = torch.randint(0, feats.shape[0], (len(batch),), generator=g)
            x = feats[views, batch].float().to(device).contiguous(memory_format=torch.channels_last)
            targets = {"species": y[batch].to(device), **{h: t[batch].to(device) for h, t in grades.items()}}
            loss, right = train_step(upper, opt, sched, x, targets, args)
            seen += len(batch)
            loss_sum += loss * len(batch)
            correct += right
        log.append({"epoch": epoch + 1, "train_loss": loss_sum / max(1, seen), "train_acc": correct / max(1, seen),
                    "seconds": time.time() - t0})
    return log


def checkpoint_meta(args, labels: list[str], heads: dict, size: int, model, n_frozen: int) -> dict:
    """What `gemid evaluate`, `gemid export` and `restore.load_checkpoint` read beside the weights."""
    return {
        "model_name": args.model, "labels": labels, "extra_heads": heads, "input_size": size,
        "crop_margin": args.crop_margin, "mean": list(model.cfg.mean), "std": list(model.cfg.std), "seed": args.seed,
        "args": vars(args) | {"func": None}, "manifest": str(Path(args.manifest).resolve()),
        "manifest_sha256": manifest_sha256(args.manifest), "command": args.command_line, "world_size": 1,
        "n_frozen": n_frozen, "photometric": args.photometric, "epoch": args.epochs - 1,
    }


def main(args) -> int:
    record_command(args)
    return run_cv(args)


def run_cv(args) -> int:
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        print("error: --cv runs in one process (its folds share one feature cache); launch it without torchrun",
              file=sys.stderr)
        return 2
    if args.freeze <= 0 or args.cache_views <= 0:
        print("error: --cv trains the upper blocks on cached views: it needs --freeze N > 0 and --cache-views V > 0",
              file=sys.stderr)
        return 2
    if args.resume:
        print("error: --cv does not resume; start it again", file=sys.stderr)
        return 2
    seed_everything(args.seed)
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    manifest = read_manifest(args.manifest)
    folds = manifest.folds
    if len(folds) < 2:
        print(f"error: {args.manifest} names no cross-validation folds; write them with "
              f"`gemid dataset split {args.manifest} --kfold 5 --fold all --out FILE`", file=sys.stderr)
        return 2
    rows = [r for r in manifest.rows if r.split in folds]
    fold_of = np.array([folds.index(r.split) for r in rows])
    labels = sorted({r.species for r in rows})
    index = {c: i for i, c in enumerate(labels)}
    heads = {h: sorted({getattr(r, h) for r in rows if getattr(r, h)}) for h in ("colour_grade", "clarity_grade")}
    heads = {h: c for h, c in heads.items() if len(c) >= 2}

    model = create_model(args.model, num_classes=len(labels), pretrained=not args.no_pretrained,
                         extra_heads={h: len(c) for h, c in heads.items()}, drop_path=args.drop_path)
    n_frozen = args.freeze
    if n_frozen > len(model.blocks):
        print(f"error: --freeze must be 1..{len(model.blocks)}", file=sys.stderr)
        return 2
    size = args.input_size or model.cfg.input_size
    freeze_lower(model, n_frozen)
    model.to(device).to(memory_format=torch.channels_last)
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}  # every fold starts here

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    photometric = args.photometric
    paths = [str(manifest.resolve(r)) for r in rows]
    crops = load_crops(paths, train_side=train_side_for(size), eval_margin=args.crop_margin, eval_size=size,
                       workers=args.workers, photometric=photometric)
    print(f"{len(rows)} photos, {len(folds)} folds, {len(labels)} species: crops in {time.time() - t0:.0f}s",
          flush=True)
    augment = TrainAugment(size, args.crop_margin, args.seed, background_p=args.background_p,
                           light=photometric == "grader")

    t1 = time.time()
    feats = cache_lower_features(model, augment, crops["train"], crops["mask"], range(len(rows)), args.cache_views,
                                 n_frozen=n_frozen,
                                 batch=max(args.batch_size, 64), device=device, workers=args.workers,
                                 progress=not args.quiet)
    eval_x = to_tensor(crops["eval"], model.cfg.mean, model.cfg.std).contiguous(memory_format=torch.channels_last)
    eval_feats = torch.cat([lower_features(model, eval_x[i : i + 64].to(device), n_frozen).to(torch.float16).cpu()
                            for i in range(0, len(eval_x), 64)])
    print(f"cached {args.cache_views}x{len(rows)} views of blocks[:{n_frozen}] ({feats.numel() * 2 / 1e6:.0f} MB) "
          f"in {time.time() - t1:.0f}s", flush=True)

    y = torch.tensor([index[r.species] for r in rows])
    grades = {h: torch.from_numpy(v) for h, v in grade_targets(rows, heads).items()}
    oof = np.zeros((len(rows), len(labels)), np.float32)
    per_fold = []
    log_path = out / "log.jsonl"
    log_path.unlink(missing_ok=True)
    only = getattr(args, "cv_fold", None)
    if only is not None and not 0 <= only < len(folds):
        print(f"error: --cv-fold must be 0..{len(folds) - 1}", file=sys.stderr)
        return 2
    runs = [(only, folds[only])] if only is not None else list(enumerate([*folds, "all"]))
    for k, name in runs:
        model.load_state_dict(start)
        held = np.where(fold_of == k)[0] if name != "all" else np.zeros(0, np.int64)
        train_idx = np.where(fold_of != k)[0] if name != "all" else np.arange(len(rows))
        t2 = time.time()
        log = fit_upper(model, feats, y, grades, train_idx, args, device, n_frozen, seed=args.seed * 100 + k)
        record = {"fold": name, "n_train": int(len(train_idx)), "n_held": int(len(held)),
                  "train_acc": log[-1]["train_acc"], "seconds": time.time() - t2}
        if len(held):
            logits = evaluate_logits(model, eval_feats[held].to(device), n_frozen, cached=True).float().cpu()
            oof[held] = logits.numpy()
            record |= {"top1": topk_acc(logits, y[held], 1), "top5": topk_acc(logits, y[held], 5),
                       "loss": F.cross_entropy(logits, y[held]).item()}
            per_fold.append(record)
        with open(log_path, "a") as f:
            f.write(json.dumps(record | {"epochs": log}) + "\n")
        if only is not None:  # one fold: its model and its held-out photos' predictions, for checks elsewhere
            meta = checkpoint_meta(args, labels, heads, size, model, n_frozen) | {"cv": {"fold": name, **record}}
            torch.save(meta | {"model": model.state_dict()}, out / f"{name}.pt")
            np.savez_compressed(out / f"oof-{name}.npz", logits=oof[held], labels=y.numpy()[held],
                                classes=np.array(labels), paths=np.array([paths[i] for i in held]))
            print(f"done: {name} top-1 {record['top1']:.4f} on its {len(held)} held-out photos; {out / (name + '.pt')}")
            return 0
        print(" ".join(f"{k_}={v:.4g}" if isinstance(v, float) else f"{k_}={v}" for k_, v in record.items()),
              flush=True)

    y_np = y.numpy()
    top1 = float((oof.argmax(1) == y_np).mean())
    meta = checkpoint_meta(args, labels, heads, size, model, n_frozen) | {
        "cv": {"folds": folds, "oof": OOF_FILE, "oof_top1": top1, "per_fold": per_fold},
        "metrics": {"oof_top1": top1},
    }
    tmp = out / "last.tmp"
    torch.save(meta | {"model": model.state_dict()}, tmp)
    tmp.replace(out / "last.pt")
    np.savez_compressed(out / OOF_FILE, logits=oof, labels=y_np, classes=np.array(labels), paths=np.array(paths),
                        folds=fold_of, fold_names=np.array(folds), manifest=str(Path(args.manifest).resolve()),
                        manifest_sha256=manifest_sha256(args.manifest))
    print(f"done: out-of-fold top-1 {top1:.4f} over {len(rows)} photos ({len(folds)} folds); "
          f"{out / 'last.pt'} trained on all of them; {time.time() - t0:.0f}s", flush=True)
    return 0
