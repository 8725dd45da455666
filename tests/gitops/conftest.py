"""Real Git repositories, hooks and an sshd on 127.0.0.1 for the bump round-trip tests."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import require_program

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE_REPOSITORY = "registry.example.com/acme/hello-python"
MANIFEST_PATH = "apps/hello-python/deployment.yaml"

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.invalid",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.invalid",
}

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello-python
spec:
  selector:
    matchLabels:
      app: hello-python
  template:
    metadata:
      labels:
        app: hello-python
    spec:
      containers:
        - name: hello-python
          image: {image}  # set by inv bump
        - name: proxy
          image: docker.io/library/busybox:1.36
"""

# Declines main like a GitLab protected branch, and any branch under locked/.
PROTECTING_PRE_RECEIVE = """\
#!/bin/sh
while read old new ref; do
  case "$ref" in
    refs/heads/main)
      echo "GL-HOOK-ERR: You are not allowed to push code to protected branches on this project."
      exit 1 ;;
    refs/heads/locked/*)
      echo "GL-HOOK-ERR: branch name is reserved."
      exit 1 ;;
  esac
done
exit 0
"""

# Records each push's options and refs as one JSON line in push-options.jsonl.
RECORDING_POST_RECEIVE = """\
#!{python}
import json, os, sys
count = int(os.environ.get("GIT_PUSH_OPTION_COUNT", "0"))
options = [os.environ["GIT_PUSH_OPTION_%d" % i] for i in range(count)]
refs = [line.split()[2] for line in sys.stdin if line.strip()]
with open(os.path.join(os.environ.get("GIT_DIR", "."), "push-options.jsonl"), "a") as log:
    log.write(json.dumps({{"options": options, "refs": refs}}) + "\\n")
"""

# Prints GitLab's warning for a push option it cannot act on, as GitLab's post-receive does.
WARNING_POST_RECEIVE = """\
#!/bin/sh
cat >/dev/null
echo "========================================================================"
echo ""
echo "WARNINGS:"
echo "Error encountered with push options 'merge_request.create' 'merge_request.target=nope': Target branch nope does not exist"
echo ""
echo "========================================================================"
"""



def git(*args, cwd=None, env=None, check=True) -> str:
    """Run git with a fixed identity and return its stdout, stripped."""
    completed = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_IDENTITY, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if check and completed.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {completed.stderr}")
    return completed.stdout.strip()


def image(tag: str) -> str:
    return f"{IMAGE_REPOSITORY}:{tag}"


@dataclass
class Remote:
    """A bare repository in place of the manifests repository on GitLab."""

    path: Path

    @property
    def url(self) -> str:
        return self.path.as_uri()

    def show(self, revision: str, file: str = MANIFEST_PATH) -> str:
        """Return the file's exact text at revision (not stripped)."""
        return subprocess.run(
            ["git", "show", f"{revision}:{file}"], cwd=self.path, capture_output=True, text=True, check=True
        ).stdout

    def rev(self, revision: str) -> str:
        return git("rev-parse", "--verify", "--quiet", revision, cwd=self.path, check=False)

    def count(self, revision: str = "main") -> int:
        return int(git("rev-list", "--count", revision, cwd=self.path))

    def push_log(self) -> list[dict]:
        log = self.path / "push-options.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]


def make_remote(root: Path, deployed_tag: str, *, extra_commits: int = 0) -> Remote:
    """Create root/manifests.git with the Deployment at deployed_tag, push options on and recorded."""
    bare = root / "manifests.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    git("config", "receive.advertisePushOptions", "true", cwd=bare)
    seed = root / "seed"
    git("init", "--quiet", "--initial-branch=main", str(seed))
    for number in range(extra_commits):
        (seed / "history.txt").write_text(f"change {number}\n")
        git("add", "history.txt", cwd=seed)
        git("commit", "--quiet", "-m", f"Change {number}", cwd=seed)
    manifest = seed / MANIFEST_PATH
    manifest.parent.mkdir(parents=True)
    manifest.write_text(DEPLOYMENT.format(image=image(deployed_tag)))
    git("add", MANIFEST_PATH, cwd=seed)
    git("commit", "--quiet", "-m", "Deploy hello-python", cwd=seed)
    git("push", "--quiet", str(bare), "HEAD:refs/heads/main", cwd=seed)
    shutil.rmtree(seed)
    hook = bare / "hooks" / "post-receive"
    hook.write_text(RECORDING_POST_RECEIVE.format(python=sys.executable))
    hook.chmod(0o755)
    return Remote(bare)


def fast_import_remote(path: Path, commits: int, deployed_tag: str) -> Remote:
    """Create a bare repository whose main has `commits` commits, built in one git fast-import run.

    Each commit after the first continues refs/heads/main, because fast-import
    keeps a branch's tip between commits of one stream.
    """
    git("init", "--quiet", "--bare", "--initial-branch=main", str(path))
    git("config", "receive.advertisePushOptions", "true", cwd=path)
    chunks = []
    for number in range(1, commits + 1):
        is_last = number == commits
        content = (DEPLOYMENT.format(image=image(deployed_tag)) if is_last else f"change {number}\n").encode()
        target = MANIFEST_PATH if is_last else "history.txt"
        message = f"Change {number}\n".encode()
        chunk = (
            b"commit refs/heads/main\n"
            + b"committer Test Author <author@example.invalid> %d +0000\n" % (1_700_000_000 + number)
            + b"data %d\n%s" % (len(message), message)
            + b"M 644 inline %s\ndata %d\n%s\n" % (target.encode(), len(content), content)
        )
        chunks.append(chunk)
    subprocess.run(["git", "fast-import", "--quiet"], cwd=path, input=b"".join(chunks), check=True)
    return Remote(path)


@dataclass
class AppRepository:
    """An application repository with a line of commits; tags are their first 8 hex digits."""

    path: Path
    origin: Path
    commits: list[str]

    def tag(self, index: int) -> str:
        return self.commits[index][:8]


@pytest.fixture(scope="session")
def app_repo(tmp_path_factory) -> AppRepository:
    """An application repository (and its bare origin) with 20 commits in one line."""
    root = tmp_path_factory.mktemp("app")
    work = root / "work"
    git("init", "--quiet", "--initial-branch=main", str(work))
    commits = []
    for number in range(20):
        (work / "version.txt").write_text(f"{number}\n")
        git("add", "version.txt", cwd=work)
        git("commit", "--quiet", "-m", f"Release {number}", cwd=work)
        commits.append(git("rev-parse", "HEAD", cwd=work))
    origin = root / "origin.git"
    git("clone", "--quiet", "--bare", str(work), str(origin))
    git("remote", "add", "origin", str(origin), cwd=work)
    return AppRepository(work, origin, commits)


@pytest.fixture
def remote(tmp_path, app_repo) -> Remote:
    """A manifests repository whose Deployment runs the app's commit 5."""
    return make_remote(tmp_path, app_repo.tag(5))


@pytest.fixture(scope="session")
def big_remote(tmp_path_factory, app_repo) -> Remote:
    """A manifests repository with 10,000 commits on main (read-only: tests push to other copies)."""
    return fast_import_remote(tmp_path_factory.mktemp("big") / "manifests.git", 10_000, app_repo.tag(5))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class SshServer:
    """An sshd on 127.0.0.1 that accepts the deploy key for root."""

    port: int
    deploy_key: Path
    known_hosts: Path
    wrong_known_hosts: Path

    def url(self, repository: Path) -> str:
        return f"ssh://root@127.0.0.1:{self.port}{repository}"


@pytest.fixture(scope="session")
def ssh_server(tmp_path_factory):
    """Start /usr/sbin/sshd -D on a free port of 127.0.0.1 and stop it after the session."""
    sshd = require_program("/usr/sbin/sshd")
    ssh_keygen = require_program("ssh-keygen")
    require_program("ssh")
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("the sshd tests need root in CI, because sshd changes to the logged-in user")
        pytest.skip("sshd as the test's own server needs root")
    root = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "deploy_key", "other_host_key"):
        subprocess.run([ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True)
    (root / "authorized_keys").write_text((root / "deploy_key.pub").read_text())
    port = free_port()
    config = root / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nStrictModes no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
        f"UsePAM no\nPidFile {root / 'sshd.pid'}\nLogLevel ERROR\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
    process = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"sshd exited with {process.returncode}: {process.stderr.read()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        process.kill()
        pytest.fail("sshd did not listen within 10 s")

    host_public = (root / "host_key.pub").read_text().split()
    other_public = (root / "other_host_key.pub").read_text().split()
    (root / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_public[0]} {host_public[1]}\n")
    (root / "wrong_known_hosts").write_text(f"[127.0.0.1]:{port} {other_public[0]} {other_public[1]}\n")
    try:
        yield SshServer(port, root / "deploy_key", root / "known_hosts", root / "wrong_known_hosts")
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
