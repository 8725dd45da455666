"""The onboarding demo: test, build, push and bump on one machine, against local stand-ins.

Everything the demo creates lives under one git-ignored folder (`.demo/` by
default): a bare manifests repository in place of the GitLab project,
the merge requests it recorded, and the registry's storage. The steps call
the same functions as `inv test`, `inv build`, `inv push` and `inv bump`.
"""

import contextlib
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from invoke import Context

from pipeline.errors import PipelineError

# Repository name under the demo's local registry, 127.0.0.1:PORT/hello-python.
DEMO_IMAGE_NAME = "hello-python"


@dataclass
class DemoSettings:
    project_dir: Path
    demo_dir: Path
    test_paths: list[str]
    reports_dir: str
    engine: str
    base_image: str
    manifests_source: Path
    manifests_path: str
    target_branch: str
    branch_prefix: str
    environment: str = "dev"


@dataclass
class DemoState:
    tag: str = ""
    image: object = None  # pipeline.reference.ImageReference once known
    engine: object = None
    registry_address: str = ""
    pushed_digest: str = ""
    bump: object = None


class Steps:
    """Print each step as it starts, and its duration or the reason it was skipped when it ends."""

    def __init__(self, total: int):
        self.total = total
        self.number = 0

    @contextlib.contextmanager
    def step(self, title: str):
        self.number += 1
        print(f"\n==> [{self.number}/{self.total}] {title}", flush=True)
        started = time.monotonic()
        outcome = _Outcome()
        yield outcome
        elapsed = time.monotonic() - started
        if outcome.skip_reason:
            print(f"<== skipped: {outcome.skip_reason}", flush=True)
        else:
            print(f"<== done in {elapsed:.1f} s", flush=True)


class _Outcome:
    skip_reason = ""

    def skip(self, reason: str) -> None:
        self.skip_reason = reason


def run_demo(c: Context, settings: DemoSettings) -> DemoState:
    """Run test, build, push and bump against local stand-ins and print a summary.

    A step that cannot run on this machine is skipped with one sentence saying
    what to install. A step that fails raises, which stops every step after it.
    """
    from pipeline.revision import DIRTY_SUFFIX, image_tag

    settings.demo_dir.mkdir(parents=True, exist_ok=True)
    state = DemoState(tag=image_tag(settings.project_dir))
    if state.tag.endswith(DIRTY_SUFFIX):
        # The pipeline never ships uncommitted code, and the demo follows the same rule.
        raise PipelineError(
            f"the working tree has uncommitted changes (tag {state.tag}); commit or stash them, then run `inv demo` again"
        )
    steps = Steps(total=5)

    with contextlib.ExitStack() as cleanup:
        with steps.step("test: run the app's tests with the coverage gate") as outcome:
            _test(c, settings)
        with steps.step("registry: start a registry on 127.0.0.1") as outcome:
            _start_registry(settings, state, cleanup, outcome)
        with steps.step(f"build: build the image for commit {state.tag}") as outcome:
            _build(c, settings, state, cleanup, outcome)
        with steps.step("push: push the image to the local registry") as outcome:
            _push(settings, state, outcome)
    with steps.step("bump: propose the image to the manifests repository") as outcome:
        _bump(settings, state)

    print_summary(settings, state)
    return state


def _test(c: Context, settings: DemoSettings) -> None:
    from pipeline.testgate import run_tests

    run_tests(c, test_paths=settings.test_paths, reports_dir=settings.reports_dir, project_dir=settings.project_dir)


def _start_registry(settings: DemoSettings, state: DemoState, cleanup: contextlib.ExitStack, outcome) -> None:
    from pipeline.reference import parse_image_reference

    from pipeline.registry import REGISTRY_PROGRAM, LocalRegistry

    if not shutil.which(REGISTRY_PROGRAM):
        outcome.skip(f"{REGISTRY_PROGRAM} is not installed; install Debian's docker-registry package to push the image")
        state.image = parse_image_reference(f"localhost/{DEMO_IMAGE_NAME}:{state.tag}")
        return

    registry = cleanup.enter_context(
        LocalRegistry(settings.demo_dir / "registry", port=_remembered_port(settings.demo_dir / "registry-port"))
    )
    (settings.demo_dir / "registry-port").write_text(f"{registry.port}\n")
    state.registry_address = registry.address
    state.image = parse_image_reference(f"{registry.address}/{DEMO_IMAGE_NAME}:{state.tag}")
    print(f"registry listening on {registry.address}")


def _remembered_port(port_file: Path) -> int:
    """Return the port the last run's registry used when it is still free, else 0 for a new one.

    The same port keeps the image name 127.0.0.1:PORT/hello-python, so a
    second run replaces the first run's image instead of adding another.
    """
    from pipeline.registry import port_is_free

    try:
        port = int(port_file.read_text().strip())
    except (OSError, ValueError):
        return 0
    return port if 1024 <= port <= 65535 and port_is_free(port) else 0


def _build(c: Context, settings: DemoSettings, state: DemoState, cleanup: contextlib.ExitStack, outcome) -> None:
    from pipeline.engines import EngineError
    from pipeline.images import RUNTIME_STAGE, build_args, build_image, build_session

    try:
        session = cleanup.enter_context(
            build_session(c, engine_name=settings.engine, repo_dir=settings.project_dir)
        )
    except EngineError as error:
        outcome.skip(str(error))
        return
    state.engine = session.engine
    base_image = _base_image(c, settings, session.engine)
    build_image(session, str(state.image), target=RUNTIME_STAGE,
                build_args=build_args(settings.project_dir, base_image=base_image))
    print(f"built {state.image}")


def _base_image(c: Context, settings: DemoSettings, engine) -> str:
    """Return the base image: the configured one, or a stand-in built locally where none can be pulled."""
    if settings.base_image != "auto":
        return settings.base_image
    if engine.name != "docker" and shutil.which("debootstrap"):
        from pipeline.standin import ensure_standin_base

        return ensure_standin_base(c, engine)
    return ""


def _push(settings: DemoSettings, state: DemoState, outcome) -> None:
    from pipeline.images import check_pushable_tag

    if state.engine is None:
        outcome.skip("no image was built, so there is nothing to push")
        return
    if not state.registry_address:
        outcome.skip("no local registry is running; install Debian's docker-registry package")
        return
    check_pushable_tag(state.tag)
    state.pushed_digest = state.engine.push(str(state.image))
    print(f"pushed {state.image}@{state.pushed_digest}")


def _bump(settings: DemoSettings, state: DemoState) -> None:
    from pipeline.gitops import bump_manifests
    from pipeline.revision import source_commit
    from pipeline.manifests_remote import create_manifests_remote

    seed = settings.demo_dir / "manifests-content"
    prepare_manifests_content(settings, state, seed)
    create_manifests_remote(
        settings.demo_dir / "manifests.git", seed, settings.demo_dir / "merge-requests", settings.target_branch
    )
    shutil.rmtree(seed)

    state.bump = bump_manifests(
        url=(settings.demo_dir / "manifests.git").resolve().as_uri(),
        target_branch=settings.target_branch,
        manifests_path=settings.manifests_path,
        image=state.image,
        mode="merge-request",
        branch_prefix=settings.branch_prefix,
        source_commit=source_commit(settings.project_dir),
        app_repo=settings.project_dir,
    )
    print(state.bump.message)


def prepare_manifests_content(settings: DemoSettings, state: DemoState, seed: Path) -> None:
    """Copy manifests/ and point its image at the demo's repository, at the parent of the commit being demoed.

    Starting one commit back lets the bump show a real change that the
    rollback guard accepts, because the parent is an ancestor of HEAD.
    """
    from pipeline.manifests import retarget_image

    if seed.exists():
        shutil.rmtree(seed)
    shutil.copytree(settings.manifests_source, seed)
    previous = _parent_tag(settings.project_dir) or state.tag
    retarget_image([seed / settings.manifests_path], state.image.with_tag(previous))
    print(
        f"the stand-in manifests repository starts with {settings.manifests_path} at {previous}, the parent "
        f"commit, so the bump proposes {previous} -> {state.tag}"
    )


def print_summary(settings: DemoSettings, state: DemoState) -> None:
    """Print the image reference, the manifests branch, the manifest diff, the merge request and Argo CD's next move."""
    from pipeline.manifests_remote import recorded_merge_requests

    bare = settings.demo_dir / "manifests.git"
    print("\n==> summary")
    digest = f"@{state.pushed_digest}" if state.pushed_digest else " (not pushed)"
    print(f"image:                {state.image}{digest}")
    print(f"manifests repository: {bare}")
    bump = state.bump
    print(f"bump:                 {bump.status}: {bump.message}")
    if bump.status != "changed":
        return
    print(f"manifests branch:     {bump.branch} (commit {bump.commit[:12]})")
    print("\nmanifest diff against the target branch:")
    print(_git(bare, "diff", settings.target_branch, bump.branch).rstrip())

    requests = [request for request in recorded_merge_requests(settings.demo_dir / "merge-requests")
                if request["source_branch"] == bump.branch]
    if requests:
        request = requests[-1]
        record = settings.demo_dir / "merge-requests" / (request["source_branch"].replace("/", "-") + ".json")
        print(f"\nmerge request GitLab would open: {request['source_branch']} -> {request['target_branch']}: "
              f"{request['title']}")
        print(f"recorded in {record}")
    _print_rendered_diff(settings, bump.branch)
    print(
        "\nAfter the merge request is merged, Argo CD (automated sync, prune, self-heal) renders "
        f"{settings.manifests_path} on {settings.target_branch}, applies the new image to the cluster, "
        "deletes objects removed from Git, and reverts changes made to the cluster by hand."
    )
    if not state.pushed_digest:
        print("This run pushed no image, so a real cluster could not pull the proposed one; "
              "install what the skipped steps name to run the whole loop.")


def _print_rendered_diff(settings: DemoSettings, branch: str) -> None:
    """Print the diff of the objects Argo CD would apply, rendered with kustomize, before and after the merge."""
    try:
        from pipeline.kube import render_diff
    except ImportError:
        return
    bare = settings.demo_dir / "manifests.git"
    before = settings.demo_dir / "render-before"
    after = settings.demo_dir / "render-after"
    for folder, ref in ((before, settings.target_branch), (after, branch)):
        if folder.exists():
            shutil.rmtree(folder)
        _git(bare.parent, "clone", "--quiet", "--branch", ref, str(bare), str(folder))
    try:
        diff = render_diff(before, after, settings.environment)
    except PipelineError as error:
        print(f"\nrendered objects: not shown ({error})")
        return
    print("\nobjects Argo CD would apply after the merge, as a diff against before:")
    print(diff.rstrip() or "(no difference)")


def _parent_tag(project_dir: Path) -> str:
    from pipeline.revision import SHORT_SHA_LENGTH, open_repository

    commit = open_repository(project_dir).head.commit
    return commit.parents[0].hexsha[:SHORT_SHA_LENGTH] if commit.parents else ""



def _git(directory: Path, *args: str) -> str:
    completed = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True)
    if completed.returncode != 0:
        raise PipelineError(f"git {args[0]} failed in {directory}: {completed.stderr.strip()}")
    return completed.stdout
