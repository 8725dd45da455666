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


_BUMP_HELP = {
    "mode": "merge-request (branch + GitLab merge request) or direct (push to the target branch) (default: bump.mode).",
    "url": "Clone URL of the manifests repository (default: manifests.url).",
    "branch": "Target branch of the manifests repository (default: manifests.branch, main).",
    "path": "File or folder inside the manifests repository to edit (default: manifests.path, overlays/dev).",
    "container": "Name of the container whose image to set, when several match (default: bump.container, any).",
    "dry-run": "Clone and edit, print the diff and the push, and push nothing.",
    "pin-digest": "Append the digest that inv push wrote to bump.image_env (default: bump.pin_digest, off).",
    "attempts": "Direct mode: pushes to try when others push first (default: bump.attempts, 6).",
    "result-file": "JSON file for the CI job with status, branch, commit and images (default: bump.result_file).",
}


@task(
    help={
        **_BUMP_HELP,
        "tag": "Image tag to propose (default: the tag of this commit, as inv build computes it).",
        "allow-rollback": "Replace the deployed image even when it is newer or its age is unknown.",
    }
)
@fail_cleanly
def bump(c, mode=None, url=None, branch=None, path=None, tag=None, container=None, allow_rollback=False,
         dry_run=False, pin_digest=False, attempts=None, result_file=None):
    """Propose this commit's image to the manifests repository."""
    from pipeline.bump_task import run_bump

    result = run_bump(c.config, tag=tag, mode=mode, url=url, branch=branch, path=path, container=container,
                      allow_rollback=allow_rollback, dry_run=dry_run, pin=pin_digest or None, attempts=attempts,
                      result_file=result_file)
    print(result.message)


@task(
    help={
        **_BUMP_HELP,
        "to": "Commit of the application repository whose image to deploy again (required).",
    }
)
@fail_cleanly
def rollback(c, to, mode=None, url=None, branch=None, path=None, container=None, dry_run=False, pin_digest=False,
             attempts=None, result_file=None):
    """Deploy an earlier commit's image again, on purpose, through the same path as bump."""
    from pipeline.bump_task import run_bump

    result = run_bump(c.config, rollback_to=to, mode=mode, url=url, branch=branch, path=path, container=container,
                      dry_run=dry_run, pin=pin_digest or None, attempts=attempts, result_file=result_file)
    print(result.message)


@task(
    help={
        "path": "Folder of the manifests repository to check (default: lint.manifests, manifests).",
        "kubernetes-version": "Kubernetes minor version whose schemas apply, such as 1.31 (default: lint.kubernetes_version).",
    }
)
@fail_cleanly
def lint(c, path=None, kubernetes_version=None):
    """Check that the manifests render, match the Kubernetes schemas and pin full image references."""
    import os

    from pipeline.kubelint import LintError, lint_manifests

    folder = path or c.config.lint.manifests
    report = lint_manifests(
        folder,
        kubernetes_version=str(kubernetes_version or c.config.lint.kubernetes_version),
        require_tools=os.environ.get("CI", "").lower() == "true",
    )
    for note in report.skipped:
        print(f"note: {note}")
    for problem in report.problems:
        print(problem, file=sys.stderr)
    if report.problems:
        raise LintError(f"lint found {len(report.problems)} problem(s) in {folder}; fix the lines above")
    print(f"lint passed: {len(report.rendered)} kustomization folder(s), {report.objects_checked} object(s) in {folder}")


ns = Collection(test, demo, set_image, bump, rollback, lint)
ns.configure(
    {
        "run": {"echo": False},
        "image": {
            # Full repository (registry host and path); empty means derive it from the keys below.
            "repository": "",
            "registry": "",
            "name": "hello-python",
        },
        "environments": {
            # Environments that inv bump --env and inv promote accept.
            "names": ["dev", "prod"],
            "default": "dev",
            # Folder of an environment in the manifests repository; {env} is its name.
            "path": "overlays/{env}",
        },
        "lint": {
            # Folder that inv lint checks: this repository's copy of the manifests repository.
            "manifests": "manifests",
            # Oldest Kubernetes minor version the manifests must be valid for; selects the schemas.
            "kubernetes_version": "1.31",
        },
        "test": {
            "paths": ["tests/app"],
            "reports": "reports",
        },
        "manifests": {
            # Clone URL: ssh://…, git@host:group/repo.git, https://… or a local path.
            "url": "",
            "branch": "main",
            # File or folder inside the manifests repository that inv bump edits.
            "path": "overlays/dev",
            # Deploy key and known_hosts, each a path or the content; empty means the
            # MANIFESTS_SSH_PRIVATE_KEY and MANIFESTS_KNOWN_HOSTS variables. An HTTPS
            # token comes only from the MANIFESTS_TOKEN variable.
            "ssh_key": "",
            "known_hosts": "",
            "token_username": "oauth2",
        },
        "bump": {
            # "merge-request" or "direct".
            "mode": "merge-request",
            "branch_prefix": "argocd/",
            "author_name": "hello-python bot",
            "author_email": "hello-python-bot@noreply.invalid",
            "container": "",
            # GitLab merge request push options (merge-request mode).
            "create_merge_request": True,
            "remove_source_branch": True,
            "auto_merge": False,
            # GitLab 17 and later; older versions take merge_request.merge_when_pipeline_succeeds.
            "auto_merge_option": "merge_request.auto_merge",
            "labels": [],
            # Direct mode: pushes in all, and the first backoff in seconds (doubled, jittered).
            "attempts": 6,
            "backoff_seconds": 0.5,
            "result_file": "reports/bump.json",
            # Pin the digest that inv push recorded in image_env for the same tag.
            "pin_digest": False,
            "image_env": "reports/image.env",
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
