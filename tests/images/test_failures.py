"""Bad input for build, push and run: one line on stderr, a non-zero exit, nothing pushed."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from invoke import Context

from pipeline.engines import BuildahEngine, DockerEngine, EngineError, select_engine
from pipeline.images import read_push_result
from pipeline.registry import LocalRegistry, RegistryError, free_port
from tests.images.conftest import buildah, make_app_repository, require_programs, run_inv

FAKE_DOCKER = Path(__file__).with_name("fake-docker.sh")
DENIED = "denied: requested access to the resource is denied"


def error_lines(completed: subprocess.CompletedProcess) -> list[str]:
    return [line for line in completed.stderr.splitlines() if line.strip()]


def bin_folder(tmp_path: Path, **programs: str) -> Path:
    """Create a folder of executables: each keyword is a program name, its value the script."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    for name, script in programs.items():
        path = folder / name
        path.write_text(script)
        path.chmod(0o755)
    return folder


@pytest.fixture
def dirty_repo(tmp_path) -> Path:
    repo = make_app_repository(tmp_path / "dirty")
    (repo / "app" / "draft.py").write_text("DRAFT = True\n")
    return repo


@pytest.mark.parametrize("pty", [False, True], ids=["pipes", "pty"])
def test_engine_error_shows_push_denial(tmp_path, monkeypatch, pty):
    folder = bin_folder(tmp_path)
    shutil.copy(FAKE_DOCKER, folder / "docker")
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    engine = DockerEngine(Context(), pty=pty)

    with pytest.raises(EngineError) as raised:
        engine.push("registry.example.com/shop/web:7d41e0c2")

    message = str(raised.value)
    assert DENIED in message
    assert message.startswith("docker push failed with exit status 1")
    assert "\n" not in message
    assert raised.value.exit_code == 1


def test_select_engine_without_any_engine(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(bin_folder(tmp_path)))

    with pytest.raises(EngineError) as raised:
        select_engine(Context(), "auto")

    message = str(raised.value)
    assert "no working container engine" in message
    assert "docker is not installed" in message
    assert "buildah is not installed" in message
    assert "install buildah or podman" in message


def test_select_engine_skips_docker_without_daemon(tmp_path, monkeypatch):
    require_programs("buildah")
    no_daemon = "#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2\nexit 1\n"
    folder = bin_folder(tmp_path, docker=no_daemon)
    buildah_path = shutil.which("buildah")
    (folder / "buildah").symlink_to(buildah_path)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}/usr/bin{os.pathsep}/bin")
    monkeypatch.setenv("STORAGE_DRIVER", "vfs")

    engine = select_engine(Context(), "auto")

    assert engine.name in ("podman", "buildah")


def test_select_engine_named_docker_without_daemon(tmp_path, monkeypatch):
    no_daemon = "#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2\nexit 1\n"
    monkeypatch.setenv("PATH", f"{bin_folder(tmp_path, docker=no_daemon)}{os.pathsep}/usr/bin{os.pathsep}/bin")

    with pytest.raises(EngineError) as raised:
        select_engine(Context(), "docker")

    assert "docker has no reachable daemon" in str(raised.value)
    assert "Cannot connect to the Docker daemon" in str(raised.value)


def test_select_engine_rejects_unknown_name():
    with pytest.raises(EngineError) as raised:
        select_engine(Context(), "kaniko")

    assert str(raised.value) == "unknown container engine 'kaniko'; set build.engine to auto, docker, podman or buildah"


def test_build_without_engine_exits_with_one_line(app_repo, tmp_path):
    folder = bin_folder(tmp_path)
    for program in ("git", "sh", "bash"):
        (folder / program).symlink_to(shutil.which(program))

    completed = run_inv(["build"], cwd=app_repo, env={"PATH": str(folder)})

    assert completed.returncode == 1
    assert len(error_lines(completed)) == 1
    assert error_lines(completed)[0].startswith("error: no working container engine")


def test_push_rejects_dirty_tree(dirty_repo, registry):
    repository = f"{registry.address}/shop/dirty"

    completed = run_inv(["push", "--engine", "buildah"], cwd=dirty_repo, env={"INVOKE_IMAGE_REPOSITORY": repository})

    assert completed.returncode == 1
    assert len(error_lines(completed)) == 1
    assert error_lines(completed)[0].startswith("error: cannot push tag ")
    assert "-dirty" in error_lines(completed)[0]
    assert not (dirty_repo / "reports" / "image.env").exists()
    assert "$ buildah" not in completed.stdout


def test_push_to_read_only_registry_fails(app_repo, built_image, tmp_path):
    require_programs("buildah", "docker-registry")
    with LocalRegistry(tmp_path / "read-only", read_only=True) as read_only:
        repository = f"{read_only.address}/shop/hello-python"
        image = f"{repository}:{built_image['tag']}"
        buildah("tag", built_image["image"], image)
        result_file = tmp_path / "image.env"
        try:
            completed = run_inv(["push", "--engine", "buildah", "--result-file", str(result_file)], cwd=app_repo,
                                env={"INVOKE_IMAGE_REPOSITORY": repository})
        finally:
            buildah("rmi", image, check=False)
        inspected = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{image}"],
                                   capture_output=True, text=True)

    assert completed.returncode != 0
    # buildah's own progress goes to stderr before the task's one error line.
    assert error_lines(completed)[-1].startswith("error: buildah push failed")
    assert "405" in error_lines(completed)[-1]
    assert sum(line.startswith("error:") for line in error_lines(completed)) == 1
    assert not result_file.exists()
    assert inspected.returncode != 0


def test_build_host_unknown_key_rejected(app_repo, ssh_server, tmp_path):
    empty_known_hosts = tmp_path / "known_hosts"
    empty_known_hosts.write_text("")

    completed = run_inv(
        ["build", "--engine", "buildah", "--host", ssh_server["host"]],
        cwd=app_repo,
        env={"INVOKE_BUILD_KNOWN_HOSTS": str(empty_known_hosts),
             "INVOKE_BUILD_IDENTITY_FILE": str(ssh_server["identity_file"])},
    )

    assert completed.returncode == 1
    assert len(error_lines(completed)) == 1
    line = error_lines(completed)[0]
    assert f"the host key of root@127.0.0.1:{ssh_server['port']} is not in {empty_known_hosts}" in line
    assert f"ssh-keyscan -p {ssh_server['port']} 127.0.0.1 >> {empty_known_hosts}" in line
    assert empty_known_hosts.read_text() == ""


def test_build_host_unreachable(app_repo, tmp_path):
    port = free_port()

    completed = run_inv(["build", "--engine", "buildah", "--host", f"root@127.0.0.1:{port}"], cwd=app_repo,
                        env={"INVOKE_BUILD_KNOWN_HOSTS": str(tmp_path / "none")})

    assert completed.returncode == 1
    assert len(error_lines(completed)) == 1
    assert error_lines(completed)[0].startswith(f"error: cannot connect to build host root@127.0.0.1:{port}")


def test_build_host_invalid_text(app_repo):
    completed = run_inv(["build", "--host", "root@host:port"], cwd=app_repo)

    assert completed.returncode == 1
    assert error_lines(completed) == [
        "error: invalid build host 'root@host:port'; write it as user@host or user@host:port"
    ]


def test_run_with_buildah_explains_limit(app_repo):
    require_programs("buildah")

    completed = run_inv(["run", "--engine", "buildah"], cwd=app_repo)

    assert completed.returncode == 1
    assert len(error_lines(completed)) == 1
    assert "buildah cannot run an image as a background service" in error_lines(completed)[0]


def test_login_sends_password_on_stdin(registry, tmp_path, monkeypatch, capfd):
    require_programs("buildah")
    password = "s3cret-registry-password"
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "auth.json"))
    engine = BuildahEngine(Context(), storage_driver="vfs", isolation="chroot")

    engine.login(registry.address, "ci-user", password)

    output = capfd.readouterr()
    assert f"--password-stdin --tls-verify=false {registry.address}" in output.out
    assert password not in output.out
    assert password not in output.err
    assert "Login Succeeded" in output.out


def test_registry_missing_program_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(bin_folder(tmp_path)))

    with pytest.raises(RegistryError) as raised:
        LocalRegistry(tmp_path / "registry").start()

    assert str(raised.value) == (
        "docker-registry is not installed; install Debian's package (apt-get install docker-registry)"
    )


def test_registry_stops_on_exit(tmp_path):
    require_programs("docker-registry")
    import socket

    with LocalRegistry(tmp_path / "registry") as running:
        process = running.process
        port = running.port

    assert process.poll() is not None
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_read_push_result_round_trip(tmp_path):
    from pipeline.images import write_push_result

    digest = "sha256:" + "ab" * 32
    path = write_push_result(tmp_path / "reports" / "image.env", repository="127.0.0.1:5000/shop/web",
                             tag="7d41e0c2", digest=digest)

    assert path.read_text() == (
        f"IMAGE_REFERENCE=127.0.0.1:5000/shop/web:7d41e0c2\nIMAGE_TAG=7d41e0c2\nIMAGE_DIGEST={digest}\n"
    )
    assert read_push_result(path)["IMAGE_DIGEST"] == digest
