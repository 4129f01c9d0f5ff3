"""The ``kyso`` command run as a clerk runs it: a process of its own, pointed at one test
instance by its environment alone (no ``KYSO_*`` variable of the machine leaks in)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def kyso(
    env: dict[str, str],
    *args: str | Path,
    lang: str = "vi",
    stdin: str | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """``kyso ARGS`` with the instance's ``env``; messages in ``lang``; 200 columns so that
    Rich does not wrap what the test reads."""
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("KYSO_")}
    run_env.update(env, KYSO_LANG=lang, COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "kyso.cli.main", *map(str, args)],
        env=run_env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
