"""The two magnus installations under test, each in its own virtualenv."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

OURS = "ours"
OLD = "0.5.1"
KEDRO = "kedro"
FLOOR = "floor"


@dataclass(frozen=True)
class Tool:
    """A magnus installation: its interpreter and the ``magnus`` script beside it."""

    key: str
    python: Path

    @property
    def bin(self) -> Path:
        return self.python.parent

    @property
    def magnus(self) -> Path:
        return self.bin / "magnus"

    def env(self) -> dict[str, str]:
        """The environment of a run: this installation first on PATH, no magnus settings.

        PATH matters beyond the first process: a fan-out that starts ``magnus`` again must start
        this installation's, not whichever venv the harness happens to run in.
        """
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("MAGNUS_") and key not in ("PYTHONPATH", "PYTHONHOME")
        }
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.bin.parent)
        return env

    def describe(self) -> dict[str, str]:
        """Where this installation's ``magnus`` package lives and its version."""
        # 0.5.1 has no ``__version__``; its distribution metadata has.
        probe = (
            "import json, importlib.metadata as m, magnus; "
            "print(json.dumps([magnus.__file__, "
            "getattr(magnus, '__version__', None) or m.version('magnus')]))"
        )
        out = subprocess.run(
            [str(self.python), "-c", probe],
            check=True,
            capture_output=True,
            text=True,
            env=self.env(),
            cwd="/",  # never pick up a magnus folder from the working directory
        ).stdout
        location, version = json.loads(out)
        return {"location": location, "version": version}
