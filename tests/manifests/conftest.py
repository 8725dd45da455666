"""Fixtures for the manifest edit tests: copies of the input files under tmp_path."""

import shutil
from pathlib import Path

import pytest

HERE = Path(__file__).parent
CASES = HERE / "cases"
GOLDEN = HERE / "golden"


@pytest.fixture
def copy_case(tmp_path):
    """Return a function that copies a folder of tests/manifests/cases to tmp_path and returns the copy."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(CASES / name, target)
        return target

    return copy


def snapshot(folder: Path) -> dict[str, bytes]:
    """Return every file under folder, by relative path, as bytes."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}
