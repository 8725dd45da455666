"""Tasks that test, build, push and bump hello-python: `inv --list` shows them.

Each task gathers its options, calls into `pipeline/`, and prints the result.
A failure the code foresees ends the task with one line on stderr and a
non-zero exit (see `fail_cleanly`). Heavy imports happen inside the tasks so
that `inv --list` stays fast.
"""

import functools
import sys

from invoke import Collection, Exit, task

from pipeline.errors import PipelineError
from pipeline.redact import redact


def fail_cleanly(function):
    """Turn a PipelineError raised by a task into invoke's Exit: one redacted line, non-zero status."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except PipelineError as error:
            sys.stdout.flush()
            raise Exit(f"error: {redact(str(error))}", code=error.exit_code) from None

    return wrapper


@task(
    help={
        "in-image": "Build the Dockerfile's test stage and run the tests inside it (default: run them here).",
        "reports": "Folder for the JUnit, Cobertura and HTML reports (default: test.reports).",
    }
)
@fail_cleanly
def test(c, in_image=False, reports=None):
    """Run the app's tests with coverage of app/ and fail below the gate in pyproject.toml."""
    from pipeline import testgate

    reports_dir = reports or c.config.test.reports
    if in_image:
        raise Exit("error: test --in-image is not implemented yet")
    testgate.run_tests(c, test_paths=list(c.config.test.paths), reports_dir=reports_dir)


ns = Collection(test)
ns.configure(
    {
        "run": {"echo": False},
        "image": {
            # Full repository (registry host and path); empty means derive it from the keys below.
            "repository": "",
            "registry": "",
            "name": "hello-python",
        },
        "test": {
            "paths": ["tests/app"],
            "reports": "reports",
        },
    }
)
