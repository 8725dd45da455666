"""set_image on one input per target kind, compared byte for byte with the expected files."""

import difflib
import shutil

import pytest

from pipeline.manifests import set_image
from pipeline.reference import parse_image_reference

from tests.manifests.conftest import GOLDEN, snapshot

NEW_DIGEST = "sha256:" + "ab" * 32

# Folder under golden/ -> (image reference, keyword arguments of set_image).
GOLDEN_CASES = {
    "quoted_styles": ("registry.example.com:5000/shop/web:7d41e0c", {}),
    "cronjob": ("registry.example.com/shop/web:7d41e0c", {}),
    "pod": ("registry.example.com/shop/web:7d41e0c", {}),
    "kustomization": ("registry.example.com/shop/web:7d41e0c", {}),
    "kustomization_flow": ("registry.example.com/shop/web:4651090", {}),
    "helm_values": (f"registry.example.com/shop/web:7d41e0c@{NEW_DIGEST}", {"key": "image.tag"}),
    "multi_document": ("registry.example.com/shop/web:7d41e0c", {}),
    "crlf": ("registry.example.com/shop/web:7d41e0c", {}),
    "bom": ("registry.example.com/shop/web:7d41e0c", {}),
    "japanese": ("registry.example.com/shop/web:7d41e0c", {}),
    "flow_style": ("registry.example.com/shop/web:7d41e0c", {}),
    "digest_new": (f"registry.example.com/shop/web:7d41e0c@{NEW_DIGEST}", {}),
    "docker_hub": ("docker.io/library/nginx:1.26", {}),
}


def test_every_golden_folder_listed():
    assert sorted(path.name for path in GOLDEN.iterdir() if path.is_dir()) == sorted(GOLDEN_CASES)


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_output_matches(tmp_path, name):
    image, options = GOLDEN_CASES[name]
    folder = tmp_path / name
    shutil.copytree(GOLDEN / name / "input", folder)

    result = set_image([folder], parse_image_reference(image), **options)

    assert snapshot(folder) == snapshot(GOLDEN / name / "expected")
    assert result.written is True
    assert result.changes


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_second_run_changes_nothing(tmp_path, name):
    image, options = GOLDEN_CASES[name]
    folder = tmp_path / name
    shutil.copytree(GOLDEN / name / "expected", folder)

    result = set_image([folder], parse_image_reference(image), **options)

    assert result.up_to_date is True
    assert result.written is False
    assert result.diff == ""
    assert result.unchanged
    assert snapshot(folder) == snapshot(GOLDEN / name / "expected")


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_dry_run_writes_nothing(tmp_path, name):
    image, options = GOLDEN_CASES[name]
    folder = tmp_path / name
    shutil.copytree(GOLDEN / name / "input", folder)

    result = set_image([folder], parse_image_reference(image), dry_run=True, **options)

    assert snapshot(folder) == snapshot(GOLDEN / name / "input")
    assert result.written is False
    assert result.diff == difflib_diff(folder, GOLDEN / name / "expected")


def difflib_diff(folder, expected_folder) -> str:
    """Return difflib's unified diff from each file in folder to the same file in expected_folder."""
    output = []
    for path in sorted(folder.iterdir()):
        old = path.read_bytes().decode("utf-8-sig").splitlines(keepends=True)
        new = (expected_folder / path.name).read_bytes().decode("utf-8-sig").splitlines(keepends=True)
        for line in difflib.unified_diff(old, new, str(path), str(path)):
            output.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(output)
