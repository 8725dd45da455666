"""Exceptions that the tasks turn into one line on stderr and a non-zero exit."""


class PipelineError(Exception):
    """A failure the user can act on.

    The message is one line: what failed, on which value, and what to do next.
    It never contains a token, key or password; `tasks.py` still passes it
    through `pipeline.redact.redact` before printing.
    """

    exit_code = 1


class ConfigError(PipelineError):
    """A setting in invoke.yaml, an INVOKE_* variable or a flag is missing or invalid."""


class CommandError(PipelineError):
    """An external command (pytest, an image builder, git) exited non-zero."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code or 1
