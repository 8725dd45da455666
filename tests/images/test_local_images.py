"""run, push and build before the image exists or when its base cannot be pulled: one line that names the fix."""

import subprocess
import uuid

import pytest

from tests.images.conftest import git, make_app_repository, require_programs, run_inv


def error_lines(completed: subprocess.CompletedProcess) -> list[str]:
    return [line for line in completed.stderr.splitlines() if line.strip()]


@pytest.fixture
def unbuilt_repo(tmp_path):
    """An application repository whose image was never built, under a repository name used by no other test."""
    repo = make_app_repository(tmp_path / "unbuilt")
    repository = f"localhost/never-built-{uuid.uuid4().hex[:12]}"
    return repo, repository, f"{repository}:{git(repo, 'rev-parse', 'HEAD')[:8]}"


def test_run_rejects_text_port(app_repo):
    completed = run_inv(["run", "--port", "abc"], cwd=app_repo)

    assert completed.returncode == 1
    assert error_lines(completed) == [
        "error: invalid port 'abc'; give a number from 1 to 65535 (--port or build.run_port)"
    ]


def test_run_rejects_port_out_of_range(app_repo):
    completed = run_inv(["run", "--port", "70000"], cwd=app_repo)

    assert completed.returncode == 1
    assert error_lines(completed) == [
        "error: invalid port '70000'; give a number from 1 to 65535 (--port or build.run_port)"
    ]


def test_run_before_build_names_missing_image(unbuilt_repo):
    require_programs("podman")
    repo, repository, image = unbuilt_repo

    completed = run_inv(["run", "--engine", "podman"], cwd=repo, env={"INVOKE_IMAGE_REPOSITORY": repository})

    assert completed.returncode == 1
    assert error_lines(completed) == [f"error: image {image} not found locally; run inv build first"]
    assert "podman run" not in completed.stdout


def test_push_before_build_names_missing_image(unbuilt_repo):
    require_programs("buildah")
    repo, repository, image = unbuilt_repo

    completed = run_inv(["push", "--engine", "buildah"], cwd=repo, env={"INVOKE_IMAGE_REPOSITORY": repository})

    assert completed.returncode == 1
    assert error_lines(completed) == [f"error: image {image} not found locally; run inv build first"]
    assert "buildah push" not in completed.stdout


def test_run_stop_without_container_says_so(app_repo):
    require_programs("podman")
    name = f"never-started-{uuid.uuid4().hex[:12]}"

    completed = run_inv(["run", "--stop", "--engine", "podman"], cwd=app_repo, env={"INVOKE_BUILD_RUN_NAME": name})

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines()[-1] == f"no container named {name} is running; nothing to stop"


def test_build_with_unpullable_base_names_standin(unbuilt_repo, registry):
    require_programs("buildah")
    repo, repository, _ = unbuilt_repo
    base_image = f"{registry.address}/missing/base:1"

    completed = run_inv(["build", "--engine", "buildah"], cwd=repo,
                        env={"INVOKE_IMAGE_REPOSITORY": repository, "INVOKE_BUILD_BASE_IMAGE": base_image})

    # buildah's own output streams to stderr first; the task's error is the last line.
    line = error_lines(completed)[-1]
    assert completed.returncode == 125
    assert line.startswith("error: buildah build failed with exit status 125: ")
    assert f"docker://{base_image}" in line
    assert line.endswith(
        f"; the base image {base_image} cannot be pulled here: where no registry is reachable, "
        "pass --standin-base, or set build.base_image to an image the engine has"
    )


def test_test_help_ties_image_options_to_in_image(app_repo):
    completed = run_inv(["test", "--help"], cwd=app_repo)
    help_text = " ".join(completed.stdout.split())

    assert completed.returncode == 0
    assert "--engine=STRING Only with --in-image: auto, docker, podman or buildah" in help_text
    assert "--host=STRING Only with --in-image: build on this host over SSH" in help_text
    assert "--standin-base Only with --in-image: build on a Debian stand- in base" in help_text
