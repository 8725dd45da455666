"""`inv set-image` run as a real process from the repository root."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.manifests.conftest import snapshot

ROOT = Path(__file__).resolve().parents[2]
WEB = "registry.example.com/shop/web"
DEPLOYMENT = f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: web
          image: {WEB}:3f9c2ab # bumped by CI
"""


def set_image_command(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "invoke", "-r", str(ROOT), "set-image", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def manifests(tmp_path):
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "deployment.yaml").write_text(DEPLOYMENT)
    (folder / "values.yaml").write_text("image:\n  repository: registry.example.com/shop/web\n  tag: 5521907\n")
    return folder


def test_cli_sets_image_and_prints_change(manifests):
    path = manifests / "deployment.yaml"

    completed = set_image_command("--path", str(path), "--image", f"{WEB}:7d41e0c")

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == (
        f"{path}:10 container web {WEB}:3f9c2ab -> {WEB}:7d41e0c\n"
        "1 value(s) changed\n"
    )
    assert path.read_text() == DEPLOYMENT.replace("3f9c2ab", "7d41e0c")


def test_cli_second_run_up_to_date(manifests):
    path = manifests / "deployment.yaml"
    set_image_command("--path", str(path), "--image", f"{WEB}:7d41e0c")

    completed = set_image_command("--path", str(path), "--image", f"{WEB}:7d41e0c")

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == f"already up to date: 1 value(s) contain {WEB}:7d41e0c\n"


def test_cli_dry_run_prints_diff_only(manifests):
    before = snapshot(manifests)
    path = manifests / "deployment.yaml"

    completed = set_image_command("--path", str(path), "--image", f"{WEB}:7d41e0c", "--dry-run")

    assert completed.returncode == 0, completed.stderr
    assert f"-          image: {WEB}:3f9c2ab # bumped by CI\n" in completed.stdout
    assert f"+          image: {WEB}:7d41e0c # bumped by CI\n" in completed.stdout
    assert completed.stdout.endswith("1 value(s) would change; nothing written (--dry-run)\n")
    assert snapshot(manifests) == before


def test_cli_keeps_leading_zero_of_tag(manifests):
    path = manifests / "values.yaml"

    completed = set_image_command("--path", str(path), "--image", f"{WEB}:0123456", "--key", "image.tag")

    assert completed.returncode == 0, completed.stderr
    assert path.read_text() == 'image:\n  repository: registry.example.com/shop/web\n  tag: "0123456"\n'


def test_cli_accepts_several_paths(manifests, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "deployment.yaml").write_text(DEPLOYMENT)

    completed = set_image_command("-p", str(manifests / "deployment.yaml"), "-p", str(other), "--image", f"{WEB}:7d41e0c")

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.endswith("2 value(s) changed\n")


@pytest.mark.parametrize(
    ("case", "expected_stderr"),
    [
        ("invalid-yaml", "error: {path}: invalid YAML at line 3, column 1: did not find expected ',' or ']' (while parsing a flow sequence at line 1, column 8); fix the file and run again"),
        ("missing-file", "error: manifest path {path} not found; give an existing file or folder"),
        ("folder-without-yaml", "error: folder {path} contains no .yaml or .yml file"),
        ("invalid-reference", "error: invalid image reference 'registry.example.com/Shop/web:1': "),
        ("unknown-key", "error: key image.version not found in any document of {path}"),
    ],
)
def test_cli_bad_input_fails_with_one_line(manifests, tmp_path, case, expected_stderr):
    image = f"{WEB}:7d41e0c"
    options = []
    path = manifests / "deployment.yaml"
    if case == "invalid-yaml":
        path = manifests / "broken.yaml"
        path.write_text("image: [\nkind: Pod\n")
    elif case == "missing-file":
        path = manifests / "missing.yaml"
    elif case == "folder-without-yaml":
        path = tmp_path / "empty"
        path.mkdir()
        (path / "README.txt").write_text("no manifests here\n")
    elif case == "invalid-reference":
        image = "registry.example.com/Shop/web:1"
    elif case == "unknown-key":
        path = manifests / "values.yaml"
        options = ["--key", "image.version"]
    before = snapshot(tmp_path)

    completed = set_image_command("--path", str(path), "--image", image, *options)

    assert completed.returncode != 0
    assert completed.stderr.count("\n") == 1
    assert completed.stderr.startswith(expected_stderr.format(path=path))
    assert "Traceback" not in completed.stderr
    assert snapshot(tmp_path) == before


def test_cli_without_path_fails_with_one_line():
    completed = set_image_command("--image", f"{WEB}:7d41e0c")

    assert completed.returncode != 0
    assert completed.stderr == "error: --path is required; give a manifest file or folder, repeat --path for more\n"


def test_cli_without_image_fails_with_one_line(manifests):
    completed = set_image_command("--path", str(manifests))

    assert completed.returncode != 0
    assert completed.stderr == "error: --image is required; give a reference such as registry.example.com/shop/web:7d41e0c\n"
