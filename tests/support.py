"""Helpers shared by the test folders."""

import os
import shutil
from pathlib import Path

import pytest


def require_program(name: str) -> str:
    """Return the program's path; skip the test when it is missing, but fail it in CI (CI=true).

    `.ci/run` installs every program the suite uses, so in CI a missing one is
    a broken install step, not a reason to skip.
    """
    path = shutil.which(name) or (name if Path(name).is_file() else None)
    if path:
        return path
    message = f"{name} is not installed; .ci/run installs it"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def require_programs(*names: str) -> None:
    """Require every program in names, as require_program does, naming all the missing ones at once."""
    missing = [name for name in names if not shutil.which(name)]
    if not missing:
        return
    message = f"not installed: {', '.join(missing)}; .ci/run installs them"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
