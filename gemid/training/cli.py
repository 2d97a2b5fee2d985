"""`gemid train | evaluate | export | quantize`. Torch is imported only when one of them runs."""

from __future__ import annotations

import importlib
import os

from gemid.training.extra import train_extra


def _train(args) -> int:
    """--cv runs in its own module (gemid.training.crossval), which builds on train's pieces."""
    return importlib.import_module("gemid.training.crossval" if args.cv else "gemid.training.train").main(args)


def add_arguments(p) -> None:
    """`gemid train`'s flags; each help line names its default (`gemid train --help`)."""
    p.add_argument("--manifest", required=True, help="CSV with path, species, ..., split (train/val)")
    p.add_argument("--out", required=True, help="run folder: last.pt, best.pt, log.jsonl")
    p.add_argument("--model", default="efficientnet_lite0",
                   help="backbone: efficientnet_lite0, efficientnet_lite1 or efficientnet_lite2 (default: %(default)s)")
    p.add_argument("--input-size", type=int, default=None,
                   help="side of the model's input in px (default: the backbone's own, 224 / 240 / 260)")
    p.add_argument("--crop-margin", type=float, default=0.12,
                   help="margin around the stone in the model's view, as a fraction of its side (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=15, help="default: %(default)s")
    p.add_argument("--batch-size", type=int, default=32, help="default: %(default)s")
    p.add_argument("--lr", type=float, default=1e-3,
                   help="learning rate of the pretrained upper blocks (default: %(default)s)")
    p.add_argument("--head-lr", type=float, default=3e-3,
                   help="learning rate of the new classifier/heads (default: %(default)s)")
    p.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay (default: %(default)s)")
    p.add_argument("--label-smoothing", type=float, default=0.1, help="default: %(default)s")
    p.add_argument("--drop-path", type=float, default=0.1,
                   help="stochastic depth, rising over the blocks to this rate (default: %(default)s)")
    p.add_argument("--head-weight", type=float, default=0.5,
                   help="loss weight of colour/clarity grade heads (default: %(default)s)")
    p.add_argument("--freeze", type=int, default=11,
                   help="keep stem + this many blocks frozen, 0 = none (default: %(default)s)")
    p.add_argument("--cache-views", type=int, default=6,
                   help="augmented views whose frozen features are cached, 0 = augment every epoch "
                        "(default: %(default)s)")
    p.add_argument("--background-p", type=float, default=0.3,
                   help="probability of a background swap (default: %(default)s)")
    p.add_argument("--photometric", choices=["none", "grader"], default="none",
                   help="'grader': random lamps (2700-9000 K) and exposures (-2..+1 EV) in linear light, then the "
                        "colour grader's white balance + exposure on every view, as the runtime applies it "
                        "(default: %(default)s)")
    p.add_argument("--cv", action="store_true",
                   help="cross-validate over the manifest's folds (gemid dataset split --kfold K --fold all): one model "
                        "per fold predicts its held-out fold (OUT/oof.npz, for gemid evaluate --oof), then OUT/last.pt "
                        "is trained on every fold (default: off, train/val split)")
    p.add_argument("--cv-fold", type=int, default=None, metavar="I",
                   help="with --cv: train only fold I's model (OUT/fold<I>.pt and its held-out predictions "
                        "OUT/oof-fold<I>.npz), e.g. to check one fold's figures on another machine (default: every fold, "
                        "then the all-fold model)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="processes making the augmented views that are cached (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    p.add_argument("--threads", type=int,
                   default=max(1, (os.cpu_count() or 2) // int(os.environ.get("WORLD_SIZE", "1"))),
                   help="PyTorch threads per process (default: %(default)s, this machine's cores divided among "
                        "torchrun's processes)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--no-pretrained", action="store_true", help="random init (tests only)")
    p.add_argument("--cpu", action="store_true", help="stay on CPU even if CUDA is present")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def register(sub) -> None:
    p = sub.add_parser("train", help="fine-tune the species model on a manifest (needs the train extra)")
    add_arguments(p)
    p.set_defaults(func=train_extra(_train))
    from gemid.training import evaluate, export, openset_cli  # all defer torch / onnx to their handlers

    evaluate.register(sub)
    export.register(sub)
    openset_cli.register(sub)
