"""Asking the user for the token's PIN — by the agent, never by the page.

Interactively the agent asks in its own terminal (``getpass``: not echoed). ``--pin-command``
runs a program that asks instead and prints the PIN on its standard output, as ssh's
``SSH_ASKPASS`` and gpg's pinentry do: a graphical prompt on a desktop, a fixed answer in
tests. The program gets the prompt text as its one argument; exiting non-zero, or printing
nothing, means the user cancelled.
"""

from __future__ import annotations

import getpass
import shlex
import subprocess
from dataclasses import dataclass

from kyso.agent.errors import SigningCancelled

PIN_COMMAND_SECONDS = 120


@dataclass(frozen=True)
class PinSource:
    """Where the PIN comes from: the terminal (``command`` None) or a program."""

    command: str | None = None

    def ask(self, prompt: str) -> str:
        if self.command is None:
            try:
                pin = getpass.getpass(prompt + "\nMã PIN (để trống để hủy): ")
            except (EOFError, KeyboardInterrupt) as exc:
                raise SigningCancelled() from exc
        else:
            try:
                done = subprocess.run(
                    [*shlex.split(self.command), prompt],
                    capture_output=True,
                    text=True,
                    timeout=PIN_COMMAND_SECONDS,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise SigningCancelled(
                    "the PIN program did not answer", vi="chương trình hỏi PIN không trả lời"
                ) from exc
            if done.returncode != 0:
                raise SigningCancelled()
            pin = done.stdout.rstrip("\r\n")
        if not pin:
            raise SigningCancelled()
        return pin
