"""Steps behind `inv build`, `inv push`, `inv run` and `inv test --in-image`.

Each step takes an engine from `pipeline.engines`. The engine runs its
commands on this machine, or on a remote builder when `build_session` opened
an SSH connection, and the steps work the same either way.
"""

import contextlib
import datetime
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.engines import Engine, select_engine
from pipeline.errors import PipelineError
from pipeline.revision import DIRTY_SUFFIX

TEST_STAGE = "test"
RUNTIME_STAGE = "runtime"
CONTAINER_PORT = 8080
# The default of the Dockerfile's ARG BASE_IMAGE, used when build.base_image is empty.
DEFAULT_BASE_IMAGE = "python:3.12-slim"
# Reports folder inside the test-stage container, a bind mount of a folder on the engine's host.
CONTAINER_REPORTS_DIR = "/reports"
REPORT_FILES = ("junit.xml", "coverage.xml", "coverage-html")


class ImageError(PipelineError):
    """An image cannot be built, tested, pushed or run as requested."""


@dataclass
class BuildSession:
    """An engine and the build context folder it reads, on this machine or on a remote builder."""

    engine: Engine
    context_dir: str
    connection: object | None = None

    @property
    def remote(self) -> bool:
        return self.connection is not None


@contextlib.contextmanager
def build_session(c, *, engine_name: str, storage_driver: str = "", isolation: str = "", host: str = "",
                  known_hosts: str = "", identity_file: str = "", connect_timeout: float = 15,
                  repo_dir: str | Path = "."):
    """Yield a BuildSession: the working tree and a local engine, or HEAD's tree on a remote builder.

    With host set, the committed tree of HEAD is copied to a temporary folder
    on that host (removed on exit) and the engine is chosen there.
    """
    if not host:
        engine = select_engine(c, engine_name, storage_driver=storage_driver, isolation=isolation)
        print(f"engine: {engine.name}")
        yield BuildSession(engine=engine, context_dir=str(Path(repo_dir).resolve()))
        return

    from pipeline import remote

    with remote.connect(host, known_hosts=known_hosts or remote.DEFAULT_KNOWN_HOSTS, identity_file=identity_file,
                        connect_timeout=connect_timeout) as connection:
        engine = select_engine(connection, engine_name, storage_driver=storage_driver, isolation=isolation)
        print(f"engine: {engine.name} on {host}")
        context_dir = remote.upload_committed_tree(connection, repo_dir)
        try:
            yield BuildSession(engine=engine, context_dir=context_dir, connection=connection)
        finally:
            remote.remove_remote(connection, context_dir)


def build_args(repo_dir: str | Path = ".", *, base_image: str = "", environ: Mapping[str, str] | None = None,
               now: datetime.datetime | None = None) -> dict[str, str]:
    """Return the Dockerfile's build arguments: commit, source URL, creation time and, if set, the base image."""
    from pipeline.revision import source_commit

    environ = os.environ if environ is None else environ
    now = now or datetime.datetime.now(datetime.timezone.utc)
    args = {
        "GIT_COMMIT": source_commit(repo_dir, environ),
        "SOURCE_URL": environ.get("CI_PROJECT_URL", "").strip(),
        "CREATED": now.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if base_image:
        args["BASE_IMAGE"] = base_image
    return args


def build_image(session: BuildSession, image: str, *, target: str, build_args: Mapping[str, str]) -> None:
    """Build one stage of the Dockerfile as image; a failed pull of the base image names the options that avoid it."""
    from pipeline.engines import EngineError, registry_host

    base_image = build_args.get("BASE_IMAGE") or DEFAULT_BASE_IMAGE
    try:
        session.engine.build(session.context_dir, image, target=target, build_args=build_args)
    except EngineError as error:
        # An image named localhost/... (such as the stand-in base) comes from local storage, never from a registry.
        if registry_host(base_image) == "localhost" or not _mentions_base_image(str(error), base_image):
            raise
        raise EngineError(
            f"{error}; the base image {base_image} cannot be pulled here: where no registry is reachable, "
            "pass --standin-base, or set build.base_image to an image the engine has",
            exit_code=error.exit_code,
        ) from None


def _mentions_base_image(message: str, base_image: str) -> bool:
    # buildah and podman name the image they failed to pull (docker://python:3.12-slim); docker names its registry.
    return base_image in message or "registry-1.docker.io" in message


def require_local_image(engine: Engine, image: str, *, remote: bool = False) -> None:
    """Raise ImageError when the engine's storage lacks image, instead of letting the engine try to pull it."""
    if engine.image_exists(image):
        return
    where = "on the build host" if remote else "locally"
    build = "inv build --host HOST" if remote else "inv build"
    raise ImageError(f"image {image} not found {where}; run {build} first")


def parse_port(value) -> int:
    """Return value as a TCP port number, or raise ImageError naming the value."""
    try:
        port = int(str(value).strip())
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise ImageError(f"invalid port {value!r}; give a number from 1 to 65535 (--port or build.run_port)")
    return port


@contextlib.contextmanager
def configured_session(c, engine=None, host=None):
    """Open build_session with the task's --engine and --host, else the build.* settings."""
    from pipeline.config import seconds

    settings = c.config.build
    with build_session(
        c,
        engine_name=engine or settings.engine,
        storage_driver=settings.storage_driver,
        isolation=settings.isolation,
        host=host if host is not None else settings.host,
        known_hosts=settings.known_hosts,
        identity_file=settings.identity_file,
        connect_timeout=seconds(settings.connect_timeout, "build.connect_timeout"),
    ) as session:
        yield session


def image_name(config, session=None, stage=None) -> tuple[str, str]:
    """Return (repository, tag) of this commit's image; a test-stage image gets its own tag suffix."""
    from pipeline.config import image_repository
    from pipeline.revision import image_tag

    tag = image_tag()
    if session is not None and session.remote:
        tag = clean_tag_for_remote(tag)
    if stage and stage != "runtime":
        tag = f"{tag}-{stage}"
    return image_repository(config), tag


def build_stage(c, session, stage, standin_base=False) -> str:
    """Build one stage of the Dockerfile in the session and return the image reference it was tagged with."""
    from pipeline.standin import ensure_standin_base

    repository, tag = image_name(c.config, session, stage)
    image = f"{repository}:{tag}"
    base_image = c.config.build.base_image
    if standin_base or c.config.build.standin_base:
        base_image = ensure_standin_base(session.engine.c, session.engine)
    build_image(session, image, target=stage, build_args=build_args(base_image=base_image))
    print(f"built {image}")
    return image


def clean_tag_for_remote(tag: str) -> str:
    """Drop "-dirty" from a tag, because a remote build uses the committed tree, never the working tree."""
    if tag.endswith(DIRTY_SUFFIX):
        clean = tag[: -len(DIRTY_SUFFIX)]
        print(f"note: the working tree has uncommitted changes; the remote build uses commit {clean} only")
        return clean
    return tag


def check_pushable_tag(tag: str) -> None:
    """Raise ImageError for a "-dirty" tag: an image of uncommitted code must never reach the registry."""
    if tag.endswith(DIRTY_SUFFIX):
        raise ImageError(
            f"cannot push tag {tag}: the working tree has uncommitted changes; commit or stash them, "
            "then build and push again"
        )


def login_from_environment(engine: Engine, environ: Mapping[str, str] | None = None) -> bool:
    """Log in to CI_REGISTRY with CI_REGISTRY_USER/CI_REGISTRY_PASSWORD when all three are set."""
    environ = os.environ if environ is None else environ
    registry = environ.get("CI_REGISTRY", "").strip()
    user = environ.get("CI_REGISTRY_USER", "").strip()
    password = environ.get("CI_REGISTRY_PASSWORD", "")
    if not (registry and user and password):
        return False
    engine.login(registry, user, password)
    return True


def write_push_result(path: str | Path, *, repository: str, tag: str, digest: str) -> Path:
    """Write IMAGE_REFERENCE, IMAGE_TAG and IMAGE_DIGEST as a dotenv file for the bump job."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"IMAGE_REFERENCE={repository}:{tag}\n"
        f"IMAGE_TAG={tag}\n"
        f"IMAGE_DIGEST={digest}\n"
    )
    return path


def read_push_result(path: str | Path) -> dict[str, str]:
    """Return the variables of a file that write_push_result wrote."""
    values = {}
    for line in Path(path).read_text().splitlines():
        key, separator, value = line.partition("=")
        if separator:
            values[key.strip()] = value.strip()
    return values


def test_in_image(session: BuildSession, image: str, reports_dir: str | Path) -> None:
    """Run the app's tests and the coverage gate inside the test-stage image, then copy the reports here.

    The gate (fail_under) and what is measured come from the pyproject.toml
    inside the image, applied by pytest-cov. Reports are copied also when a
    test fails or the gate is not met; the error is raised afterwards.
    """
    engine = session.engine
    host_dir = engine.execute(["mktemp", "-d"], what="mktemp", hide=True).stdout.strip()
    # The tests run as the image's non-root user, which must be able to write the reports.
    engine.execute(["chmod", "0777", host_dir], what="chmod", hide=True)
    argv = [
        "python", "-m", "pytest", "-p", "no:cacheprovider", "tests/app",
        "--cov", "--cov-report=term-missing",
        f"--cov-report=xml:{CONTAINER_REPORTS_DIR}/coverage.xml",
        f"--cov-report=html:{CONTAINER_REPORTS_DIR}/coverage-html",
        f"--junitxml={CONTAINER_REPORTS_DIR}/junit.xml",
    ]
    try:
        result = engine.run_once(image, argv, volumes={host_dir: CONTAINER_REPORTS_DIR}, check=False)
    finally:
        copy_reports(session, host_dir, Path(reports_dir))
    if result.failed:
        raise in_image_failure(result, image, Path(reports_dir))
    print(f"tests and coverage gate passed inside {image}; reports in {reports_dir}")


def in_image_failure(result, image: str, reports_dir: Path) -> PipelineError:
    """Return the error for a failed test run inside image, named from pytest's own output."""
    from pipeline.errors import CommandError
    from pipeline.testgate import PYTEST_NO_TESTS_COLLECTED, CoverageGateError, pytest_summary

    output = f"{result.stdout}\n{result.stderr}"
    coverage_lines = [line.strip() for line in output.splitlines() if line.strip().startswith("FAIL Required test")]
    summary = pytest_summary(output)
    if result.exited == PYTEST_NO_TESTS_COLLECTED:
        return CommandError(f"pytest collected no tests inside {image}; check tests/app in the image", exit_code=5)
    if "failed" in summary or "error" in summary:
        return CommandError(f"tests failed inside {image} ({summary}); see {reports_dir / 'junit.xml'}",
                            exit_code=result.exited)
    if coverage_lines:
        return CoverageGateError(f"coverage gate failed inside {image}: {coverage_lines[-1]} "
                                 "(fail_under in pyproject.toml); add tests for the missing lines listed above")
    return CommandError(f"the test run inside {image} failed with exit status {result.exited}; read its output above",
                        exit_code=result.exited)


def copy_reports(session: BuildSession, host_dir: str, reports_dir: Path) -> None:
    reports_dir.mkdir(parents=True, exist_ok=True)
    if session.remote:
        from pipeline import remote

        remote.download_folder(session.connection, host_dir, reports_dir)
        remote.remove_remote(session.connection, host_dir)
        return
    shutil.copytree(host_dir, reports_dir, dirs_exist_ok=True)
    shutil.rmtree(host_dir, ignore_errors=True)
