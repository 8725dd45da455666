"""End-to-end tests of `inv demo`: the real command in a fresh copy of this repository.

The full run uses real parts: pytest, a container engine with the stand-in
base image, Debian's docker-registry on 127.0.0.1, a bare manifests
repository with a hook, GitPython and kubectl. Another run hides the engines
and the registry to check that those steps are skipped with a reason.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import require_programs

PROJECT_DIR = Path(__file__).resolve().parents[2]
IDENTITY = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}
# A cold build on the stand-in base takes about two minutes on 2 cores.
DEMO_TIMEOUT = 1500



def git(repo: Path, *args: str) -> str:
    completed = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env={**os.environ, **IDENTITY}
    )
    return completed.stdout


def copy_project(destination: Path) -> Path:
    """Copy the tracked and untracked, not ignored, files of this repository into a new repository with 2 commits.

    The demo starts the manifests one commit back, so the copy needs a parent commit.
    """
    listed = subprocess.run(
        ["git", "-C", str(PROJECT_DIR), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, check=True,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = PROJECT_DIR / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    git(destination, "init", "--quiet", "--initial-branch=main")
    git(destination, "commit", "--quiet", "--allow-empty", "-m", "first")
    git(destination, "add", "--all")
    git(destination, "commit", "--quiet", "-m", "second")
    return destination


def run_demo(project: Path, path: str | None = None) -> subprocess.CompletedProcess:
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("CI_", "INVOKE_"))}
    if path is not None:
        environ["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "invoke", "demo"],
        cwd=project, env=environ, capture_output=True, text=True, timeout=DEMO_TIMEOUT,
    )


@pytest.fixture(scope="module")
def demo_project(tmp_path_factory):
    require_programs("kubectl", "docker-registry", "debootstrap")
    if not (shutil.which("buildah") or shutil.which("podman")):
        require_programs("buildah")
    return copy_project(tmp_path_factory.mktemp("demo") / "hello-python")


@pytest.fixture(scope="module")
def first_run(demo_project):
    return run_demo(demo_project)


def test_demo_succeeds(first_run):
    assert first_run.returncode == 0, first_run.stderr[-3000:] + first_run.stdout[-3000:]
    assert "Traceback" not in first_run.stderr


def test_demo_runs_every_step(first_run):
    for step in ("[1/5] test", "[2/5] registry", "[3/5] build", "[4/5] push", "[5/5] bump"):
        assert f"==> {step}" in first_run.stdout
    assert "skipped:" not in first_run.stdout
    assert first_run.stdout.count("<== done in ") == 5


def test_demo_branch_differs_only_in_image_line(demo_project, first_run):
    tag = git(demo_project, "rev-parse", "--short=8", "HEAD").strip()
    parent_tag = git(demo_project, "rev-parse", "--short=8", "HEAD~1").strip()
    bare = demo_project / ".demo" / "manifests.git"

    diff = git(bare, "diff", "--unified=0", "main", f"argocd/{tag}")

    changed = [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed == [f'-    newTag: "{parent_tag}"', f'+    newTag: "{tag}"']
    assert "overlays/dev/kustomization.yaml" in diff


def test_demo_records_merge_request(demo_project, first_run):
    tag = git(demo_project, "rev-parse", "--short=8", "HEAD").strip()
    record = json.loads((demo_project / ".demo" / "merge-requests" / f"argocd-{tag}.json").read_text())

    assert record["source_branch"] == f"argocd/{tag}"
    assert record["target_branch"] == "main"
    assert "merge_request.create" in record["push_options"]
    assert f"recorded in {demo_project / '.demo' / 'merge-requests' / f'argocd-{tag}.json'}" in first_run.stdout


def test_demo_pushes_image_to_registry(first_run):
    summary = first_run.stdout.split("==> summary", 1)[1]
    image_line = next(line for line in summary.splitlines() if line.startswith("image:"))
    assert "@sha256:" in image_line


def test_demo_summary_shows_rendered_diff(first_run):
    assert "objects Argo CD would apply after the merge" in first_run.stdout
    assert "After the merge request is merged, Argo CD" in first_run.stdout


def image_reference(run: subprocess.CompletedProcess) -> str:
    """Return the image reference, without digest, from the demo's summary."""
    summary = run.stdout.split("==> summary", 1)[1]
    image_line = next(line for line in summary.splitlines() if line.startswith("image:"))
    return image_line.split()[1].split("@")[0]


def test_demo_runs_twice(demo_project, first_run):
    second = run_demo(demo_project)

    assert second.returncode == 0, second.stderr + second.stdout[-3000:]
    branches = git(demo_project / ".demo" / "manifests.git", "branch", "--format=%(refname:short)").split()
    assert len(branches) == 2
    # The registry keeps its port, so the second run replaces the first run's image instead of adding one.
    assert image_reference(second) == image_reference(first_run)


def test_demo_without_engine_or_registry_skips(tmp_path):
    """With only git, kubectl and Python on PATH, build and push are skipped with a reason and the bump still runs."""
    require_programs("kubectl")
    project = copy_project(tmp_path / "hello-python")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("git", "kubectl"):
        (bin_dir / program).symlink_to(shutil.which(program))
    (bin_dir / "python3").symlink_to(sys.executable)

    completed = run_demo(project, path=str(bin_dir))

    assert completed.returncode == 0, completed.stderr + completed.stdout[-3000:]
    assert "<== skipped: docker-registry is not installed; install Debian's docker-registry package" in completed.stdout
    assert "<== skipped: no working container engine" in completed.stdout
    assert "<== skipped: no image was built, so there is nothing to push" in completed.stdout
    assert "bump:                 changed:" in completed.stdout
    assert "This run pushed no image, so a real cluster could not pull the proposed one" in completed.stdout


def test_demo_rejects_dirty_tree(tmp_path):
    project = copy_project(tmp_path / "hello-python")
    (project / "app" / "main.py").write_text((project / "app" / "main.py").read_text() + "\n# local change\n")

    completed = run_demo(project)

    assert completed.returncode == 1
    assert completed.stderr.strip().splitlines() == [
        f"error: the working tree has uncommitted changes (tag {git(project, 'rev-parse', '--short=8', 'HEAD').strip()}"
        "-dirty); commit or stash them, then run `inv demo` again"
    ]
    assert not (project / ".demo" / "manifests.git").exists()
