"""Fine-tune an EfficientNet-Lite on a manifest. One readable loop, every knob a flag.

CPU-practical by design: with `--freeze N` the stem and first N blocks stay at their ImageNet weights
(BN in eval mode) and, with `--cache-views V`, their outputs for V augmented views of every training
photo are computed once and reused each epoch; only the upper blocks, head conv and classifier train.
`--freeze 0 --cache-views 0` is plain full fine-tuning (what a GPU would do).

Distributed: launched by torchrun it uses DistributedDataParallel (gloo on CPU, nccl on GPU) with no
code change; each rank caches and trains on its own shard of the photos.
"""

from __future__ import annotations

import json
import math
import os
import random
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from gemid.datasets.manifest import manifest_sha256, read_manifest
from gemid.training.data import load_crops, train_side_for
from gemid.training.model import EfficientNetLite, create_model
from gemid.training.presets import TrainAugment, to_tensor
from gemid.training.views import cache_lower_features

IGNORE = -100


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)
    d = Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if backend == "nccl":
        torch.cuda.set_device(d.local_rank)
    return d


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


class Upper(nn.Module):
    """The trainable part: blocks[n_frozen:], head conv, pooling, classifier and extra heads."""

    def __init__(self, model: EfficientNetLite, n_frozen: int):
        super().__init__()
        self.model = model
        self.n_frozen = n_frozen

    def forward(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        m = self.model
        pooled = m.forward_head(m.forward_from(feats, self.n_frozen), pre_logits=True)
        return {"logits": m.classifier(pooled), **{k: h(pooled) for k, h in m.extra_heads.items()}}


def freeze_lower(model: EfficientNetLite, n_frozen: int) -> None:
    lower = [model.conv_stem, model.bn0, *model.blocks[:n_frozen]]
    for module in lower:
        for p in module.parameters():
            p.requires_grad_(False)


def set_train_mode(model: EfficientNetLite, n_frozen: int) -> None:
    model.train()
    for module in [model.conv_stem, model.bn0, *model.blocks[:n_frozen]]:
        module.eval()  # frozen BN keeps ImageNet statistics


def lower_features(model: EfficientNetLite, x: torch.Tensor, n_frozen: int) -> torch.Tensor:
    with torch.inference_mode():
        return model.forward_until(x, n_frozen)


def grade_targets(rows, heads: dict[str, list[str]]) -> dict[str, np.ndarray]:
    out = {}
    for head, classes in heads.items():
        index = {c: i for i, c in enumerate(classes)}
        out[head] = np.array([index.get(getattr(r, head), IGNORE) if getattr(r, head) else IGNORE for r in rows])
    return out


def compute_loss(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], smoothing: float,
                 head_weight: float) -> torch.Tensor:
    loss = F.cross_entropy(outputs["logits"], targets["species"], label_smoothing=smoothing)
    for head, t in targets.items():
        if head == "species":
            continue
        valid = t != IGNORE
        if valid.any():  # masked: rows without that grade contribute nothing
            loss = loss + head_weight * F.cross_entropy(outputs[head][valid], t[valid], label_smoothing=smoothing)
    return loss


def build_optimizer(model: nn.Module, lr: float, head_lr: float, wd: float) -> torch.optim.Optimizer:
    head, body = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (head if name.startswith(("classifier", "extra_heads")) else body).append(p)
    return torch.optim.AdamW([{"params": body, "lr": lr}, {"params": head, "lr": head_lr}], weight_decay=wd)


def cosine_lambda(total: int, warmup: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return f


def evaluate_logits(model: EfficientNetLite, feats_or_images: torch.Tensor, n_frozen: int, cached: bool,
                    batch: int = 64) -> torch.Tensor:
    model.eval()
    outs = []
    with torch.inference_mode():
        for i in range(0, len(feats_or_images), batch):
            x = feats_or_images[i : i + batch].float()
            if not cached:
                x = model.forward_until(x, n_frozen)
            outs.append(Upper(model, n_frozen)(x)["logits"])
    return torch.cat(outs) if outs else torch.zeros(0)


def train_step(net: nn.Module, opt: torch.optim.Optimizer, sched, x: torch.Tensor, targets: dict[str, torch.Tensor],
               args) -> tuple[float, int]:
    """One optimiser step on a batch: (its loss, how many of its species it got right)."""
    outputs = net(x)
    loss = compute_loss(outputs, targets, args.label_smoothing, args.head_weight)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    return loss.item(), int((outputs["logits"].argmax(1) == targets["species"]).sum().item())


def topk_acc(logits: torch.Tensor, y: torch.Tensor, k: int) -> float:
    if len(y) == 0:
        return float("nan")
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == y[:, None]).any(1).float().mean().item()


def run(args) -> int:
    d = setup_distributed()
    seed_everything(args.seed + d.rank)
    torch.set_num_threads(args.threads)
    device = torch.device(f"cuda:{d.local_rank}" if torch.cuda.is_available() and not args.cpu else "cpu")
    out = Path(args.out)
    if d.main:
        out.mkdir(parents=True, exist_ok=True)

    manifest = read_manifest(args.manifest)
    train_rows, val_rows = manifest.split("train"), manifest.split("val")
    if not train_rows:
        print(f"error: {args.manifest} has no rows with split=train; run `gemid dataset split` first", file=sys.stderr)
        return 2
    labels = sorted({r.species for r in manifest.rows})
    heads = {h: sorted({getattr(r, h) for r in manifest.rows if getattr(r, h)})
             for h in ("colour_grade", "clarity_grade")}
    heads = {h: c for h, c in heads.items() if len(c) >= 2}
    index = {c: i for i, c in enumerate(labels)}

    model = create_model(args.model, num_classes=len(labels), pretrained=not args.no_pretrained,
                         extra_heads={h: len(c) for h, c in heads.items()}, drop_path=args.drop_path)
    size = args.input_size or model.cfg.input_size
    n_frozen = args.freeze
    if n_frozen < 0 or n_frozen > len(model.blocks):
        print(f"error: --freeze must be 0..{len(model.blocks)}", file=sys.stderr)
        return 2
    freeze_lower(model, n_frozen)
    model.to(device).to(memory_format=torch.channels_last)

    # --- data: each rank owns a fixed shard (its cache never depends on another rank's) -------------
    # equal-sized shards (wrapping round, as DistributedSampler does): every rank takes the same number of
    # steps, otherwise DDP's all-reduce waits forever on the rank that has finished
    per_rank = math.ceil(len(train_rows) / d.world)
    shard = [(d.rank + k * d.world) % len(train_rows) for k in range(per_rank)]
    rows = [train_rows[i] for i in shard]
    tr_paths = [str(manifest.resolve(r)) for r in rows]
    side = train_side_for(size)
    photometric = getattr(args, "photometric", "none")
    tr = load_crops(tr_paths, train_side=side, eval_margin=args.crop_margin, eval_size=size, progress=d.main,
                    photometric=photometric)
    va = load_crops([str(manifest.resolve(r)) for r in val_rows], train_side=side, eval_margin=args.crop_margin,
                    eval_size=size, progress=d.main, photometric=photometric) if d.main else None
    y_tr = torch.tensor([index[r.species] for r in rows])
    g_tr = {h: torch.from_numpy(v) for h, v in grade_targets(rows, heads).items()}
    y_va = torch.tensor([index[r.species] for r in val_rows])
    augment = TrainAugment(size, args.crop_margin, args.seed, background_p=args.background_p,
                           light=photometric == "grader")
    mean, std = model.cfg.mean, model.cfg.std

    def make_view(v: int, i: int) -> np.ndarray:
        return augment(tr["train"][i], tr["mask"][i], v, shard[i])

    cached = args.cache_views > 0 and n_frozen > 0
    feats = None
    t0 = time.time()
    if cached:  # compute the frozen part once for V augmented views per photo
        feats = cache_lower_features(model, augment, tr["train"], tr["mask"], shard, args.cache_views,
                                     n_frozen=n_frozen, batch=args.batch_size, device=device, workers=args.workers, progress=d.main)
        if d.main:
            print(f"cached {args.cache_views}x{len(rows)} views of blocks[:{n_frozen}] "
                  f"({feats.numel() * 2 / 1e6:.0f} MB) in {time.time() - t0:.0f}s", flush=True)
    va_input = None
    if d.main:
        va_x = to_tensor(va["eval"], mean, std).contiguous(memory_format=torch.channels_last)
        va_input = lower_features(model, va_x, n_frozen).to(torch.float16) if cached else va_x

    upper = Upper(model, n_frozen).to(device)
    ddp = torch.nn.parallel.DistributedDataParallel(upper) if d.world > 1 else upper
    opt = build_optimizer(upper, args.lr, args.head_lr, args.weight_decay)
    steps_per_epoch = math.ceil(len(rows) / args.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_lambda(args.epochs * steps_per_epoch, steps_per_epoch))

    start_epoch, best = 0, -1.0
    last_ckpt = out / "last.pt"
    if args.resume and last_ckpt.is_file():
        state = torch.load(last_ckpt, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start_epoch, best = state["epoch"] + 1, state.get("best_val_top1", -1.0)
        if d.main:
            print(f"resumed from {last_ckpt} at epoch {start_epoch}", flush=True)

    meta = {
        "model_name": args.model, "labels": labels, "extra_heads": heads, "input_size": size,
        "crop_margin": args.crop_margin, "mean": list(mean), "std": list(std), "seed": args.seed,
        "args": vars(args) | {"func": None}, "manifest": str(Path(args.manifest).resolve()),
        "manifest_sha256": manifest_sha256(args.manifest), "command": args.command_line,
        "world_size": d.world, "n_frozen": n_frozen, "photometric": photometric,
    }
    log_path = out / "log.jsonl"
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    for epoch in range(start_epoch, args.epochs):
        set_train_mode(model, n_frozen)
        g = torch.Generator().manual_seed(args.seed * 1000 + epoch)
        order = torch.randperm(len(rows), generator=g)
        seen, correct, loss_sum, t_ep = 0, 0, 0.0, time.time()
        columns = [TextColumn(f"epoch {epoch + 1}/{args.epochs}"), BarColumn(), TextColumn("{task.fields[stats]}"),
                   TimeRemainingColumn()]
        with Progress(*columns, disable=not d.main or args.quiet, transient=True) as bar:
            task = bar.add_task("train", total=steps_per_epoch, stats="")
            for s in range(steps_per_epoch):
                idx = order[s * args.batch_size : (s + 1) * args.batch_size]
                if cached:
                    views = torch.randint(0, args.cache_views, (len(idx),), generator=g)
                    x = feats[views, idx].float().to(device).contiguous(memory_format=torch.channels_last)
                else:
                    v = epoch  # a fresh deterministic view per epoch
                    imgs = np.stack([make_view(v, int(j)) for j in idx])
                    x = to_tensor(imgs, mean, std).to(device).contiguous(memory_format=torch.channels_last)
                    if n_frozen:
                        x = lower_features(model, x, n_frozen).clone()
                targets = {"species": y_tr[idx].to(device), **{h: t[idx].to(device) for h, t in g_tr.items()}}
                loss, right = train_step(ddp, opt, sched, x, targets, args)
                seen += len(idx)
                loss_sum += loss * len(idx)
                correct += right
                bar.update(task, advance=1, stats=f"loss {loss_sum / seen:.3f} acc {correct / seen:.3f}")
        train_time = time.time() - t_ep
        record = {"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"], "train_loss": loss_sum / max(1, seen),
                  "train_acc": correct / max(1, seen), "train_img_per_s": seen * d.world / max(1e-9, train_time),
                  "seconds": train_time}
        if d.world > 1:
            dist.barrier()
        if d.main:
            if len(y_va):
                logits = evaluate_logits(model, va_input, n_frozen, cached)
                record |= {"val_loss": F.cross_entropy(logits, y_va).item(), "val_top1": topk_acc(logits, y_va, 1),
                           "val_top5": topk_acc(logits, y_va, 5)}
            with open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()),
                  flush=True)
            state = meta | {"model": model.state_dict(), "epoch": epoch, "metrics": record,
                            "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "best_val_top1": best}
            score = record.get("val_top1", record["train_acc"])
            if score > best:
                best = score
                state["best_val_top1"] = best
                torch.save({k: v for k, v in state.items() if k not in ("optimizer", "scheduler")}, out / "best.pt")
            tmp = last_ckpt.with_suffix(".tmp")
            torch.save(state, tmp)
            os.replace(tmp, last_ckpt)
        if d.world > 1:
            dist.barrier()
    if d.main:
        print(f"done: best val top-1 {best:.4f}; checkpoints in {out}", flush=True)
    if d.world > 1:
        dist.destroy_process_group()
    return 0


def record_command(args) -> None:
    """The command line a checkpoint records (a caller that builds `args` itself may have set its own)."""
    args.command_line = getattr(args, "command_line", None) or "gemid train " + " ".join(
        shlex.quote(a) for a in sys.argv[2:])


def main(args) -> int:
    record_command(args)
    return run(args)
