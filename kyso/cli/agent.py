"""`kyso agent`: the local signing agent for USB tokens (:mod:`kyso.agent`), run on the
user's own computer. It needs no kyso instance: only the token's PKCS#11 module and the
address of the kyso site allowed to use it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from kyso.agent import DEFAULT_PORT


def default_config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "kyso-agent"


def agent_command(
    origin: Annotated[
        str, typer.Option("--origin", help="The kyso site allowed to use the agent, exactly.")
    ],
    module: Annotated[
        str, typer.Option("--module", help="The token's PKCS#11 module (.so / .dll).")
    ],
    token: Annotated[
        str | None, typer.Option("--token", help="The token's label (default: any token).")
    ] = None,
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1.")] = DEFAULT_PORT,
    pin_command: Annotated[
        str | None,
        typer.Option(
            "--pin-command",
            help="A program that asks the PIN and prints it (like SSH_ASKPASS); "
            "default: ask in this terminal.",
        ),
    ] = None,
    config_dir: Annotated[
        Path | None,
        typer.Option("--config-dir", help="Where pairings and the signature log are kept."),
    ] = None,
) -> None:
    """Sign with a USB token for kyso's pages (listens on 127.0.0.1 only)."""
    from kyso.agent.pin import PinSource
    from kyso.agent.server import AgentConfig, serve

    serve(
        AgentConfig(
            origin=origin,
            module=module,
            config_dir=config_dir or default_config_dir(),
            token=token,
            port=port,
            pin=PinSource(pin_command),
        )
    )
