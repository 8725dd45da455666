"""Build, run and push images with docker, podman or buildah behind one small interface.

Every engine command goes through `pipeline.shell.run_command`, which echoes
the exact command line before it runs and raises when it exits non-zero. An
engine runs its commands through an invoke Context, so the same engine works
on this machine (`invoke.Context`) and on a remote builder (`fabric.Connection`).
"""

import json
import os
import re
import shlex
from collections.abc import Mapping, Sequence

from invoke import Context
from invoke.exceptions import CommandTimedOut

from pipeline.errors import CommandError
from pipeline.shell import run_command

ENGINE_NAMES = ("docker", "podman", "buildah")
AUTO = "auto"

# Storage driver and isolation that work for root inside an unprivileged
# container (no overlay mounts, no new namespaces), which is how CI runners
# and this project's test machine run buildah and podman.
DEFAULT_STORAGE_DRIVER = "vfs"
DEFAULT_ISOLATION = "chroot"

# Registries served over plain HTTP on this machine. Docker treats 127.0.0.0/8
# as insecure by default; buildah, podman and skopeo need --tls-verify=false.
_LOCAL_REGISTRY = re.compile(r"(localhost|127(\.\d{1,3}){3}|\[::1\])(:\d+)?")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")

# Seconds a probe (`docker version`, `buildah info`) may take before the engine counts as not working.
_PROBE_TIMEOUT = 30


class EngineError(CommandError):
    """A container engine is missing, does not work, or a command it ran failed."""


def registry_host(image: str) -> str:
    """Return the registry host (and port) of an image reference, or "docker.io" when it names none."""
    from pipeline.reference import parse_image_reference

    return parse_image_reference(image).registry or "docker.io"


def is_local_registry(image_or_host: str) -> bool:
    """Tell whether an image reference or registry host points to a plain-HTTP registry on this machine."""
    host = image_or_host if "/" not in image_or_host else registry_host(image_or_host)
    return bool(_LOCAL_REGISTRY.fullmatch(host))


class Engine:
    """One container engine, driven through an invoke Context (local) or a fabric Connection (remote)."""

    name = ""
    # Whether run_service can start a long-running container; buildah cannot.
    runs_services = True

    def __init__(self, c: Context, *, pty: bool = False):
        self.c = c
        self.pty = pty

    # Subclasses put global options (storage driver) after the program name here.
    def command(self, *args: str) -> list[str]:
        return [self.name, *args]

    def execute(self, argv: Sequence[str], *, what: str, stdin_text: str | None = None, hide: bool = False,
                secrets: Sequence[str] = (), check: bool = True):
        """Echo and run an engine command; raise EngineError with the engine's own output when it fails.

        With check=False the failed Result is returned instead, and the caller must check `result.failed`.
        """
        if not check:
            print(f"$ {shlex.join(argv)}", flush=True)
            return self.c.run(shlex.join(argv), warn=True, hide=hide, pty=self.pty, echo=False, in_stream=False)
        try:
            return run_command(self.c, argv, what=what, stdin_text=stdin_text, hide=hide, pty=self.pty,
                               secrets=secrets)
        except CommandError as error:
            raise EngineError(str(error), exit_code=error.exit_code) from None

    def build(self, context_dir: str, image: str, *, dockerfile: str = "Dockerfile", target: str | None = None,
              build_args: Mapping[str, str] | None = None) -> None:
        """Build the Dockerfile in context_dir (optionally up to a target stage) and tag the result as image."""
        argv = self.command(*self.build_verb(), "-f", _join(context_dir, dockerfile), "-t", image)
        if target:
            argv += ["--target", target]
        for key, value in (build_args or {}).items():
            argv += ["--build-arg", f"{key}={value}"]
        argv.append(context_dir)
        self.execute(argv, what=f"{self.name} build")

    def build_verb(self) -> list[str]:
        return ["build"]

    def push(self, image: str) -> str:
        """Push image to its registry and return the pushed manifest digest ("sha256:...")."""
        raise NotImplementedError

    def digest(self, image: str) -> str:
        """Return the manifest digest that image's registry stores for image."""
        argv = ["skopeo", "inspect", "--format", "{{.Digest}}"]
        if is_local_registry(image):
            argv.append("--tls-verify=false")
        argv.append(f"docker://{image}")
        result = self.execute(argv, what="skopeo inspect", hide=True)
        return _parse_digest(result.stdout, f"skopeo inspect of {image}")

    def login(self, registry: str, username: str, password: str) -> None:
        """Log in to registry; the password goes to the engine on stdin, never on the command line."""
        argv = self.command("login", "--username", username, "--password-stdin")
        if is_local_registry(registry) and self.name != "docker":
            argv.append("--tls-verify=false")
        argv.append(registry)
        self.execute(argv, what=f"{self.name} login to {registry}", stdin_text=password, secrets=[password])

    def run_service(self, image: str, *, name: str, port: int, container_port: int,
                    env: Mapping[str, str] | None = None) -> None:
        """Start image in the background as container `name`, publishing container_port on 127.0.0.1:port."""
        argv = self.command("run", "--detach", "--rm", "--name", name,
                            "--publish", f"127.0.0.1:{port}:{container_port}")
        for key, value in (env or {}).items():
            argv += ["--env", f"{key}={value}"]
        argv.append(image)
        self.execute(argv, what=f"{self.name} run")

    def stop_service(self, name: str) -> bool:
        """Stop the container that `run_service` started as `name`; return False when none of that name runs."""
        if not self.container_running(name):
            return False
        self.execute(self.command("stop", name), what=f"{self.name} stop")
        return True

    def container_running(self, name: str) -> bool:
        """Tell whether a container called name exists and is running."""
        argv = self.command("container", "inspect", "--format", "{{.State.Running}}", name)
        result = self.c.run(shlex.join(argv), warn=True, hide=True, in_stream=False)
        return result.ok and result.stdout.strip().splitlines()[-1:] == ["true"]

    def run_once(self, image: str, argv: Sequence[str], *, volumes: Mapping[str, str] | None = None,
                 env: Mapping[str, str] | None = None, check: bool = True):
        """Run argv in a new container from image, wait for it to exit, remove the container, return the Result.

        With check=False a failed command returns its Result instead of raising EngineError.
        """
        command = self.command("run", "--rm")
        for host_path, container_path in (volumes or {}).items():
            command += ["--volume", f"{host_path}:{container_path}"]
        for key, value in (env or {}).items():
            command += ["--env", f"{key}={value}"]
        command += [image, *argv]
        return self.execute(command, what=f"{argv[0]} in {image}", check=check)

    def image_exists(self, image: str) -> bool:
        """Tell whether the engine's local storage contains image."""
        result = self.c.run(shlex.join(self.command("image", "inspect", image)), warn=True, hide=True,
                            in_stream=False)
        return result.ok

    def import_rootfs(self, tar_path: str, image: str, *, env: Mapping[str, str], cmd: Sequence[str]) -> None:
        """Create image from a root file system tarball, with the given environment and default command."""
        argv = self.command("import")
        for key, value in env.items():
            argv += ["--change", f"ENV {key}={value}"]
        argv += ["--change", "CMD " + _json_list(cmd), tar_path, image]
        self.execute(argv, what=f"{self.name} import")

    def image_size(self, image: str) -> int:
        """Return the size of image in bytes as the engine reports it."""
        result = self.execute(self.command("image", "inspect", "--format", "{{.Size}}", image),
                              what=f"{self.name} image inspect", hide=True)
        return int(result.stdout.strip().splitlines()[-1])


class DockerEngine(Engine):
    """The docker CLI talking to a Docker daemon (BuildKit builds)."""

    name = "docker"

    def push(self, image: str) -> str:
        result = self.execute(self.command("push", image), what="docker push")
        # docker push ends with "<tag>: digest: sha256:... size: N".
        match = re.search(r"digest: (sha256:[0-9a-f]{64})", result.stdout)
        if match:
            return match.group(1)
        return self.digest(image)

    def digest(self, image: str) -> str:
        result = self.execute(self.command("image", "inspect", "--format", "{{json .RepoDigests}}", image),
                              what="docker image inspect", hide=True)
        repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
        for entry in re.findall(r'"([^"]+)"', result.stdout):
            name, _, digest = entry.partition("@")
            if name == repository:
                return _parse_digest(digest, f"docker image inspect of {image}")
        raise EngineError(f"docker image inspect shows no digest of {image} in {repository}; push it first")


class _ContainersEngine(Engine):
    """Options shared by podman and buildah, which both use containers/storage."""

    def __init__(self, c: Context, *, pty: bool = False, storage_driver: str = "", isolation: str = ""):
        super().__init__(c, pty=pty)
        self.storage_driver = storage_driver
        self.isolation = isolation

    def command(self, *args: str) -> list[str]:
        argv = [self.name]
        if self.storage_driver:
            argv += ["--storage-driver", self.storage_driver]
        return argv + list(args)

    def build_verb(self) -> list[str]:
        # --layers keeps one cached image per Dockerfile step, as docker does;
        # without it buildah rebuilds every step on every build. --force-rm
        # removes the working container of a failed step too, which with vfs
        # storage is a full copy of the file system.
        verb = ["build", "--layers", "--force-rm"]
        if self.isolation:
            verb.append(f"--isolation={self.isolation}")
        return verb

    def push(self, image: str) -> str:
        digest_file = self.execute(["mktemp"], what="mktemp", hide=True).stdout.strip()
        argv = self.command("push", "--digestfile", digest_file)
        if is_local_registry(image):
            argv.append("--tls-verify=false")
        argv += [image, f"docker://{image}"]
        try:
            self.execute(argv, what=f"{self.name} push")
            text = self.execute(["cat", digest_file], what="cat", hide=True).stdout
        finally:
            self.c.run(shlex.join(["rm", "-f", digest_file]), warn=True, hide=True, in_stream=False)
        return _parse_digest(text, f"the digest file of {self.name} push {image}")


class PodmanEngine(_ContainersEngine):
    """Podman: daemonless, Docker-compatible commands."""

    name = "podman"


class BuildahEngine(_ContainersEngine):
    """Buildah: builds and pushes images, and runs one-off commands in them (no long-running services)."""

    name = "buildah"
    runs_services = False

    def run_service(self, image: str, *, name: str, port: int, container_port: int,
                    env: Mapping[str, str] | None = None) -> None:
        raise EngineError(
            "buildah cannot run an image as a background service; set build.engine to podman or docker "
            "(or pass --engine) to use inv run"
        )

    def stop_service(self, name: str) -> bool:
        raise EngineError("buildah cannot run or stop services; set build.engine to podman or docker to use inv run")

    def run_once(self, image: str, argv: Sequence[str], *, volumes: Mapping[str, str] | None = None,
                 env: Mapping[str, str] | None = None, check: bool = True):
        container = self.execute(self.command("from", "--pull-never", image), what="buildah from",
                                 hide=True).stdout.strip().splitlines()[-1]
        try:
            command = self.command("run")
            if self.isolation:
                command.append(f"--isolation={self.isolation}")
            for host_path, container_path in (volumes or {}).items():
                command += ["--volume", f"{host_path}:{container_path}"]
            for key, value in (env or {}).items():
                command += ["--env", f"{key}={value}"]
            command += [container, "--", *argv]
            return self.execute(command, what=f"{argv[0]} in {image}", check=check)
        finally:
            self.c.run(shlex.join(self.command("rm", container)), warn=True, hide=True, in_stream=False)

    def image_exists(self, image: str) -> bool:
        result = self.c.run(shlex.join(self.command("inspect", "--type", "image", image)), warn=True, hide=True,
                            in_stream=False)
        return result.ok

    def import_rootfs(self, tar_path: str, image: str, *, env: Mapping[str, str], cmd: Sequence[str]) -> None:
        container = self.execute(self.command("from", "scratch"), what="buildah from",
                                 hide=True).stdout.strip().splitlines()[-1]
        try:
            self.execute(self.command("add", container, tar_path, "/"), what="buildah add")
            config = self.command("config")
            for key, value in env.items():
                config += ["--env", f"{key}={value}"]
            config += ["--cmd", _json_list(cmd), container]
            self.execute(config, what="buildah config")
            self.execute(self.command("commit", container, image), what="buildah commit")
        finally:
            self.c.run(shlex.join(self.command("rm", container)), warn=True, hide=True, in_stream=False)

    def image_size(self, image: str) -> int:
        # buildah has no size field in bytes, so this sums the uncompressed layer sizes of the stored manifest.
        result = self.execute(self.command("inspect", "--type", "image", image), what="buildah inspect", hide=True)
        manifest = json.loads(json.loads(result.stdout)["Manifest"])
        return sum(int(layer["size"]) for layer in manifest["layers"])


ENGINE_CLASSES = {"docker": DockerEngine, "podman": PodmanEngine, "buildah": BuildahEngine}


def select_engine(c: Context, name: str = AUTO, *, storage_driver: str | None = None, isolation: str | None = None,
                  pty: bool = False, environ: Mapping[str, str] | None = None) -> Engine:
    """Return the engine called name, or with "auto" the first of docker, podman, buildah that works.

    A program counts as working when its probe succeeds: `docker version`
    needs a reachable daemon, and `podman info`/`buildah info` need usable
    storage. Storage driver and isolation come from the arguments, else from
    STORAGE_DRIVER and BUILDAH_ISOLATION, else vfs and chroot.
    """
    environ = os.environ if environ is None else environ
    name = (name or AUTO).strip().lower()
    if name != AUTO and name not in ENGINE_CLASSES:
        raise EngineError(f"unknown container engine {name!r}; set build.engine to auto, docker, podman or buildah")

    driver = storage_driver or environ.get("STORAGE_DRIVER", "").strip() or DEFAULT_STORAGE_DRIVER
    isolation = isolation or environ.get("BUILDAH_ISOLATION", "").strip() or DEFAULT_ISOLATION

    candidates = ENGINE_NAMES if name == AUTO else (name,)
    reasons = []
    for candidate in candidates:
        if candidate == "docker":
            engine = DockerEngine(c, pty=pty)
        else:
            engine = ENGINE_CLASSES[candidate](c, pty=pty, storage_driver=driver, isolation=isolation)
        reason = probe(engine)
        if not reason:
            return engine
        reasons.append(f"{candidate} {reason}")

    if name == AUTO:
        raise EngineError(
            f"no working container engine ({'; '.join(reasons)}); install buildah or podman "
            "(apt-get install buildah), or start a Docker daemon"
        )
    raise EngineError(f"container engine {reasons[0]}; install or fix it, or set build.engine to another engine")


def probe(engine: Engine) -> str:
    """Return why engine cannot be used here, or "" when it works."""
    found = engine.c.run(f"command -v {engine.name}", warn=True, hide=True, in_stream=False)
    if not found.ok:
        return "is not installed"
    if engine.name == "docker":
        argv = ["docker", "version", "--format", "{{.Server.Version}}"]
    else:
        argv = engine.command("info")
    try:
        result = engine.c.run(shlex.join(argv), warn=True, hide=True, in_stream=False, timeout=_PROBE_TIMEOUT)
    except CommandTimedOut:
        return f"did not answer `{shlex.join(argv)}` within {_PROBE_TIMEOUT} s"
    if result.ok:
        return ""
    lines = [line.strip() for line in f"{result.stdout}\n{result.stderr}".splitlines() if line.strip()]
    detail = lines[-1] if lines else f"exit status {result.exited}"
    if engine.name == "docker":
        return f"has no reachable daemon ({detail})"
    return f"does not work ({detail})"


def _join(directory: str, name: str) -> str:
    return name if name.startswith("/") else f"{directory.rstrip('/')}/{name}"


def _json_list(items: Sequence[str]) -> str:
    return json.dumps(list(items))


def _parse_digest(text: str, source: str) -> str:
    match = _DIGEST.search(text or "")
    if not match:
        raise EngineError(f"{source} contains no sha256 digest: {text.strip()[:80]!r}")
    return match.group(0)
