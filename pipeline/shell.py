"""Run external commands through invoke and turn failures into CommandError."""

import io
import shlex
from collections.abc import Mapping, Sequence

from invoke import Context

from pipeline.errors import CommandError
from pipeline.redact import redact

# How much of a failed command's output the error message quotes.
_ERROR_TAIL_LINES = 3


def run_command(
    c: Context,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdin_text: str | None = None,
    secrets: Sequence[str] = (),
    hide: bool = False,
    pty: bool = False,
    what: str | None = None,
):
    """Echo and run argv, and return invoke's Result; raise CommandError if it exits non-zero.

    The command runs with warn=True, so invoke never raises its own
    UnexpectedExit, and this function checks the exit status instead. The error
    quotes the last lines of stdout and stderr together, because with pty=True
    a command's stderr arrives on stdout. `secrets` and known secret variables
    are masked in the echo and in the error.
    """
    command = shlex.join(argv)
    print(f"$ {redact(command, secrets)}", flush=True)
    result = c.run(
        command,
        warn=True,
        hide=hide,
        pty=pty,
        echo=False,
        env=dict(env or {}),
        in_stream=io.StringIO(stdin_text) if stdin_text is not None else False,
    )
    if result.failed:
        reason = last_lines(f"{result.stdout}\n{result.stderr}")
        label = what or argv[0]
        message = f"{label} failed with exit status {result.exited}: {reason}" if reason else (
            f"{label} failed with exit status {result.exited}"
        )
        raise CommandError(redact(message, secrets), exit_code=result.exited)
    return result


def last_lines(output: str, count: int = _ERROR_TAIL_LINES) -> str:
    """Return the last non-blank lines of output joined by ' | ', for a one-line error."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return " | ".join(lines[-count:])
