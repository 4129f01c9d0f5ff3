"""SoftHSM2 tokens for tests.

How SoftHSM2 and python-pkcs11 load, and what follows for tests
---------------------------------------------------------------
* ``pkcs11.lib(path)`` (python-pkcs11 0.10) keeps one loaded library per path in
  the module-level dict ``pkcs11._loaded`` and returns that same object on every
  later call (it only calls ``initialize()`` again if it was finalized).
  ``pkcs11.unload(path)`` drops it.
* SoftHSM2 (2.6.1 on Debian 12) reads ``$SOFTHSM2_CONF`` and scans the token
  directory only in ``C_Initialize``. ``C_GetSlotList`` does **not** re-scan.
  Verified by experiment: with the library loaded, a token that
  ``softhsm2-util --init-token`` adds afterwards is **not** visible through
  ``lib.get_tokens()`` / ``lib.get_token(token_label=...)`` (``NoSuchToken``); the
  slot list stays as it was (old tokens plus one empty free slot).
  ``lib.reinitialize()`` (``C_Finalize`` + ``C_Initialize``) makes it visible, and
  it also re-reads ``$SOFTHSM2_CONF``, so it is the way to switch to another conf
  too. But it invalidates every session and object handle opened before
  (``SessionHandleInvalid``).

So: all tokens a process uses must live in **one** conf, and ``SOFTHSM2_CONF``
must point at it before the library is first loaded. A test session should make
one conf dir per session (per xdist worker: each is its own process), create the
CA token with :func:`make_token` and subscriber tokens with
:meth:`SoftHsmToken.add_token`, ideally all before the first ``pkcs11.lib()``.
A token added later needs ``lib.reinitialize()`` (with no session left open) before
it can be seen; :meth:`SoftHsmToken.lib` does that when it is needed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)

#: Path of the SoftHSM2 PKCS#11 module, or None when SoftHSM2 is not installed.
SOFTHSM_MODULE: str | None = next((p for p in _CANDIDATES if os.path.exists(p)), None)

# The conf the loaded library was last (re)initialized with by SoftHsmToken.lib().
_active_conf: str | None = None


def available() -> bool:
    """SoftHSM2's module and its ``softhsm2-util`` are both installed."""
    return SOFTHSM_MODULE is not None and shutil.which("softhsm2-util") is not None


@dataclass(frozen=True)
class SoftHsmToken:
    module: str
    label: str
    pin: str
    so_pin: str
    conf_path: Path

    @property
    def token_dir(self) -> Path:
        return self.conf_path.parent / "tokens"

    def add_token(
        self, label: str, pin: str | None = None, so_pin: str | None = None
    ) -> SoftHsmToken:
        """Initialize another token in the same conf (e.g. a subscriber's token).

        If the library is already loaded in this process the new token is only
        seen after ``lib.reinitialize()``; see the module docstring.
        """
        token = replace(
            self,
            label=label,
            pin=self.pin if pin is None else pin,
            so_pin=self.so_pin if so_pin is None else so_pin,
        )
        _init_token(token)
        return token

    def lib(self) -> Any:
        """The process's ``pkcs11.lib`` for this module, with this token visible.

        Calls ``lib.reinitialize()`` when the library was set up with another
        conf or does not see this token yet; that invalidates sessions opened
        before, so open sessions after getting the tokens you need.
        """
        global _active_conf
        import pkcs11

        conf = str(self.conf_path)
        loaded_with = _active_conf or os.environ.get("SOFTHSM2_CONF")
        os.environ["SOFTHSM2_CONF"] = conf
        lib = pkcs11.lib(self.module)
        # Reinitializing closes every session in the process (the session-wide CAs' too),
        # so it is done only when the loaded library cannot see this token.
        if loaded_with != conf or not _sees(lib, self.label):
            lib.reinitialize()
        _active_conf = conf
        return lib

    def get_token(self) -> Any:
        """This token as a ``pkcs11.Token`` (see :meth:`lib`)."""
        return self.lib().get_token(token_label=self.label)


def _sees(lib: Any, label: str) -> bool:
    return any(True for _ in lib.get_tokens(token_label=label))


def _init_token(token: SoftHsmToken) -> None:
    util = shutil.which("softhsm2-util")
    if util is None:
        raise RuntimeError("softhsm2-util not found (apt-get install softhsm2)")
    env = dict(os.environ, SOFTHSM2_CONF=str(token.conf_path))
    proc = subprocess.run(
        [
            util,
            "--init-token",
            "--free",
            "--label",
            token.label,
            "--pin",
            token.pin,
            "--so-pin",
            token.so_pin,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not re.search(r"initialized", proc.stdout):
        raise RuntimeError(
            f"softhsm2-util --init-token {token.label!r} failed ({proc.returncode}): "
            f"{proc.stdout.strip()} {proc.stderr.strip()}"
        )


def make_token(
    directory: Path,
    label: str = "kyso-test",
    pin: str = "1234",
    so_pin: str = "12345678",
) -> SoftHsmToken:
    """Write ``directory/softhsm2.conf`` (tokens in ``directory/tokens``), point
    ``$SOFTHSM2_CONF`` at it, and initialize a token ``label`` there.

    Call it once per test session (see the module docstring) and add further
    tokens with :meth:`SoftHsmToken.add_token`.
    """
    if SOFTHSM_MODULE is None:
        raise RuntimeError("SoftHSM2 is not installed (apt-get install softhsm2)")
    directory = Path(directory).resolve()
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    token = SoftHsmToken(module=SOFTHSM_MODULE, label=label, pin=pin, so_pin=so_pin, conf_path=conf)
    _init_token(token)
    return token
