"""Credentials for the manifests repository: SSH through a real sshd, HTTP(S) through git http-backend."""

import base64
import os
import shlex
import subprocess
import threading
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import git as gitpython
import pytest

from pipeline.credentials import CredentialsError, git_access
from pipeline.gitops import BumpError, Credentials, PushRejectedError, _Context, _push, _refresh, bump_manifests
from pipeline.reference import parse_image_reference

from .conftest import DEPLOYMENT, git, image, require_program

# Stands in for ssh: records its arguments, then fails as an unreachable host does.
FAKE_SSH = """\
#!/bin/sh
echo "fake-ssh $*" >> "{log}"
echo "ssh: connect to host gitlab.example.com port 22: Network is unreachable" >&2
exit 255
"""
SCP_LIKE_URL = "git@gitlab.example.com:platform/deploy-manifests.git"


def bump(url, app_repo, tag, credentials, **options):
    settings = dict(
        url=url,
        target_branch="main",
        manifests_path="apps",
        image=parse_image_reference(image(tag)),
        app_repo=app_repo.path,
        credentials_=credentials,
        output=lambda line: None,
    )
    settings.update(options)
    return bump_manifests(**settings)


# --- SSH with a real sshd ----------------------------------------------------------------


def test_ssh_bump_with_key_file(ssh_server, remote, app_repo):
    credentials = Credentials(ssh_key=str(ssh_server.deploy_key), known_hosts=str(ssh_server.known_hosts))

    result = bump(ssh_server.url(remote.path), app_repo, app_repo.tag(6), credentials)

    assert result.status == "changed"
    assert remote.rev(f"argocd/{app_repo.tag(6)}") == result.commit
    assert remote.show(result.branch) == DEPLOYMENT.format(image=image(app_repo.tag(6)))


def test_ssh_bump_with_key_content(ssh_server, remote, app_repo):
    credentials = Credentials(ssh_key=ssh_server.deploy_key.read_text(),
                              known_hosts=ssh_server.known_hosts.read_text())

    result = bump(ssh_server.url(remote.path), app_repo, app_repo.tag(7), credentials, mode="direct")

    assert result.status == "changed"
    assert remote.rev("main") == result.commit


def test_ssh_wrong_host_key_fails(ssh_server, remote, app_repo):
    credentials = Credentials(ssh_key=str(ssh_server.deploy_key), known_hosts=str(ssh_server.wrong_known_hosts))

    with pytest.raises(BumpError) as raised:
        bump(ssh_server.url(remote.path), app_repo, app_repo.tag(6), credentials)

    message = str(raised.value)
    assert f"host key verification failed for [127.0.0.1]:{ssh_server.port}" in message
    assert "differs from the known_hosts entry" in message
    assert remote.push_log() == []


def test_ssh_missing_known_hosts_entry_fails(ssh_server, remote, app_repo, tmp_path):
    other_hosts = tmp_path / "known_hosts"
    other_hosts.write_text(ssh_server.known_hosts.read_text().replace("[127.0.0.1]", "[gitlab.example.com]"))
    credentials = Credentials(ssh_key=str(ssh_server.deploy_key), known_hosts=str(other_hosts))

    with pytest.raises(CredentialsError) as raised:
        bump(ssh_server.url(remote.path), app_repo, app_repo.tag(6), credentials)

    assert str(raised.value) == (
        f"the known_hosts file has no entry for [127.0.0.1]:{ssh_server.port}; run "
        f"`ssh-keyscan -p {ssh_server.port} 127.0.0.1` once, check the fingerprint, and add the output to "
        "MANIFESTS_KNOWN_HOSTS (a file-type variable in GitLab)"
    )


def test_ssh_without_known_hosts_fails(ssh_server, remote, app_repo):
    credentials = Credentials(ssh_key=str(ssh_server.deploy_key))

    with pytest.raises(CredentialsError) as raised:
        bump(ssh_server.url(remote.path), app_repo, app_repo.tag(6), credentials)

    assert str(raised.value).startswith(f"no known_hosts for the SSH host [127.0.0.1]:{ssh_server.port}; run")


def test_key_content_is_private_and_deleted(tmp_path):
    key_text = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n"
    known_hosts = "gitlab.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEIQczXkVx9q\n"

    with git_access(SCP_LIKE_URL, ssh_key=key_text, known_hosts=known_hosts) as access:
        command = shlex.split(access.env["GIT_SSH_COMMAND"])
        key_file = Path(command[command.index("-i") + 1])
        mode = key_file.stat().st_mode & 0o777
        content = key_file.read_text()

    assert mode == 0o600
    assert content == key_text
    assert not key_file.exists()
    assert command[command.index("-i"):] == [
        "-i", str(key_file), "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={key_file.parent / 'known_hosts'}", "-o", "StrictHostKeyChecking=yes",
    ]


# --- the configured ssh command reaches clone, fetch and push ---------------------------------


@pytest.fixture
def fake_ssh(tmp_path):
    """A stand-in ssh program, a deploy key file and a known_hosts entry for gitlab.example.com."""
    require_program("ssh-keygen")
    log = tmp_path / "ssh-calls.log"
    program = tmp_path / "fake-ssh.sh"
    program.write_text(FAKE_SSH.format(log=log))
    program.chmod(0o755)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "deploy_key")], check=True)
    public = (tmp_path / "deploy_key.pub").read_text().split()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"gitlab.example.com {public[0]} {public[1]}\n")
    return program, log, tmp_path / "deploy_key", known_hosts


def assert_every_call_used_key(log: Path, key: Path, calls_before: int) -> None:
    lines = log.read_text().splitlines()
    assert len(lines) > calls_before
    for line in lines:
        assert f"-i {key} -o IdentitiesOnly=yes" in line


def test_clone_uses_ssh_command(fake_ssh, app_repo):
    program, log, key, known_hosts = fake_ssh
    before = dict(os.environ)
    credentials = Credentials(ssh_key=str(key), known_hosts=str(known_hosts), ssh_program=str(program))

    with pytest.raises(BumpError) as raised:
        bump(SCP_LIKE_URL, app_repo, app_repo.tag(6), credentials)

    assert "Network is unreachable" in str(raised.value)
    assert_every_call_used_key(log, key, 0)
    assert dict(os.environ) == before


@pytest.fixture
def ssh_clone(tmp_path, remote, fake_ssh):
    """A clone of the manifests repository whose origin is an SSH URL, with the fake ssh configured."""
    program, log, key, known_hosts = fake_ssh
    clone = tmp_path / "clone"
    git("clone", "--quiet", remote.url, str(clone))
    git("remote", "set-url", "origin", SCP_LIKE_URL, cwd=clone)
    (clone / "README.md").write_text("change\n")
    git("add", "README.md", cwd=clone)
    git("commit", "--quiet", "-m", "Change", cwd=clone)
    with git_access(SCP_LIKE_URL, ssh_key=str(key), known_hosts=str(known_hosts), ssh_program=str(program)) as access:
        repo = gitpython.Repo(clone)
        repo.git.update_environment(**access.env)
        yield _Context(repo=repo, access=access, url=SCP_LIKE_URL, target_branch="main", output=lambda line: None)


def test_fetch_uses_ssh_command(ssh_clone, fake_ssh):
    _, log, key, _ = fake_ssh
    before = dict(os.environ)

    with pytest.raises(BumpError) as raised:
        _refresh(ssh_clone)

    assert "Network is unreachable" in str(raised.value)
    assert_every_call_used_key(log, key, 0)
    assert dict(os.environ) == before


def test_push_uses_ssh_command(ssh_clone, fake_ssh):
    _, log, key, _ = fake_ssh
    before = dict(os.environ)

    with pytest.raises(PushRejectedError) as raised:
        _push(ssh_clone, ["--porcelain", "origin", "HEAD:refs/heads/main"], "main")

    assert "Network is unreachable" in str(raised.value)
    assert_every_call_used_key(log, key, 0)
    assert dict(os.environ) == before


# --- HTTP with a token, through git http-backend ----------------------------------------------

TOKEN = "glpat-Qm9Ydg0kT3NlY3JldA"


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_remote(remote):
    """Serve the manifests repository over smart HTTP on 127.0.0.1, accepting only oauth2:TOKEN."""
    require_program("git")
    expected = "Basic " + base64.b64encode(f"oauth2:{TOKEN}".encode()).decode()
    requests = []

    def application(environ, start_response):
        requests.append(environ.get("HTTP_AUTHORIZATION", ""))
        if environ.get("HTTP_AUTHORIZATION") != expected:
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="manifests"')])
            return [b""]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        cgi_env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(remote.path.parent),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REMOTE_USER": "oauth2",
            "REMOTE_ADDR": "127.0.0.1",
            "PATH_INFO": environ["PATH_INFO"],
            "QUERY_STRING": environ.get("QUERY_STRING", ""),
            "REQUEST_METHOD": environ["REQUEST_METHOD"],
            "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
            "CONTENT_LENGTH": str(length),
            "GIT_PROTOCOL": environ.get("HTTP_GIT_PROTOCOL", ""),
            "HTTP_CONTENT_ENCODING": environ.get("HTTP_CONTENT_ENCODING", ""),
        }
        completed = subprocess.run(["git", "http-backend"], input=body, env=cgi_env, capture_output=True,
                                   timeout=60, check=False)
        head, _, payload = completed.stdout.partition(b"\r\n\r\n")
        headers = [tuple(part.strip() for part in line.split(":", 1)) for line in head.decode().split("\r\n") if line]
        status = next((value for name, value in headers if name.lower() == "status"), "200 OK")
        start_response(status, [(name, value) for name, value in headers if name.lower() != "status"])
        return [payload]

    server = make_server("127.0.0.1", 0, application, handler_class=_QuietHandler)
    server.timeout = 1
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/{remote.path.name}", requests
    finally:
        server.shutdown()
        server.server_close()


def test_http_bump_with_token(http_remote, remote, app_repo, tmp_path):
    url, requests = http_remote
    lines = []
    seen = {}

    def record(line: str) -> None:
        lines.append(line)
        if line.startswith("$ git push"):
            [clone] = list((tmp_path / "temp").iterdir())
            seen["config"] = (clone / "manifests" / ".git" / "config").read_text()

    (tmp_path / "temp").mkdir()
    result = bump(url, app_repo, app_repo.tag(6), Credentials(token=TOKEN), output=record,
                  temp_root=str(tmp_path / "temp"))

    assert result.status == "changed"
    assert remote.rev(f"argocd/{app_repo.tag(6)}") == result.commit
    assert TOKEN not in seen["config"]
    assert f"url = {url}" in seen["config"]
    assert not any(TOKEN in line for line in lines)
    assert any(request.startswith("Basic ") for request in requests)


def test_http_token_in_url_is_moved_out(http_remote, remote, app_repo, tmp_path):
    url, _ = http_remote
    url_with_token = url.replace("http://", f"http://oauth2:{TOKEN}@")
    lines = []

    result = bump(url_with_token, app_repo, app_repo.tag(6), Credentials(), output=lines.append)

    assert result.status == "changed"
    assert not any(TOKEN in line for line in lines)


def test_http_wrong_token_fails_without_leaking(http_remote, remote, app_repo):
    url, _ = http_remote
    wrong = "glpat-WrongWrongWrong42"

    with pytest.raises(BumpError) as raised:
        bump(url, app_repo, app_repo.tag(6), Credentials(token=wrong))

    assert wrong not in str(raised.value)
    assert str(raised.value).startswith(f"cloning {url} (branch main) failed:")
    assert "Authentication failed" in str(raised.value)


def test_readable_key_file_is_copied_private(tmp_path):
    key_file = tmp_path / "deploy_key"
    key_file.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n")
    key_file.chmod(0o644)
    known_hosts = "gitlab.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEIQczXkVx9q\n"

    with git_access(SCP_LIKE_URL, ssh_key=str(key_file), known_hosts=known_hosts) as access:
        command = shlex.split(access.env["GIT_SSH_COMMAND"])
        used = Path(command[command.index("-i") + 1])
        mode = used.stat().st_mode & 0o777
        content = used.read_text()

    assert used != key_file
    assert mode == 0o600
    assert content == key_file.read_text()
    assert not used.exists()


def test_missing_key_file_names_the_variable(tmp_path):
    with pytest.raises(CredentialsError) as raised:
        with git_access(SCP_LIKE_URL, ssh_key=str(tmp_path / "nowhere"), known_hosts="x ssh-ed25519 AAAA"):
            pass

    assert str(raised.value) == (
        f"manifests.ssh_key or MANIFESTS_SSH_PRIVATE_KEY: file not found: {tmp_path / 'nowhere'}; "
        "give an existing file or its content"
    )
