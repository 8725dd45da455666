"""Build the real Dockerfile with buildah, test inside the image, push to a real registry, build over SSH."""

import json
import os
import re
import signal
import subprocess
import urllib.request
import xml.etree.ElementTree as ElementTree

import pytest

from pipeline.images import read_push_result
from tests.images.conftest import buildah, git, make_app_repository, require_programs, run_inv, wait_for_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def image_config(image: str) -> dict:
    return json.loads(buildah("inspect", "--type", "image", image).stdout)["OCIv1"]["config"]


def run_in_image(image: str, *command: str) -> subprocess.CompletedProcess:
    container = buildah("from", "--pull-never", image).stdout.strip().splitlines()[-1]
    try:
        return subprocess.run(
            ["buildah", "--storage-driver", "vfs", "run", "--isolation=chroot", container, "--", *command],
            capture_output=True, text=True, timeout=120,
        )
    finally:
        buildah("rm", container, check=False)


def test_push_digest_matches_registry(pushed_image, built_image):
    require_programs("skopeo")
    inspected = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}", f"docker://{built_image['image']}"],
        capture_output=True, text=True, check=True,
    )
    assert inspected.stdout.strip() == pushed_image["IMAGE_DIGEST"]


def test_push_result_names_reference_and_tag(pushed_image, built_image):
    assert pushed_image["IMAGE_REFERENCE"] == built_image["image"]
    assert pushed_image["IMAGE_TAG"] == built_image["tag"]
    assert pushed_image["IMAGE_DIGEST"].startswith("sha256:")
    assert len(pushed_image["IMAGE_DIGEST"]) == len("sha256:") + 64


def test_runtime_image_labels_and_commit(built_image):
    config = image_config(built_image["image"])
    labels = config["Labels"]
    assert labels["org.opencontainers.image.revision"] == built_image["commit"]
    assert labels["org.opencontainers.image.created"].endswith("Z")
    assert f"APP_GIT_COMMIT={built_image['commit']}" in config["Env"]
    assert "PYTHONDONTWRITEBYTECODE=1" in config["Env"]
    assert "PYTHONUNBUFFERED=1" in config["Env"]


def test_runtime_image_runs_as_non_root(built_image):
    config = image_config(built_image["image"])
    assert config["User"] == "10001:10001"
    assert config["Cmd"][:2] == ["uvicorn", "app.main:app"]
    assert "--timeout-graceful-shutdown" in config["Cmd"]
    assert "8080" in config["Cmd"]


def test_runtime_image_has_no_tests_or_pip(built_image):
    listing = run_in_image(built_image["image"], "sh", "-c",
                           "ls /app; ls /opt/venv/bin; ls /root/.cache/pip 2>&1 || true")
    assert listing.returncode == 0, listing.stderr
    entries = listing.stdout.split()
    assert "app" in entries
    assert "tests" not in entries
    assert "pyproject.toml" not in entries
    assert "pip" not in entries
    assert "uvicorn" in entries


def test_runtime_image_serves_version_and_stops(built_image):
    from pipeline.registry import free_port

    port = free_port()
    container = buildah("from", "--pull-never", built_image["image"]).stdout.strip().splitlines()[-1]
    # chroot isolation shares the host's network and process IDs, so the app
    # listens on a free port of 127.0.0.1 instead of 8080, and SIGTERM goes
    # straight to uvicorn (buildah itself would kill its child instead).
    process = subprocess.Popen(
        ["buildah", "--storage-driver", "vfs", "run", "--isolation=chroot", container, "--",
         "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port), "--timeout-graceful-shutdown", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        first_line = process.stdout.readline()
        match = re.search(r"Started server process \[(\d+)\]", first_line)
        assert match, first_line
        wait_for_port(port, timeout=30)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=5) as response:
            body = json.loads(response.read())
        os.kill(int(match.group(1)), signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        buildah("rm", container, check=False)
    assert body == {"service": "hello-python", "commit": built_image["commit"]}
    assert "Shutting down" in output
    assert "Finished server process" in output


def test_in_image_runs_tests_and_copies_reports(app_repo, built_image, tmp_path):
    reports = tmp_path / "reports"
    completed = run_inv(["test", "--in-image", "--engine", "buildah", "--standin-base", "--reports", str(reports)],
                        cwd=app_repo, env={"INVOKE_IMAGE_REPOSITORY": built_image["repository"]})
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr
    assert "Required test coverage of 80" in completed.stdout
    junit = ElementTree.parse(reports / "junit.xml").getroot()
    suite = junit if junit.tag == "testsuite" else junit.find("testsuite")
    assert int(suite.get("tests")) > 0
    assert suite.get("failures") == "0"
    assert suite.get("errors") == "0"
    coverage = ElementTree.parse(reports / "coverage.xml").getroot()
    assert float(coverage.get("line-rate")) >= 0.8
    # The image's own code was measured: paths are those inside the image.
    assert coverage.find("sources/source").text == "/app"
    assert [node.get("filename") for node in coverage.iter("class")] == ["app/main.py"]
    assert (reports / "coverage-html" / "index.html").is_file()


def test_remote_build_uses_committed_tree(app_repo, built_image, ssh_server):
    leaked = app_repo / "app" / "uncommitted.py"
    leaked.write_text("SECRET_WORK_IN_PROGRESS = True\n")
    repository = built_image["repository"] + "-remote"
    try:
        completed = run_inv(
            ["build", "--engine", "buildah", "--standin-base", "--host", ssh_server["host"]],
            cwd=app_repo,
            env={
                "INVOKE_IMAGE_REPOSITORY": repository,
                "INVOKE_BUILD_KNOWN_HOSTS": str(ssh_server["known_hosts"]),
                "INVOKE_BUILD_IDENTITY_FILE": str(ssh_server["identity_file"]),
            },
        )
    finally:
        leaked.unlink()
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr
    commit = git(app_repo, "rev-parse", "HEAD")
    # The tag has no "-dirty": the remote build used the commit, not the working tree.
    image = f"{repository}:{commit[:8]}"
    assert f"built {image}" in completed.stdout
    assert " archive --format=tar " in completed.stdout
    assert image_config(image)["Labels"]["org.opencontainers.image.revision"] == commit
    listing = run_in_image(image, "ls", "/app/app")
    assert listing.returncode == 0, listing.stderr
    assert "main.py" in listing.stdout.split()
    assert "uncommitted.py" not in listing.stdout.split()


def test_remote_push_records_digest(app_repo, built_image, pushed_image, ssh_server, tmp_path):
    result_file = tmp_path / "image.env"

    completed = run_inv(
        ["push", "--engine", "buildah", "--host", ssh_server["host"], "--result-file", str(result_file)],
        cwd=app_repo,
        env={
            "INVOKE_IMAGE_REPOSITORY": built_image["repository"],
            "INVOKE_BUILD_KNOWN_HOSTS": str(ssh_server["known_hosts"]),
            "INVOKE_BUILD_IDENTITY_FILE": str(ssh_server["identity_file"]),
        },
    )

    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr
    assert f"engine: buildah on {ssh_server['host']}" in completed.stdout
    # The same image pushed again from the builder has the digest of the first push.
    assert read_push_result(result_file)["IMAGE_DIGEST"] == pushed_image["IMAGE_DIGEST"]


def test_in_image_failing_test_fails_task(built_image, registry, tmp_path):
    repo = make_app_repository(tmp_path / "failing")
    (repo / "tests" / "app" / "test_broken.py").write_text(
        "def test_broken():\n    assert 1 + 1 == 3\n"
    )
    git(repo, "add", "--all")
    git(repo, "-c", "user.name=Test", "-c", "user.email=test@example.invalid", "commit", "--quiet", "-m", "Break")
    reports = tmp_path / "reports"

    completed = run_inv(["test", "--in-image", "--engine", "buildah", "--standin-base", "--reports", str(reports)],
                        cwd=repo, env={"INVOKE_IMAGE_REPOSITORY": f"{registry.address}/shop/failing"})

    assert completed.returncode == 1
    last_line = completed.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"error: tests failed inside {registry.address}/shop/failing:")
    assert re.search(r" \(1 failed, \d+ passed", last_line), last_line
    junit = ElementTree.parse(reports / "junit.xml").getroot()
    suite = junit if junit.tag == "testsuite" else junit.find("testsuite")
    assert suite.get("failures") == "1"


def test_remote_in_image_copies_reports_back(app_repo, built_image, ssh_server, tmp_path):
    reports = tmp_path / "reports"

    completed = run_inv(
        ["test", "--in-image", "--engine", "buildah", "--standin-base", "--host", ssh_server["host"],
         "--reports", str(reports)],
        cwd=app_repo,
        env={
            "INVOKE_IMAGE_REPOSITORY": built_image["repository"],
            "INVOKE_BUILD_KNOWN_HOSTS": str(ssh_server["known_hosts"]),
            "INVOKE_BUILD_IDENTITY_FILE": str(ssh_server["identity_file"]),
        },
    )

    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr
    assert f"engine: buildah on {ssh_server['host']}" in completed.stdout
    junit = ElementTree.parse(reports / "junit.xml").getroot()
    suite = junit if junit.tag == "testsuite" else junit.find("testsuite")
    assert suite.get("failures") == "0"
    assert (reports / "coverage.xml").is_file()
    assert (reports / "coverage-html" / "index.html").is_file()


def test_build_consumes_every_build_arg(built_image):
    assert "were not consumed" not in built_image["output"]
