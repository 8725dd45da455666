"""Kustomization `images:` entries: tag and digest are set together, and a stale one is removed."""

import pytest
import yaml

from pipeline.manifests import ManifestError, set_image
from pipeline.reference import parse_image_reference

WEB = "registry.example.com/shop/web"
DIGEST = "sha256:" + "ab" * 32
OLD_DIGEST = "sha256:" + "cd" * 32


def kustomization(tmp_path, entry: str):
    path = tmp_path / "kustomization.yaml"
    path.write_text(f"resources:\n  - deployment.yaml\nimages:\n  - name: web\n{entry}  - name: redis\n    newTag: '7.2'\n")
    return path


def test_digest_added_after_tag(tmp_path):
    path = kustomization(tmp_path, f"    newName: {WEB}\n    newTag: 3f9c2ab\n")

    set_image([path], parse_image_reference(f"{WEB}:7d41e0c@{DIGEST}"))

    assert f"    newName: {WEB}\n    newTag: 7d41e0c\n    digest: {DIGEST}\n  - name: redis\n" in path.read_text()


def test_digest_only_reference_removes_tag(tmp_path):
    path = kustomization(tmp_path, f"    newName: {WEB}\n    newTag: 3f9c2ab  # old\n    digest: {OLD_DIGEST}\n")

    set_image([path], parse_image_reference(f"{WEB}@{DIGEST}"))

    assert f"    newName: {WEB}\n    digest: {DIGEST}\n  - name: redis\n" in path.read_text()


def test_entry_matched_by_name_without_new_name(tmp_path):
    path = tmp_path / "kustomization.yaml"
    path.write_text(f"images:\n- name: {WEB}\n  newTag: '1'\n")

    result = set_image([path], parse_image_reference(f"{WEB}:4651090"))

    assert path.read_text() == f"images:\n- name: {WEB}\n  newTag: '4651090'\n"
    assert yaml.safe_load(path.read_text())["images"][0]["newTag"] == "4651090"
    assert [str(change) for change in result.changes] == [f"{path}:2 images[0] {WEB} :1 -> :4651090"]


def test_other_kustomization_entry_untouched(tmp_path):
    path = kustomization(tmp_path, f"    newName: {WEB}\n    newTag: 3f9c2ab\n")

    set_image([path], parse_image_reference(f"{WEB}:7d41e0c"))

    assert "  - name: redis\n    newTag: '7.2'\n" in path.read_text()


def test_images_in_other_files_not_read_as_kustomization(tmp_path):
    path = tmp_path / "values.yaml"
    path.write_text(f"images:\n- name: {WEB}\n  newTag: '1'\n")

    with pytest.raises(ManifestError):
        set_image([path], parse_image_reference(f"{WEB}:2"))
    assert path.read_text() == f"images:\n- name: {WEB}\n  newTag: '1'\n"


def test_digest_on_item_line_rejected(tmp_path):
    path = tmp_path / "kustomization.yaml"
    path.write_text(f"images:\n- digest: {OLD_DIGEST}\n  name: {WEB}\n  newTag: '1'\n")

    with pytest.raises(ManifestError) as raised:
        set_image([path], parse_image_reference(f"{WEB}:2"))

    assert str(raised.value) == (
        f"{path}:2: cannot remove digest because it shares its line with other text; "
        "put digest on its own line and run again"
    )
