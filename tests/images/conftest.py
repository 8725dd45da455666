"""Fixtures for the image tests: real buildah, a real registry and a real sshd, all on 127.0.0.1.

Expensive parts (the stand-in base, the runtime image, the registry, sshd) are
session-scoped, so the whole folder builds the Dockerfile's runtime stage once
locally and once through the remote path.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import require_programs

PROJECT_DIR = Path(__file__).resolve().parents[2]
# What the build context of the real Dockerfile needs; copied into a fresh Git repository.
APP_FILES = ("Dockerfile", ".dockerignore", "pyproject.toml", "app", "tests/__init__.py", "tests/app")
# Seconds one `inv` command may take; a cold build with the stand-in base takes about two minutes here.
INV_TIMEOUT = 1200



def clean_environment(**extra: str) -> dict[str, str]:
    """Return this process's environment without GitLab CI_* variables (CI stays), plus PYTHONPATH and extra."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("CI_")}
    environ.pop("STORAGE_DRIVER", None)
    environ.pop("BUILDAH_ISOLATION", None)
    environ["PYTHONPATH"] = str(PROJECT_DIR)
    environ.update(extra)
    return environ


def run_inv(args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `inv ARGS` with this project's tasks.py in cwd (an application repository) and capture the output."""
    return subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(PROJECT_DIR), *args],
        cwd=cwd,
        env=clean_environment(**(env or {})),
        capture_output=True,
        text=True,
        timeout=INV_TIMEOUT,
    )


def git(repo: Path, *args: str) -> str:
    completed = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True)
    return completed.stdout.strip()


def make_app_repository(path: Path) -> Path:
    """Copy the Dockerfile, the app and its tests into a new Git repository at path with one commit."""
    path.mkdir(parents=True)
    for name in APP_FILES:
        source = PROJECT_DIR / name
        if source.is_dir():
            shutil.copytree(source, path / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, path / name)
    (path / ".gitignore").write_text("/reports/\n__pycache__/\n")
    git(path, "init", "--quiet", "--initial-branch=main")
    git(path, "add", "--all")
    git(path, "-c", "user.name=Test", "-c", "user.email=test@example.invalid", "commit", "--quiet", "-m", "Add app")
    return path


def buildah(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["buildah", "--storage-driver", "vfs", *args], capture_output=True, text=True,
                          check=check, timeout=600)


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


@pytest.fixture(scope="session")
def app_repo(tmp_path_factory) -> Path:
    return make_app_repository(tmp_path_factory.mktemp("app") / "repo")


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    require_programs("docker-registry")
    from pipeline.registry import LocalRegistry

    with LocalRegistry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="session")
def built_image(app_repo, registry) -> dict[str, str]:
    """Build the runtime stage of the real Dockerfile on the stand-in base with `inv build`, once per session."""
    require_programs("buildah", "debootstrap")
    repository = f"{registry.address}/shop/hello-python"
    completed = run_inv(["build", "--engine", "buildah", "--standin-base"], cwd=app_repo,
                        env={"INVOKE_IMAGE_REPOSITORY": repository})
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr
    commit = git(app_repo, "rev-parse", "HEAD")
    return {"repository": repository, "tag": commit[:8], "commit": commit, "image": f"{repository}:{commit[:8]}",
            "output": completed.stdout + completed.stderr}


@pytest.fixture(scope="session")
def pushed_image(app_repo, built_image) -> dict[str, str]:
    """Push the runtime image with `inv push` and return the dotenv values it wrote."""
    require_programs("skopeo")
    from pipeline.images import read_push_result

    result_file = app_repo / "reports" / "image.env"
    completed = run_inv(["push", "--engine", "buildah"], cwd=app_repo,
                        env={"INVOKE_IMAGE_REPOSITORY": built_image["repository"]})
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr
    return read_push_result(result_file)


@pytest.fixture(scope="session")
def ssh_server(tmp_path_factory):
    """Start sshd on a free port of 127.0.0.1 with a generated host key and client key; stop it at the end."""
    require_programs("ssh-keygen")
    sshd = "/usr/sbin/sshd"
    if not os.path.exists(sshd):
        require_programs("sshd")
        sshd = shutil.which("sshd")
    if os.geteuid() != 0:
        pytest.skip("sshd for the remote builder test runs as root, and this user is not root")

    from pipeline.registry import free_port

    folder = tmp_path_factory.mktemp("sshd")
    host_key = folder / "ssh_host_ed25519_key"
    client_key = folder / "id_ed25519"
    for key in (host_key, client_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    shutil.copy(client_key.with_suffix(".pub"), folder / "authorized_keys")
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1\n"
        f"HostKey {host_key}\n"
        f"PidFile {folder / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\n"
        "StrictModes no\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\n"
        "UsePAM no\n"
        "Subsystem sftp internal-sftp\n"
    )
    # sshd needs its privilege separation folder, which a container often lacks.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    known_hosts = folder / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key.with_suffix('.pub').read_text().split(' ', 2)[0]} "
                           f"{host_key.with_suffix('.pub').read_text().split(' ', 2)[1]}\n")
    log = open(folder / "sshd.log", "wb")
    process = subprocess.Popen([sshd, "-D", "-e", "-f", str(config), "-p", str(port)], stdout=log,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield {"port": port, "known_hosts": known_hosts, "identity_file": client_key, "folder": folder,
               "host": f"root@127.0.0.1:{port}"}
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
