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


_IMAGE_HELP = {
    "engine": "auto, docker, podman or buildah (default: build.engine, auto: the first that works).",
    "host": "Build on this host over SSH, as user@host[:port], from the committed tree (default: build.host, local).",
    "standin-base": "Build on a Debian stand-in base made with debootstrap, for machines that cannot pull "
    "python:3.12-slim (default: build.standin_base, off).",
}


@task(
    help={
        **_IMAGE_HELP,
        "target": "Dockerfile stage to build: runtime or test (default: runtime).",
    }
)
@fail_cleanly
def build(c, engine=None, host=None, target="runtime", standin_base=False):
    """Build this commit's image from the Dockerfile, here or on a remote builder."""
    from pipeline import images

    with images.configured_session(c, engine, host) as session:
        images.build_stage(c, session, target, standin_base)


@task(
    help={
        "engine": _IMAGE_HELP["engine"],
        "host": "Push from this build host over SSH, as user@host[:port] (default: build.host, local).",
        "result-file": "Dotenv file for the bump job with IMAGE_REFERENCE, IMAGE_TAG and IMAGE_DIGEST "
        "(default: push.result_file, reports/image.env).",
    }
)
@fail_cleanly
def push(c, engine=None, host=None, result_file=None):
    """Push this commit's image and record its reference, tag and digest for the bump job."""
    from pipeline import images

    repository, tag = images.image_name(c.config)
    images.check_pushable_tag(tag)
    image = f"{repository}:{tag}"
    with images.configured_session(c, engine, host) as session:
        images.require_local_image(session.engine, image, remote=session.remote)
        images.login_from_environment(session.engine)
        digest = session.engine.push(image)
    path = images.write_push_result(result_file or c.config.push.result_file, repository=repository, tag=tag,
                                    digest=digest)
    print(f"pushed {image}@{digest}; wrote {path}")


@task(
    help={
        "engine": "docker or podman; buildah cannot run services (default: build.engine).",
        "port": "Port on 127.0.0.1 that serves the app (default: build.run_port, 8080).",
        "stop": "Stop the container that inv run started, instead of starting one.",
        "image": "Image to run (default: this commit's image, as inv build tags it).",
    }
)
@fail_cleanly
def run(c, engine=None, port=None, stop=False, image=None):
    """Start this commit's image in the background on 127.0.0.1, or stop it with --stop."""
    from pipeline import images
    from pipeline.engines import registry_host, select_engine
    from pipeline.images import CONTAINER_PORT, parse_port, require_local_image

    settings = c.config.build
    if not stop:
        port = parse_port(port or settings.run_port)
    selected = select_engine(c, engine or settings.engine, storage_driver=settings.storage_driver,
                             isolation=settings.isolation)
    name = settings.run_name
    if stop:
        if selected.stop_service(name):
            print(f"stopped {name}")
        else:
            print(f"no container named {name} is running; nothing to stop")
        return
    commit_image = not image
    if commit_image:
        repository, tag = images.image_name(c.config)
        image = f"{repository}:{tag}"
    if selected.runs_services and (commit_image or registry_host(image) == "localhost"):
        # Only inv build makes this commit's image, and no registry serves the name localhost, so never pull it.
        require_local_image(selected, image)
    selected.run_service(image, name=name, port=port, container_port=CONTAINER_PORT)
    print(f"{image} serves http://127.0.0.1:{port}/ as container {name}; stop it with inv run --stop")


@task(
    help={
        "in-image": "Build the Dockerfile's test stage and run the tests inside it (default: run them here).",
        "reports": "Folder for the JUnit, Cobertura and HTML reports (default: test.reports).",
        **{key: f"Only with --in-image: {value[0].lower()}{value[1:]}" for key, value in _IMAGE_HELP.items()
           if key in ("engine", "host", "standin-base")},
    }
)
@fail_cleanly
def test(c, in_image=False, reports=None, engine=None, host=None, standin_base=False):
    """Run the app's tests with coverage of app/ and fail below the gate in pyproject.toml."""
    from pipeline import testgate

    reports_dir = reports or c.config.test.reports
    if in_image:
        from pipeline import images

        with images.configured_session(c, engine, host) as session:
            image = images.build_stage(c, session, images.TEST_STAGE, standin_base)
            images.test_in_image(session, image, reports_dir)
        return
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


_BUMP_HELP = {
    "mode": "merge-request (branch + GitLab merge request) or direct (push to the target branch) (default: bump.mode).",
    "url": "Clone URL of the manifests repository (default: manifests.url).",
    "branch": "Target branch of the manifests repository (default: manifests.branch, main).",
    "path": "File or folder inside the manifests repository to edit (default: manifests.path, overlays/dev).",
    "env": "Environment whose overlay to edit, such as prod, mapped by environments.path; the merge request "
    "branch becomes argocd/<env>/<tag> (default: none; without --env or --path the bump edits manifests.path, "
    "overlays/dev).",
    "container": "Name of the container whose image to set, when several match (default: bump.container, any).",
    "dry-run": "Clone and edit, print the diff and the push, and push nothing.",
    "pin-digest": "Append the digest that inv push wrote to bump.image_env (default: bump.pin_digest, off).",
    "attempts": "Direct mode: pushes to try when others push first (default: bump.attempts, 6).",
    "result-file": "JSON file for the CI job with status, branch, commit and images (default: bump.result_file).",
}


# bump and rollback share their flags, so invoke's automatic short flags (which differ per task) are off.
@task(
    help={
        **_BUMP_HELP,
        "tag": "Image tag to propose (default: the tag of this commit, as inv build computes it).",
        "allow-rollback": "Replace the deployed image even when it is newer or its age is unknown.",
    },
    auto_shortflags=False,
)
@fail_cleanly
def bump(c, mode=None, url=None, branch=None, path=None, env=None, tag=None, container=None, allow_rollback=False,
         dry_run=False, pin_digest=False, attempts=None, result_file=None):
    """Propose this commit's image to the manifests repository."""
    from pipeline.bump_task import run_bump

    result = run_bump(c.config, tag=tag, mode=mode, url=url, branch=branch, path=path, env=env, container=container,
                      allow_rollback=allow_rollback, dry_run=dry_run, pin=pin_digest or None, attempts=attempts,
                      result_file=result_file)
    print(result.message)


@task(
    help={
        **_BUMP_HELP,
        "to": "Commit of the application repository whose image to deploy again (required).",
    },
    positional=[],
    auto_shortflags=False,
)
@fail_cleanly
def rollback(c, to=None, mode=None, url=None, branch=None, path=None, env=None, container=None, dry_run=False,
             pin_digest=False, attempts=None, result_file=None):
    """Deploy an earlier commit's image again, on purpose, through the same path as bump."""
    from pipeline.bump_task import run_bump
    from pipeline.errors import ConfigError

    if not to:
        raise ConfigError("--to is required; give the commit of the application repository whose image to "
                          "deploy again, such as a hash from git log")

    result = run_bump(c.config, rollback_to=to, mode=mode, url=url, branch=branch, path=path, env=env,
                      container=container,
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


@task(
    iterable=["path"],
    help={
        "path": "Manifest file or folder (.yaml/.yml, searched recursively); repeat for more (required).",
        "image": "Image reference to set, such as registry.example.com/shop/web:7d41e0c or …@sha256:… (required).",
        "container": "Set only the container with this name, whatever its image; fails where a kustomization "
        "images: entry sets the same image, because it has no container name (default: match by image repository).",
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
        print(f"already up to date: {len(result.unchanged)} value(s) contain {reference}")
        return
    if dry_run:
        print(result.diff, end="")
        print(f"{len(result.changes)} value(s) would change; nothing written (--dry-run)")
    else:
        print(f"{len(result.changes)} value(s) changed")


@task(
    help={
        "from": "Environment whose image to copy (default: environments.default, dev).",
        "to": "Environment to propose that image for, such as prod (required).",
        "url": "Clone URL of the manifests repository (default: manifests.url).",
        "branch": "Target branch of the manifests repository (default: manifests.branch, main).",
        "mode": "merge-request (branch + GitLab merge request) or direct (push to the target branch) (default: bump.mode).",
        "dry-run": "Clone and edit, print the diff and the push, and push nothing.",
    }
)
@fail_cleanly
def promote(c, to=None, from_=None, url=None, branch=None, mode=None, dry_run=False):
    """Propose the image one environment runs for another, such as dev to prod, through a merge request."""
    from pipeline.promote import PromotionError, run_promote

    if not to:
        raise PromotionError("--to is required; name the environment to promote to, such as prod")
    result = run_promote(c.config, source_env=from_ or c.config.environments.default, target_env=to, url=url,
                         branch=branch, mode=mode, dry_run=dry_run)
    print(result.message)


ns = Collection(test, build, push, run, demo, bump, rollback, lint, set_image, promote)
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
            # Environments that inv promote accepts; pipeline.kube.environment_path maps each to its folder.
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
        "build": {
            # auto, docker, podman or buildah; auto takes the first that works here.
            "engine": "auto",
            # buildah/podman storage driver and build isolation; empty means the
            # STORAGE_DRIVER and BUILDAH_ISOLATION variables, else vfs and chroot.
            "storage_driver": "",
            "isolation": "",
            # BASE_IMAGE build argument; empty keeps the Dockerfile's python:3.12-slim.
            "base_image": "",
            # Build a Debian stand-in base with debootstrap and use it as BASE_IMAGE.
            "standin_base": False,
            # Remote builder as user@host[:port]; empty builds here.
            "host": "",
            "known_hosts": "~/.ssh/known_hosts",
            # Private key for the remote builder; empty means ssh-agent and ~/.ssh keys.
            "identity_file": "",
            # Seconds to wait for the SSH connection. This and run_port are strings for the
            # reason given at bump.attempts.
            "connect_timeout": "15",
            # inv run: port on 127.0.0.1 and container name.
            "run_port": "8080",
            "run_name": "hello-python",
        },
        "push": {
            # Dotenv file with IMAGE_REFERENCE, IMAGE_TAG and IMAGE_DIGEST for the bump job.
            "result_file": "reports/image.env",
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
            # Strings, because invoke casts an INVOKE_BUMP_* variable to the default's type and
            # fails with a traceback on "abc"; pipeline.config parses and checks both values.
            "attempts": "6",
            "backoff_seconds": "0.5",
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
