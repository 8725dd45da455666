"""Run the container engine on another machine over SSH with fabric.

The build context sent to the remote builder is the committed tree of one
commit, made with `git archive`, so uncommitted or untracked files in the
working tree never reach a remote build. The remote host's key must already be
in known_hosts: unknown keys are rejected (paramiko's RejectPolicy), never
added silently.
"""

import contextlib
import os
import re
import shlex
import socket
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError

DEFAULT_SSH_PORT = 22
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
# Seconds to wait for the TCP connection and the SSH handshake.
DEFAULT_CONNECT_TIMEOUT = 15

_HOST = re.compile(r"(?:(?P<user>[^@\s:]+)@)?(?P<host>\[[0-9a-fA-F:]+\]|[^@\s:\[\]]+)(?::(?P<port>\d{1,5}))?")


class RemoteError(PipelineError):
    """The remote builder cannot be reached, is not trusted, or a transfer to or from it failed."""


@dataclass(frozen=True)
class BuildHost:
    """A remote builder given as user@host[:port]."""

    user: str | None
    host: str
    port: int = DEFAULT_SSH_PORT

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        return f"{user}{self.host}:{self.port}"


def parse_build_host(text: str) -> BuildHost:
    """Parse "user@host[:port]" (IPv6 hosts in brackets); raise RemoteError on anything else."""
    match = _HOST.fullmatch((text or "").strip())
    port = int(match["port"]) if match and match["port"] else DEFAULT_SSH_PORT
    if not match or not 0 < port < 65536:
        raise RemoteError(f"invalid build host {text!r}; write it as user@host or user@host:port")
    return BuildHost(user=match["user"], host=match["host"].strip("[]"), port=port)


@contextlib.contextmanager
def connect(build_host: str | BuildHost, *, known_hosts: str = DEFAULT_KNOWN_HOSTS, identity_file: str = "",
            connect_timeout: float = DEFAULT_CONNECT_TIMEOUT):
    """Open a fabric Connection to the build host, checking its key against known_hosts, and close it on exit."""
    import fabric
    import paramiko

    host = parse_build_host(build_host) if isinstance(build_host, str) else build_host
    connect_kwargs = {"look_for_keys": not identity_file, "allow_agent": not identity_file}
    if identity_file:
        connect_kwargs["key_filename"] = os.path.expanduser(identity_file)

    connection = fabric.Connection(host.host, user=host.user, port=host.port, connect_timeout=connect_timeout,
                                   connect_kwargs=connect_kwargs)
    # Fabric adds unknown host keys by default (AutoAddPolicy); a build host must be known beforehand.
    connection.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    known_hosts_path = os.path.expanduser(known_hosts)
    try:
        connection.client.load_host_keys(known_hosts_path)
    except FileNotFoundError:
        pass
    except (OSError, paramiko.SSHException) as error:
        raise RemoteError(f"cannot read known_hosts file {known_hosts_path}: {error}; fix or remove it") from None

    try:
        connection.open()
    except paramiko.BadHostKeyException:
        raise RemoteError(
            f"the host key of {host} differs from the one in {known_hosts_path}; if the host was reinstalled, "
            f"remove the old entry with ssh-keygen -R '{_known_hosts_name(host)}' and add the new one"
        ) from None
    except paramiko.SSHException as error:
        if "not found in known_hosts" in str(error):
            raise RemoteError(
                f"the host key of {host} is not in {known_hosts_path}; check its fingerprint, then add it with "
                f"ssh-keyscan -p {host.port} {host.host} >> {known_hosts_path}"
            ) from None
        raise RemoteError(f"SSH connection to {host} failed: {error}; check the user, key and sshd") from None
    except (socket.timeout, TimeoutError):
        raise RemoteError(
            f"SSH connection to {host} timed out after {connect_timeout:g} s; check the host name, port and firewall"
        ) from None
    except (OSError, paramiko.ssh_exception.NoValidConnectionsError) as error:
        raise RemoteError(f"cannot connect to build host {host}: {_reason(error)}; check the host name and port") \
            from None

    try:
        yield connection
    finally:
        connection.close()


def upload_committed_tree(connection, repo_dir: str | Path = ".", commit: str = "HEAD") -> str:
    """Copy the tree of commit (made with `git archive`) to a new folder on the remote host; return its path."""
    repo_dir = Path(repo_dir)
    with tempfile.TemporaryDirectory(prefix="hello-python-context-") as local_dir:
        archive = Path(local_dir) / "context.tar"
        argv = ["git", "-C", str(repo_dir), "archive", "--format=tar", f"--output={archive}", commit]
        print(f"$ {shlex.join(argv)}", flush=True)
        completed = subprocess.run(argv, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            reason = (completed.stderr or completed.stdout).strip().splitlines()
            raise RemoteError(
                f"git archive of {commit} in {repo_dir} failed: {reason[-1] if reason else completed.returncode}; "
                "commit first, or check the repository"
            )

        remote_dir = run_remote(connection, ["mktemp", "-d", "/tmp/hello-python-context.XXXXXX"]).strip()
        remote_archive = f"{remote_dir}.tar"
        print(f"copying {commit} ({archive.stat().st_size} bytes) to {connection.host}:{remote_dir}", flush=True)
        try:
            connection.put(str(archive), remote=remote_archive)
        except (OSError, IOError) as error:
            raise RemoteError(f"copying the build context to {connection.host}:{remote_archive} failed: {error}") \
                from None
    run_remote(connection, ["tar", "-x", "-f", remote_archive, "-C", remote_dir])
    run_remote(connection, ["rm", "-f", remote_archive])
    return remote_dir


def download_folder(connection, remote_dir: str, local_dir: str | Path) -> None:
    """Copy the files under remote_dir on the remote host into local_dir (created when missing)."""
    local_dir = Path(local_dir)
    local_dir.mkdir(parents=True, exist_ok=True)
    remote_archive = f"{remote_dir.rstrip('/')}.tar"
    run_remote(connection, ["tar", "-c", "-f", remote_archive, "-C", remote_dir, "."])
    with tempfile.TemporaryDirectory(prefix="hello-python-download-") as temporary:
        archive = Path(temporary) / "folder.tar"
        try:
            connection.get(remote_archive, local=str(archive))
        except (OSError, IOError) as error:
            raise RemoteError(f"copying {connection.host}:{remote_archive} failed: {error}") from None
        finally:
            run_remote(connection, ["rm", "-f", remote_archive], check=False)
        with tarfile.open(archive) as tar:
            tar.extractall(local_dir, filter="data")


def remove_remote(connection, path: str) -> None:
    """Delete path on the remote host; a failure is printed, not raised, because it only leaves a temp folder."""
    result = connection.run(shlex.join(["rm", "-rf", path]), warn=True, hide=True, in_stream=False)
    if result.failed:
        print(f"warning: could not remove {connection.host}:{path}: {result.stderr.strip()}")


def run_remote(connection, argv: list[str], *, check: bool = True) -> str:
    """Run argv on the remote host without echo and return its stdout; raise RemoteError when it fails."""
    result = connection.run(shlex.join(argv), warn=True, hide=True, in_stream=False)
    if check and result.failed:
        lines = [line for line in f"{result.stdout}\n{result.stderr}".splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"exit status {result.exited}"
        raise RemoteError(f"{argv[0]} on {connection.host} failed: {reason}")
    return result.stdout


def _known_hosts_name(host: BuildHost) -> str:
    return host.host if host.port == DEFAULT_SSH_PORT else f"[{host.host}]:{host.port}"


def _reason(error: Exception) -> str:
    errors = getattr(error, "errors", None)
    if errors:
        error = next(iter(errors.values()))
    return getattr(error, "strerror", None) or str(error)
