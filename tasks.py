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


@task(
    help={
        "demo-dir": "Folder for everything the demo creates; git-ignored (default: demo.dir, .demo).",
        "base-image": "Base image for the build; 'auto' builds a stand-in where none can be pulled (default: demo.base_image).",
    }
)
@fail_cleanly
def demo(c, demo_dir=None, base_image=None):
    """Run test, build, push and bump on this machine against local stand-ins."""
    from pathlib import Path

    from pipeline.demo import DemoSettings, run_demo

    project_dir = Path(c.config.demo.project_dir or ".").resolve()
    settings = DemoSettings(
        project_dir=project_dir,
        demo_dir=project_dir / (demo_dir or c.config.demo.dir),
        test_paths=list(c.config.test.paths),
        reports_dir=c.config.test.reports,
        engine=c.config.build.engine if "build" in c.config else "auto",
        base_image=base_image or c.config.demo.base_image,
        manifests_source=project_dir / "manifests",
        manifests_path=c.config.manifests.path,
        target_branch=c.config.manifests.branch,
        branch_prefix=c.config.bump.branch_prefix,
    )
    run_demo(c, settings)


@task(
    iterable=["path"],
    help={
        "path": "Manifest file or folder (.yaml/.yml, searched recursively); repeat for more (required).",
        "image": "Image reference to set, such as registry.example.com/shop/web:7d41e0c or …@sha256:… (required).",
        "container": "Set the container with this name whatever its image (default: match by image repository).",
        "key": "Dotted path of the value to set in other YAML, such as image.tag in Helm values (default: none).",
        "dry-run": "Print the unified diff and write nothing.",
    },
)
@fail_cleanly
def set_image(c, path, image=None, container=None, key=None, dry_run=False):
    """Set an image in manifests, kustomizations or Helm values, changing only the value's text."""
    from pipeline.manifests import ManifestError, set_image as set_image_in_files
    from pipeline.reference import parse_image_reference

    if not image:
        raise ManifestError("--image is required; give a reference such as registry.example.com/shop/web:7d41e0c")
    if not path:
        raise ManifestError("--path is required; give a manifest file or folder, repeat --path for more")
    reference = parse_image_reference(image)
    result = set_image_in_files(path, reference, container=container, key=key, dry_run=dry_run)

    for change in result.changes:
        print(change)
    if result.up_to_date:
        print(f"already up to date: {len(result.unchanged)} value(s) hold {reference}")
        return
    if dry_run:
        print(result.diff, end="")
        print(f"{len(result.changes)} value(s) would change; nothing written (--dry-run)")
    else:
        print(f"{len(result.changes)} value(s) changed")


ns = Collection(test, demo, set_image)
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
        "demo": {
            # Everything `inv demo` creates goes here; .gitignore lists it.
            "dir": ".demo",
            # "auto": the build's base image, or a stand-in built with debootstrap where none can be pulled.
            "base_image": "auto",
            # The application repository the demo runs in; empty means the current folder.
            "project_dir": "",
        },
    }
)
