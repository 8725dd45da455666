"""set_image rejects what it cannot do safely, with one line, and then writes no file."""

import os
import stat
import textwrap

import pytest
import yaml

from pipeline import manifests as manifests_module
from pipeline.manifests import ManifestError, set_image
from pipeline.reference import parse_image_reference

from tests.manifests.conftest import snapshot

WEB = "registry.example.com/shop/web"


def deployment(containers: str) -> str:
    """Return a Deployment whose container list is the given YAML (indented by 8)."""
    header = textwrap.dedent(
        """\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
        spec:
          template:
            spec:
              containers:
        """
    )
    return header + textwrap.indent(textwrap.dedent(containers), " " * 8)


def write(folder, name, text):
    path = folder / name
    path.write_text(text)
    return path


def reject(paths, image, **options) -> str:
    """Run set_image expecting ManifestError and return its message."""
    with pytest.raises(ManifestError) as raised:
        set_image(paths, parse_image_reference(image), **options)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_invalid_yaml_names_line_and_column(tmp_path):
    path = write(tmp_path, "broken.yaml", "kind: Pod\nspec:\n  containers: [\n    {name: web\n  image: x\n")

    message = reject([path], f"{WEB}:1")

    assert message.startswith(f"{path}: invalid YAML at line 5, column 8: ")
    assert message.endswith("; fix the file and run again")


def test_missing_file_rejected(tmp_path):
    message = reject([tmp_path / "missing.yaml"], f"{WEB}:1")

    assert message == f"manifest path {tmp_path / 'missing.yaml'} not found; give an existing file or folder"


def test_folder_without_yaml_rejected(tmp_path):
    write(tmp_path, "notes.txt", "image: registry.example.com/shop/web:1\n")

    message = reject([tmp_path], f"{WEB}:1")

    assert message == f"folder {tmp_path} contains no .yaml or .yml file; give the folder that contains the manifests"


def test_unknown_key_rejected(tmp_path):
    path = write(tmp_path, "values.yaml", "image:\n  tag: 1\n")

    message = reject([path], f"{WEB}:2", key="image.version")

    assert message == f"key image.version not found in any document of {path}; check --key (a dotted path such as image.tag)"


def test_reference_without_tag_rejected_before_reading(tmp_path):
    message = reject([tmp_path / "missing.yaml"], WEB)

    assert message == f"image reference {WEB} has neither a tag nor a digest; add one, as in {WEB}:7d41e0c"


def test_nothing_matched_lists_found_images(tmp_path):
    path = write(tmp_path, "deployment.yaml", deployment("- name: web\n  image: registry.example.com/shop/web-metrics:1\n"))

    message = reject([path], f"{WEB}:2")

    assert message == (
        f"no image {WEB} in {path}; images found: registry.example.com/shop/web-metrics:1 (container web)"
    )


def test_prefix_repository_not_matched(tmp_path):
    path = write(tmp_path, "deployment.yaml", deployment("- name: web\n  image: registry.example.com/shop/web-metrics:1\n"))
    before = path.read_bytes()

    reject([path], "registry.example.com/shop/web:2")

    assert path.read_bytes() == before


def test_different_tags_rejected_without_container(tmp_path):
    path = write(
        tmp_path,
        "deployment.yaml",
        deployment(f"- name: web\n  image: {WEB}:1.0\n- name: worker\n  image: {WEB}:0.9\n"),
    )

    message = reject([path], f"{WEB}:2.0")

    assert message == (
        f"the images of {WEB} carry different tags (container web at {path}:10 has 1.0, "
        f"container worker at {path}:12 has 0.9); pass --container NAME to choose one"
    )


def test_container_option_selects_one(tmp_path):
    path = write(
        tmp_path,
        "deployment.yaml",
        deployment(f"- name: web\n  image: {WEB}:1.0\n- name: worker\n  image: {WEB}:0.9\n"),
    )

    result = set_image([path], parse_image_reference(f"{WEB}:2.0"), container="worker")

    containers = yaml.safe_load(path.read_text())["spec"]["template"]["spec"]["containers"]
    assert [container["image"] for container in containers] == [f"{WEB}:1.0", f"{WEB}:2.0"]
    assert [change.location for change in result.changes] == ["container worker"]


def test_container_option_replaces_other_repository(tmp_path):
    path = write(tmp_path, "deployment.yaml", deployment("- name: web\n  image: registry.example.com/old/web:1\n"))

    set_image([path], parse_image_reference(f"{WEB}:2"), container="web")

    assert f"image: {WEB}:2\n" in path.read_text()


def test_aliased_container_image_rejected(tmp_path):
    path = write(
        tmp_path,
        "deployment.yaml",
        deployment(f"- name: web\n  image: &image {WEB}:1\n- name: worker\n  image: *image\n"),
    )
    before = path.read_bytes()

    message = reject([path], f"{WEB}:2")

    assert message.startswith(f"{path}:10: the image of container web is shared through a YAML anchor, alias or merge key")
    assert path.read_bytes() == before


def test_merged_container_image_rejected(tmp_path):
    text = "defaults: &defaults\n  image: registry.example.com/shop/web:1\n---\n" + deployment(
        "- <<: {image: registry.example.com/shop/web:1}\n  name: web\n"
    )
    path = write(tmp_path, "deployment.yaml", text)
    before = path.read_bytes()

    message = reject([path], f"{WEB}:2")

    assert "the image of container web is shared through a YAML anchor, alias or merge key" in message
    assert path.read_bytes() == before


def test_block_scalar_rejected(tmp_path):
    path = write(tmp_path, "deployment.yaml", deployment(f"- name: web\n  image: >-\n    {WEB}:1\n"))

    message = reject([path], f"{WEB}:2")

    assert message == f"{path}:10: the value is a block scalar (>); write it on one line and run again"


def test_key_naming_mapping_rejected(tmp_path):
    path = write(tmp_path, "values.yaml", "image:\n  tag: '1'\n")

    message = reject([path], f"{WEB}:2", key="image")

    assert message == f"{path}:2: --key image is a mapping or a list, not a value; name the value itself, such as image.tag"


def test_key_with_other_repository_rejected(tmp_path):
    path = write(tmp_path, "values.yaml", "image:\n  repository: registry.example.com/shop/other\n  tag: '1'\n")

    message = reject([path], f"{WEB}:2", key="image.tag")

    assert message == (
        f"{path}:3: the repository next to this tag is registry.example.com/shop/other, not {WEB}; check --image and --key"
    )


def test_key_holding_full_reference_keeps_repository(tmp_path):
    path = write(tmp_path, "values.yaml", f"web:\n  image: {WEB}:1  # full reference\n")

    set_image([path], parse_image_reference(f"{WEB}:4651090"), key="web.image")

    assert path.read_text() == f"web:\n  image: {WEB}:4651090  # full reference\n"


def test_key_holding_other_image_rejected(tmp_path):
    path = write(tmp_path, "values.yaml", "web:\n  image: registry.example.com/shop/other:1\n")

    message = reject([path], f"{WEB}:2", key="web.image")

    assert message == (
        f"{path}:2: web.image contains image registry.example.com/shop/other:1, not {WEB}; check --image and --key"
    )


def test_key_with_index_reaches_list_item(tmp_path):
    path = write(tmp_path, "values.yaml", "images:\n  - tag: '1'\n  - tag: '1'\n")

    set_image([path], parse_image_reference(f"{WEB}:2"), key="images[1].tag")

    assert path.read_text() == "images:\n  - tag: '1'\n  - tag: '2'\n"


def test_duplicate_in_untouched_document_ignored(tmp_path):
    text = "kind: ConfigMap\ndata:\n  a: 1\n  a: 2\n---\n" + deployment(f"- name: web\n  image: {WEB}:1\n")
    path = write(tmp_path, "all.yaml", text)

    set_image([path], parse_image_reference(f"{WEB}:2"))

    assert path.read_text() == text.replace(f"{WEB}:1", f"{WEB}:2")


def test_repeated_merge_keys_not_duplicates(tmp_path):
    text = "a: &a {x: 1}\nb: &b {y: 2}\nimage:\n  <<: *a\n  <<: *b\n  tag: '1'\n"
    path = write(tmp_path, "values.yaml", text)

    set_image([path], parse_image_reference(f"{WEB}:2"), key="image.tag")

    assert path.read_text() == text.replace("tag: '1'", "tag: '2'")


def test_failure_in_one_file_writes_none(tmp_path):
    good = write(tmp_path, "a.yaml", deployment(f"- name: web\n  image: {WEB}:1\n"))
    write(tmp_path, "b.yaml", deployment(f"- name: web\n  image: {WEB}:1\n  image: {WEB}:1\n"))
    before = snapshot(tmp_path)

    message = reject([tmp_path], f"{WEB}:2")

    assert message.startswith(f"{tmp_path / 'b.yaml'}: duplicate key 'image' in spec.template.spec.containers[0]")
    assert snapshot(tmp_path) == before
    assert good.read_bytes() == before["a.yaml"]


def test_write_keeps_file_mode(tmp_path):
    path = write(tmp_path, "deployment.yaml", deployment(f"- name: web\n  image: {WEB}:1\n"))
    os.chmod(path, 0o640)

    set_image([path], parse_image_reference(f"{WEB}:2"))

    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["deployment.yaml"]


def test_folder_search_skips_hidden_folders(tmp_path):
    write(tmp_path, "deployment.yaml", deployment(f"- name: web\n  image: {WEB}:1\n"))
    (tmp_path / ".git").mkdir()
    hidden = write(tmp_path / ".git", "config.yaml", deployment(f"- name: web\n  image: {WEB}:1\n"))
    before = hidden.read_bytes()

    result = set_image([tmp_path], parse_image_reference(f"{WEB}:2"))

    assert [change.file.name for change in result.changes] == ["deployment.yaml"]
    assert hidden.read_bytes() == before


def test_aliased_image_rejected_at_alias_line(tmp_path):
    path = write(
        tmp_path,
        "deployment.yaml",
        deployment(f"- name: web\n  image: &image {WEB}:1\n- name: worker\n  image: *image\n"),
    )

    message = reject([path], f"{WEB}:2", container="worker")

    assert message.startswith(f"{path}:12: the image of container worker is shared")
    assert "--key spec.template.spec.containers[0].image" in message


def test_failed_write_restores_written_files(tmp_path, monkeypatch):
    first = write(tmp_path, "a.yaml", deployment(f"- name: web\n  image: {WEB}:1\n"))
    second = write(tmp_path, "b.yaml", deployment(f"- name: web\n  image: {WEB}:1\n"))
    before = snapshot(tmp_path)
    real_write = manifests_module._write_atomically

    def write_then_fail_on_second(path, data, mode):
        # Simulates a full disk on the second file; the restore of the first must still go through.
        if path == second and data != before["b.yaml"]:
            raise OSError(28, "No space left on device", str(path))
        real_write(path, data, mode)

    monkeypatch.setattr(manifests_module, "_write_atomically", write_then_fail_on_second)

    message = reject([tmp_path], f"{WEB}:2")

    assert message == f"cannot write {second}: No space left on device; no file was changed"
    assert snapshot(tmp_path) == before
    assert first.read_bytes() == before["a.yaml"]


def test_symbolic_link_kept_and_target_written(tmp_path):
    target = write(tmp_path, "real.yaml", deployment(f"- name: web\n  image: {WEB}:1\n"))
    link = tmp_path / "link.yaml"
    link.symlink_to(target.name)

    result = set_image([link], parse_image_reference(f"{WEB}:2"))

    assert link.is_symlink()
    assert f"image: {WEB}:2\n" in target.read_text()
    assert [change.file for change in result.changes] == [link]


def test_file_named_twice_edited_once(tmp_path):
    path = write(tmp_path, "deployment.yaml", deployment(f"- name: web\n  image: {WEB}:1\n"))

    result = set_image([tmp_path, path], parse_image_reference(f"{WEB}:2"))

    assert len(result.changes) == 1
    assert result.diff.count("+++ ") == 1


def test_empty_digest_value_filled(tmp_path):
    path = write(tmp_path, "values.yaml", f"image:\n  repository: {WEB}\n  tag: x\n  digest:\n  pullPolicy: y\n")
    digest = "sha256:" + "a" * 64

    set_image([path], parse_image_reference(f"{WEB}:7d41e0c@{digest}"), key="image.tag")

    assert path.read_text() == f"image:\n  repository: {WEB}\n  tag: 7d41e0c\n  digest: {digest}\n  pullPolicy: y\n"
    assert yaml.safe_load(path.read_text())["image"]["digest"] == digest


def test_empty_list_item_filled(tmp_path):
    path = write(tmp_path, "values.yaml", "tags:\n-\n- b\n")

    set_image([path], parse_image_reference(f"{WEB}:7d41e0c"), key="tags[0]")

    assert path.read_text() == "tags:\n- 7d41e0c\n- b\n"
