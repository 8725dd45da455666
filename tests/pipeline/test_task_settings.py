"""Numeric settings given as INVOKE_* variables: a bad value is one line, never invoke's traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_inv(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO_ROOT), *args],
        cwd=REPO_ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize(
    ("variable", "args", "message"),
    [
        (
            "INVOKE_BUILD_CONNECT_TIMEOUT",
            ("build", "--host", "root@127.0.0.1:1"),
            "error: build.connect_timeout (INVOKE_BUILD_CONNECT_TIMEOUT) must be a number of seconds, got 'abc'; "
            "give one such as 0.5",
        ),
        (
            "INVOKE_BUILD_RUN_PORT",
            ("run", "--engine", "podman"),
            "error: invalid port 'abc'; give a number from 1 to 65535 (--port or build.run_port)",
        ),
    ],
    ids=["connect-timeout", "run-port"],
)
def test_non_numeric_setting_is_one_line(variable, args, message):
    completed = run_inv(*args, env={variable: "abc"})

    assert completed.returncode == 1
    assert completed.stderr.splitlines() == [message]
