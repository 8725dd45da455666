"""Give git the credentials for the manifests repository, per call and never through os.environ.

Two kinds are supported:

- SSH with a deploy key. The key and the known_hosts file are each given as a
  path (the value of a GitLab file-type variable is such a path) or as
  content, which is written with mode 0600 into a temporary folder that is
  deleted afterwards.
  Git gets them through GIT_SSH_COMMAND with StrictHostKeyChecking=yes, so an
  unknown or changed host key fails the call.
- HTTPS with a project access token. Git reads it through GIT_ASKPASS, a
  small script that prints an environment variable, so the token is never
  written into a URL, a file or the clone's .git/config.

`git_access` returns the environment to pass to `Repo.clone_from(env=...)`
and then to `repo.git.update_environment(...)`, so clone, fetch and push all
use the same credentials.
"""

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pipeline.errors import PipelineError

# Variables that the GIT_ASKPASS script reads from the environment of each git call.
_ASKPASS_USERNAME = "HELLO_PYTHON_GIT_USERNAME"
_ASKPASS_TOKEN = "HELLO_PYTHON_GIT_TOKEN"

# Username GitLab accepts with a project access token or a deploy token's secret.
DEFAULT_TOKEN_USERNAME = "oauth2"

_ASKPASS_SCRIPT = f"""#!/bin/sh
case "$1" in
  Username*) printf '%s\\n' "${_ASKPASS_USERNAME}" ;;
  *) printf '%s\\n' "${_ASKPASS_TOKEN}" ;;
esac
"""

# scp-like SSH address: [user@]host:path, where host has no slash.
_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/]+)@)?(?P<host>[^:/]+):(?!//)(?P<path>.+)$")


class CredentialsError(PipelineError):
    """The deploy key, known_hosts file or access token for the manifests repository is unusable."""


@dataclass
class GitAccess:
    """Environment for git calls on the manifests repository, and the secrets to mask in output."""

    url: str
    env: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    ssh_host: str | None = None
    known_hosts_file: str | None = None


def is_ssh_url(url: str) -> bool:
    """Return True for ssh:// URLs and scp-like addresses such as git@gitlab.com:group/repo.git."""
    if url.startswith(("ssh://", "git+ssh://", "ssh+git://")):
        return True
    if "://" in url or os.path.exists(url):
        return False
    return bool(_SCP_LIKE.match(url))


def ssh_host_pattern(url: str) -> str:
    """Return the host as known_hosts names it: host, or [host]:port for a port other than 22."""
    if "://" in url:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    else:
        match = _SCP_LIKE.match(url)
        host = match["host"] if match else ""
        port = None
    return f"[{host}]:{port}" if port and port != 22 else host


def split_url_credentials(url: str) -> tuple[str, str | None, str | None]:
    """Return the HTTP(S) URL without user information, and the username and password it contained."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return url, None, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=hostport)), username or None, password or None


@contextlib.contextmanager
def git_access(
    url: str,
    *,
    ssh_key: str = "",
    known_hosts: str = "",
    token: str = "",
    token_username: str = DEFAULT_TOKEN_USERNAME,
    ssh_program: str = "ssh",
) -> Iterator[GitAccess]:
    """Yield the GitAccess for url; temporary key, known_hosts and askpass files are deleted on exit.

    ssh_key and known_hosts are each a path to a file or the file's content.
    token is a project access token for an HTTP(S) URL; a password in the URL
    itself is taken as the token and removed from the URL. ssh_program is the
    ssh client that GIT_SSH_COMMAND starts.
    """
    base_env = {"GIT_TERMINAL_PROMPT": "0"}
    with tempfile.TemporaryDirectory(prefix="hello-python-credentials-") as secrets_dir:
        if is_ssh_url(url):
            yield _ssh_access(url, ssh_key, known_hosts, ssh_program, Path(secrets_dir), base_env)
        elif url.startswith(("http://", "https://")):
            yield _https_access(url, token, token_username, Path(secrets_dir), base_env)
        else:
            yield GitAccess(url=url, env=base_env)


def _ssh_access(
    url: str, ssh_key: str, known_hosts: str, ssh_program: str, secrets_dir: Path, base_env: dict
) -> GitAccess:
    host = ssh_host_pattern(url)
    if not ssh_key and not known_hosts:
        # A developer's own ssh setup (agent, ~/.ssh/config, ~/.ssh/known_hosts) applies.
        return GitAccess(url=url, env=base_env, ssh_host=host)

    secrets: list[str] = []
    command = [ssh_program, "-o", "BatchMode=yes"]
    if ssh_key:
        key_file, key_content = _file_or_content(
            ssh_key, secrets_dir / "deploy_key", "manifests.ssh_key or MANIFESTS_SSH_PRIVATE_KEY"
        )
        if key_content is None and key_file.stat().st_mode & 0o077:
            # ssh ignores a private key that others can read, so use a private copy.
            key_content = key_file.read_text()
            key_file, _ = _file_or_content(key_content, secrets_dir / "deploy_key", "")
        if key_content:
            secrets.append(key_content.strip())
        command += ["-i", str(key_file), "-o", "IdentitiesOnly=yes"]

    if not known_hosts:
        raise CredentialsError(
            f"no known_hosts for the SSH host {host}; run `ssh-keyscan {_keyscan_arguments(host)}` once, "
            "check the fingerprint, and put the output into MANIFESTS_KNOWN_HOSTS (a file-type variable in GitLab)"
        )
    known_hosts_file, _ = _file_or_content(
        known_hosts, secrets_dir / "known_hosts", "manifests.known_hosts or MANIFESTS_KNOWN_HOSTS"
    )
    require_known_host(known_hosts_file, host)
    command += ["-o", f"UserKnownHostsFile={known_hosts_file}", "-o", "StrictHostKeyChecking=yes"]

    env = dict(base_env, GIT_SSH_COMMAND=shlex.join(command))
    return GitAccess(url=url, env=env, secrets=secrets, ssh_host=host, known_hosts_file=str(known_hosts_file))


def _https_access(url: str, token: str, username: str, secrets_dir: Path, base_env: dict) -> GitAccess:
    clean_url, url_username, url_password = split_url_credentials(url)
    token = token or url_password or ""
    username = url_username or username
    if not token:
        return GitAccess(url=clean_url, env=base_env)

    askpass = secrets_dir / "askpass.sh"
    askpass.write_text(_ASKPASS_SCRIPT)
    askpass.chmod(0o700)
    env = dict(
        base_env,
        GIT_ASKPASS=str(askpass),
        # An empty credential.helper clears the list, so that a helper configured
        # on the runner cannot supply other credentials before GIT_ASKPASS is asked.
        GIT_CONFIG_COUNT="1",
        GIT_CONFIG_KEY_0="credential.helper",
        GIT_CONFIG_VALUE_0="",
        **{_ASKPASS_USERNAME: username, _ASKPASS_TOKEN: token},
    )
    return GitAccess(url=clean_url, env=env, secrets=[token])


def _file_or_content(value: str, target: Path, setting: str) -> tuple[Path, str | None]:
    """Return (path, None) when value names a file, else write value to target with mode 0600."""
    if "\n" not in value and len(value) < 4096:
        candidate = Path(value).expanduser()
        if candidate.is_file():
            return candidate, None
        if not value.lstrip().startswith(("-----BEGIN", "ssh-", "ecdsa-", "[", "|")) and " " not in value:
            raise CredentialsError(f"{setting}: file not found: {candidate}; give an existing file or its content")
    content = value if value.endswith("\n") else value + "\n"
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(content)
    return target, value


def require_known_host(known_hosts_file: Path, host: str) -> None:
    """Raise CredentialsError unless known_hosts_file has an entry for host (checked with ssh-keygen -F)."""
    ssh_keygen = shutil.which("ssh-keygen")
    if ssh_keygen is None:
        # NOTE: without ssh-keygen the entry is not checked here; ssh itself still rejects an unknown host.
        return
    completed = subprocess.run(
        [ssh_keygen, "-F", host, "-f", str(known_hosts_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise CredentialsError(
            f"the known_hosts file has no entry for {host}; run `ssh-keyscan {_keyscan_arguments(host)}` once, "
            "check the fingerprint, and add the output to MANIFESTS_KNOWN_HOSTS (a file-type variable in GitLab)"
        )


def host_key_error(stderr: str, host: str | None) -> str | None:
    """Return a one-line explanation when ssh rejected the host key, else None."""
    if "Host key verification failed" not in stderr:
        return None
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr or "key for" in stderr and "mismatch" in stderr:
        return (
            f"host key verification failed for {host}: the key the server sent differs from the known_hosts entry; "
            "confirm the server's fingerprint with its administrator, then replace the entry in MANIFESTS_KNOWN_HOSTS"
        )
    return (
        f"host key verification failed for {host}: no matching known_hosts entry; run "
        f"`ssh-keyscan {_keyscan_arguments(host or '')}` once, check the fingerprint, and put the output into "
        "MANIFESTS_KNOWN_HOSTS"
    )


def _keyscan_arguments(host: str) -> str:
    match = re.fullmatch(r"\[(?P<host>[^\]]+)\]:(?P<port>\d+)", host)
    if match:
        return f"-p {match['port']} {match['host']}"
    return host
