"""`gemid train` under torchrun: two CPU processes (DistributedDataParallel, gloo) on a tiny drawn-stone set."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from model_fixture import write_stones  # noqa: E402

from gemid.datasets.manifest import read_manifest, write_manifest  # noqa: E402


def _torchrun() -> list[str]:
    exe = Path(sys.executable).with_name("torchrun")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "torch.distributed.run"]


def test_train_runs_on_two_processes(tmp_path):
    # 5 training photos on 2 ranks: unequal shards (3 + 2) must still take the same number of steps,
    # or DistributedDataParallel waits forever on the rank that ran out of batches
    full = read_manifest(write_stones(tmp_path / "stones", labels=["Emerald", "Ruby"], n_train=3, n_val=2))
    rows = list(full.rows)
    rows.remove(full.split("train")[0])
    manifest = write_manifest(rows, tmp_path / "stones" / "odd.csv", root=full.root)  # rows relative to it
    out = tmp_path / "run"
    env = {**os.environ, "GEMID_CACHE_DIR": str(tmp_path / "cache"), "NO_ALBUMENTATIONS_UPDATE": "1",
           "OMP_NUM_THREADS": "1"}
    cmd = [*_torchrun(), "--standalone", "--nproc_per_node", "2", "-m", "gemid.cli", "train",
           "--manifest", str(manifest), "--out", str(out), "--input-size", "64", "--epochs", "1",
           "--batch-size", "2", "--cache-views", "1", "--threads", "1", "--quiet", "--cpu"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both workers
        output, _ = proc.communicate()
        pytest.fail("torchrun did not finish in 240 s (a rank waiting on the other?)\n" + output[-3000:])
    assert proc.returncode == 0, output[-3000:]

    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["epoch"] == 1  # rank 0 alone writes the log: one line per epoch
    assert {"train_loss", "train_acc", "val_top1", "train_img_per_s"} <= set(log[0])
    ckpt = torch.load(out / "best.pt", map_location="cpu", weights_only=False)
    assert ckpt["world_size"] == 2
    assert ckpt["labels"] == ["Emerald", "Ruby"] and ckpt["input_size"] == 64
    assert (out / "last.pt").is_file()

    from gemid.training.restore import load_checkpoint

    model = load_checkpoint(out / "best.pt").model  # the saved weights fit the model, without DDP's prefix
    with torch.inference_mode():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 2)
