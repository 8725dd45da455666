"""Fixtures for the manifests tests: the real kubectl, copies of manifests/, and `inv` run as a subprocess."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support import require_program

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = REPOSITORY_ROOT / "manifests"
INVOKE_TIMEOUT_SECONDS = 120



def objects_by_kind(rendered: str) -> dict[str, dict]:
    """Map kind to object for a rendered overlay, which contains one object of each kind."""
    objects = [document for document in yaml.safe_load_all(rendered) if document]
    by_kind = {document["kind"]: document for document in objects}
    assert len(by_kind) == len(objects), "an overlay renders one object of each kind"
    return by_kind


@pytest.fixture(scope="session")
def kubectl() -> str:
    return require_program("kubectl")


@pytest.fixture(scope="session")
def rendered(kubectl) -> dict[str, dict[str, dict]]:
    """Objects of every overlay, rendered once per session: {"dev": {"Deployment": {...}, ...}, ...}."""
    from pipeline.kube import render_overlay

    return {env: objects_by_kind(render_overlay(MANIFESTS, env)) for env in ("dev", "prod")}


@pytest.fixture
def manifests_copy(tmp_path) -> Path:
    """A copy of manifests/ that a test may break."""
    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, copy)
    return copy


def replace_in(path: Path, old: str, new: str) -> None:
    """Replace old, which must occur exactly once, with new in the file at path."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def run_invoke(*arguments: str, env: dict[str, str] | None = None, cwd: Path = REPOSITORY_ROOT):
    """Run `inv ARGUMENTS` from the repository root as a user would, and return the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "invoke", *arguments],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=INVOKE_TIMEOUT_SECONDS,
        check=False,
    )
