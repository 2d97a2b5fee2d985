"""The guard around every training command: a runtime-only install (`make serve`, `pip install gemid`) has
no torch, and `gemid train | evaluate | export | quantize` should then say how to get the `train` extra
instead of printing a traceback.

Its own module, imported by `cli`, `evaluate` and `export` alike and importing none of them, so the
command modules never import each other back.
"""

from __future__ import annotations

import importlib
import sys

TRAIN_EXTRA = ("torch", "albumentations", "onnx", "matplotlib")


def train_extra(func, needs: tuple[str, ...] = ()):
    """A training command's handler: the packages it `needs` are imported first, and a training-extra package
    missing then or while it runs (a runtime-only install) is a clear message and exit code 2, not a traceback."""
    def call(args):
        try:
            for name in needs:
                importlib.import_module(name)
            return func(args)
        except ModuleNotFoundError as exc:
            if exc.name not in TRAIN_EXTRA:
                raise
            print(f"error: this command needs the training extra ({exc.name} is missing): "
                  "pip install -e '.[train]'", file=sys.stderr)
            return 2
    return call
