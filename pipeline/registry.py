"""A local image registry on 127.0.0.1: Debian's `docker-registry` (CNCF Distribution 2.x).

It replaces the GitLab container registry in tests and in the demo. It
serves plain HTTP, so buildah, podman and skopeo need --tls-verify=false for it.
"""

import ctypes
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from pipeline.errors import PipelineError

REGISTRY_PROGRAM = "docker-registry"
# Seconds to wait for /v2/ to respond after the start, and for the process to exit after SIGTERM.
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

_PR_SET_PDEATHSIG = 1


class RegistryError(PipelineError):
    """The local registry could not be started or stopped."""


class LocalRegistry:
    """Context manager that runs `docker-registry serve CONFIG` on 127.0.0.1, on `port` or a free one.

    `address` is "127.0.0.1:PORT" once the registry responds to `GET /v2/`. The
    process is stopped on exit from the `with` block, and the kernel sends it
    SIGTERM if the Python process that started it dies first.
    With read_only=True the registry serves pulls and rejects every push.
    """

    def __init__(self, storage_dir: str | Path, *, read_only: bool = False, log_file: str | Path | None = None,
                 port: int = 0):
        self.storage_dir = Path(storage_dir).resolve()
        self.read_only = read_only
        self.log_file = Path(log_file) if log_file else self.storage_dir / "registry.log"
        # 0 picks a free port at start.
        self.requested_port = port
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> "LocalRegistry":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        """Write the configuration, start the registry, and wait until /v2/ responds."""
        program = shutil.which(REGISTRY_PROGRAM)
        if not program:
            raise RegistryError(
                f"{REGISTRY_PROGRAM} is not installed; install Debian's package (apt-get install docker-registry)"
            )
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.requested_port or free_port()
        config_path = self.storage_dir / "config.yml"
        config_path.write_text(self.config_text())

        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                [program, "serve", str(config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        self.wait_until_ready()

    def config_text(self) -> str:
        read_only = "true" if self.read_only else "false"
        data_dir = self.storage_dir / "data"
        return (
            "version: 0.1\n"
            "log:\n"
            "  level: warn\n"
            "storage:\n"
            "  filesystem:\n"
            f"    rootdirectory: {data_dir}\n"
            "  delete:\n"
            "    enabled: true\n"
            "  maintenance:\n"
            "    uploadpurging:\n"
            "      enabled: false\n"
            "    readonly:\n"
            f"      enabled: {read_only}\n"
            "http:\n"
            f"  addr: 127.0.0.1:{self.port}\n"
        )

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        url = f"http://{self.address}/v2/"
        while time.monotonic() < deadline:
            status = self.process.poll()
            if status is not None:
                self.process = None
                raise RegistryError(
                    f"{REGISTRY_PROGRAM} exited at start with status {status}; read {self.log_file} for the reason"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RegistryError(f"{REGISTRY_PROGRAM} did not respond at {url} within {START_TIMEOUT:g} s; read {self.log_file}")

    def stop(self) -> None:
        """Stop the registry: SIGTERM, then SIGKILL after STOP_TIMEOUT seconds."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)


def port_is_free(port: int) -> bool:
    """Return True when a TCP server could listen on 127.0.0.1:port right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As Go's listeners do, so that connections of a stopped server in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Ask Linux to send SIGTERM to this child when its parent exits (prctl PR_SET_PDEATHSIG)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except OSError:
        # Not Linux or no glibc: the `with` block still stops the registry.
        pass
