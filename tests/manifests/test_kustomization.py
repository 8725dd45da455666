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


def overlays(tmp_path) -> tuple:
    """Write a base Deployment and dev and prod overlays whose images: entries carry different tags."""
    base = tmp_path / "base"
    base.mkdir()
    (base / "deployment.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n"
        f"      containers:\n        - name: web\n          image: {WEB}:0.1.0\n"
    )
    paths = []
    for name, tag in (("dev", "'1234567'"), ("prod", "0.1.0")):
        folder = tmp_path / "overlays" / name
        folder.mkdir(parents=True)
        path = folder / "kustomization.yaml"
        path.write_text(f"resources:\n  - ../../base\nimages:\n  - name: {WEB}\n    newTag: {tag}\n")
        paths.append(path)
    return base / "deployment.yaml", paths[0], paths[1]


def test_different_overlay_tags_hint_at_path(tmp_path):
    _, dev, prod = overlays(tmp_path)

    with pytest.raises(ManifestError) as raised:
        set_image([dev, prod], parse_image_reference(f"{WEB}:2"))

    assert str(raised.value) == (
        f"the images of {WEB} carry different tags (images[0] {WEB} at {dev}:4 has 1234567, "
        f"images[0] {WEB} at {prod}:4 has 0.1.0); narrow --path to one overlay or file"
    )


def test_container_option_rejects_kustomization_entries(tmp_path):
    _, dev, prod = overlays(tmp_path)
    before = (dev.read_text(), prod.read_text())

    with pytest.raises(ManifestError) as raised:
        set_image([dev, prod], parse_image_reference(f"{WEB}:2"), container="web")

    assert str(raised.value) == (
        f"--container web selects containers only, but kustomization images[0] {WEB} at {dev}:4 "
        "sets the same image and overrides the container; drop --container and narrow --path to one overlay"
    )
    assert (dev.read_text(), prod.read_text()) == before


def test_container_option_on_tree_changes_nothing(tmp_path):
    deployment, dev, prod = overlays(tmp_path)
    before = [path.read_text() for path in (deployment, dev, prod)]

    with pytest.raises(ManifestError):
        set_image([tmp_path], parse_image_reference(f"{WEB}:2"), container="web")

    assert [path.read_text() for path in (deployment, dev, prod)] == before


def test_container_option_sets_only_containers(tmp_path):
    deployment, _, _ = overlays(tmp_path)

    result = set_image([deployment], parse_image_reference(f"{WEB}:2"), container="web")

    assert [change.location for change in result.changes] == ["container web"]
