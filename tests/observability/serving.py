"""A ``uvicorn`` server of its own for a test, started and killed as an operator would:
tests that read its logs, kill it, or run several on one database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from conftest import _free_port


def start(env: dict[str, str], log: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """Serve the instance ``env`` names on a free port, stdout and stderr into ``log``; wait
    until it answers ``/livez``. Returns the process and its URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    out = log.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "kyso.web.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            *args,
        ],
        env={**os.environ, **env, "KYSO_BASE_URL": url},
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    out.close()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/livez", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
        if process.poll() is not None:
            raise RuntimeError(f"server exited; see {log}")
    process.kill()
    raise RuntimeError("server did not start in 120 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@contextmanager
def serving(env: dict[str, str], log: Path, *args: str) -> Iterator[str]:
    process, url = start(env, log, *args)
    try:
        yield url
    finally:
        stop(process)
