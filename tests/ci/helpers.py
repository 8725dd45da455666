"""Helpers for the GitLab CI tests: repository copies, gitlab-ci-local runs, and the CI files.

gitlab-ci-local runs the jobs of the real `.gitlab-ci.yml` with
`--force-shell-executor`, so the job scripts run on this machine. The jobs'
Python comes from a virtual environment that includes the system's
site-packages (see conftest.py), so the jobs' `pip install --editable .`
never touches the machine's own Python.
"""

import os
import shutil
import subprocess
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CI_FILE = REPO_ROOT / ".gitlab-ci.yml"
CI_JOB_FOLDER = REPO_ROOT / ".gitlab-ci.d"

# The copy's origin URL makes gitlab-ci-local set CI_PROJECT_PATH to this, and
# the copy sits in builds/<this>, as a GitLab Runner clones it by default.
PROJECT_PATH = "demo-group/hello-python"
ORIGIN_URL = f"https://gitlab.example.test/{PROJECT_PATH}.git"
DEFAULT_BRANCH = "main"
IMAGE_REPOSITORY = f"registry.example.test/{PROJECT_PATH}"

# Seconds a single gitlab-ci-local run may take. An image build with vfs
# storage took about 4 minutes on a shared 2-core machine.
JOB_TIMEOUT = 1200

_GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "CI Test",
    "GIT_AUTHOR_EMAIL": "ci-test@example.test",
    "GIT_COMMITTER_NAME": "CI Test",
    "GIT_COMMITTER_EMAIL": "ci-test@example.test",
}



def ci_files() -> list[Path]:
    """Return .gitlab-ci.yml and every job file in .gitlab-ci.d/."""
    return [CI_FILE, *sorted(CI_JOB_FOLDER.glob("*.yml"))]


def load_ci_file(path: Path) -> dict:
    """Parse one CI file with PyYAML (the files use no GitLab-specific tags)."""
    return yaml.safe_load(path.read_text()) or {}


def git(project: Path, *args: str, env: dict | None = None) -> str:
    """Run git in project and return its stdout; raise with git's stderr when it fails."""
    completed = subprocess.run(
        ["git", *args],
        cwd=project,
        env={**os.environ, **_GIT_IDENTITY, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed in {project}: {completed.stderr.strip()}")
    return completed.stdout.strip()


def repository_files() -> list[str]:
    """Return the files of the working tree that Git tracks or would track (ignored files left out)."""
    output = git(REPO_ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    return sorted({name for name in output.split("\0") if name})


def make_project_copy(destination: Path) -> Path:
    """Copy the working tree into destination/builds/PROJECT_PATH as a Git repository with two commits.

    The working tree, not HEAD, is copied, so uncommitted changes are tested
    too. The first commit ("base") stands for the image already deployed; the
    second is the commit a pipeline runs for. origin/HEAD points at main, so
    gitlab-ci-local sets CI_DEFAULT_BRANCH=main.
    """
    project = destination / "builds" / PROJECT_PATH
    project.mkdir(parents=True)
    for name in repository_files():
        source = REPO_ROOT / name
        if not source.is_file():
            continue
        target = project / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)

    git(project, "init", "--quiet", f"--initial-branch={DEFAULT_BRANCH}")
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--no-verify", "-m", "Base commit")
    git(project, "commit", "--quiet", "--allow-empty", "--no-verify", "-m", "Change the app")
    git(project, "remote", "add", "origin", ORIGIN_URL)
    git(project, "update-ref", f"refs/remotes/origin/{DEFAULT_BRANCH}", "HEAD")
    git(project, "symbolic-ref", "refs/remotes/origin/HEAD", f"refs/remotes/origin/{DEFAULT_BRANCH}")
    return project


def run_job(gitlab_ci_local: str, project: Path, environment: dict, job: str,
            variables: dict[str, str] | None = None, *, needs: bool = False) -> subprocess.CompletedProcess:
    """Run one job of the project's .gitlab-ci.yml with the shell executor and return the finished process.

    With needs=True, the jobs it needs run first and pass on their artifacts
    and dotenv variables.
    """
    argv = [gitlab_ci_local, "--force-shell-executor", "--no-color", *(["--needs"] if needs else []), job]
    for key, value in (variables or {}).items():
        argv += ["--variable", f"{key}={value}"]
    return subprocess.run(
        argv, cwd=project, env=environment, capture_output=True, text=True, timeout=JOB_TIMEOUT, check=False
    )


def job_log(project: Path, job: str) -> str:
    """Return the job's log as gitlab-ci-local stored it (the lines the job printed, without prefixes)."""
    return (project / ".gitlab-ci-local" / "output" / f"{job}.log").read_text()


def job_artifacts(project: Path, job: str) -> Path:
    """Return the folder where gitlab-ci-local stored the job's artifacts."""
    return project / ".gitlab-ci-local" / "artifacts" / job


def describe(completed: subprocess.CompletedProcess) -> str:
    """Return the end of gitlab-ci-local's output, for assertion messages."""
    output = (completed.stdout + completed.stderr).splitlines()
    return "\n".join(output[-40:])
