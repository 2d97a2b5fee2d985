"""A real `gemid serve` in its own process on a loopback port, as a user starts it: for the tests that need
the whole command (start-up checks, restarts, several HTTP workers, a runtime-only install)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(data_dir: Path, bundle: Path, port: int, *args: str, **env_extra: str) -> subprocess.Popen:
    """`gemid serve` on `port` with its output (stdout and stderr) in `proc.stdout`; `args` are more flags,
    `env_extra` more environment."""
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", **env_extra}
    return subprocess.Popen(
        [sys.executable, "-m", "gemid.cli", "serve", "--port", str(port), "--data-dir", str(data_dir),
         "--model-dir", str(bundle), "--log-level", "warning", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


class ServeError(RuntimeError):
    """`gemid serve` ended, or did not become ready, while it was awaited."""


def wait_ready(proc: subprocess.Popen, base: str, timeout: float = 60.0) -> dict:
    """/readyz's answer (the model served), once it says ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServeError(f"gemid serve exited with {proc.returncode}:\n{proc.stdout.read()}")
        try:
            r = httpx2.get(f"{base}/readyz", timeout=2)
            if r.status_code == 200:
                return r.json()
        except httpx2.TransportError:
            pass
        time.sleep(0.2)
    raise ServeError("gemid serve did not become ready")


def stop(proc: subprocess.Popen) -> None:
    """Ctrl-C, as a user stops it (the service then stops its workers), killed if it does not end."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cli_key(data_dir: Path, role: str = "admin", desk: str | None = None, name: str | None = None, **env: str) -> str:
    """A new API key made by `gemid keys create` on the store in `data_dir`, as an administrator makes one:
    the key is the last line of its output."""
    import secrets

    args = ["keys", "create", "--name", name or f"test-{role}-{secrets.token_hex(4)}", "--role", role]
    if desk:
        args += ["--desk", desk]
    done = subprocess.run([sys.executable, "-m", "gemid.cli", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "GEMID_DATA_DIR": str(data_dir), **env})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
