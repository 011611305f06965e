"""Debian's chromium for the browser tests and the designer's drag benchmark, installed with apt when
missing (Playwright's own browser download cannot be reached from these machines)."""

from __future__ import annotations

import os
import shutil
import subprocess

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class BrowserMissing(RuntimeError):
    pass


def chromium() -> str:
    """The path of Debian's chromium, installing the package first when it is not on PATH."""
    found = shutil.which("chromium")
    if found is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        for command in ([*sudo, "apt-get", "update", "-q"], [*sudo, "apt-get", "install", "-y", "-q", "chromium"]):
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
            if done.returncode != 0:
                raise BrowserMissing(
                    f"the browser tests need Debian's chromium; `{' '.join(command)}` failed: {done.stderr[-2000:]}"
                )
        found = shutil.which("chromium")
    if found is None:
        raise BrowserMissing("chromium is not on PATH after installing it")
    return found
