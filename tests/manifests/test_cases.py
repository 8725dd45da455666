"""set_image on inputs taken from public bug reports about YAML image bumps."""

import yaml
import pytest

from pipeline.manifests import ManifestError, set_image
from pipeline.reference import parse_image_reference

from tests.manifests.conftest import CASES

WEB = "registry.example.com/shop/web"


def test_bump_keeps_comment_on_image_line(copy_case):
    folder = copy_case("eol_comment")

    result = set_image([folder / "deployment.yaml"], parse_image_reference(f"{WEB}:7d41e0c"))

    assert (folder / "deployment.yaml").read_bytes() == (folder / "expected-deployment.yaml").read_bytes()
    assert [change.location for change in result.changes] == ["container web"]
    assert result.written is True


def test_anchor_definition_edited_in_place(copy_case):
    folder = copy_case("anchors")

    result = set_image([folder / "values.yaml"], parse_image_reference(f"{WEB}:7d41e0c"), key="imageDefaults.tag")

    assert (folder / "values.yaml").read_bytes() == (folder / "expected-values.yaml").read_bytes()
    values = yaml.safe_load((folder / "values.yaml").read_text())
    assert values["imageDefaults"]["tag"] == "7d41e0c"
    assert values["web"]["image"]["tag"] == "7d41e0c"
    assert values["worker"]["image"]["tag"] == "7d41e0c"
    assert result.changes[0].location == "key imageDefaults.tag (anchored, also used by web.image, worker.image.<<)"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (
            "web.image.tag",
            "values.yaml:8: --key web.image.tag reaches the value through an alias at web.image, so writing it "
            "there would split it from its anchor; use --key imageDefaults.tag to edit the anchored value",
        ),
        (
            "worker.image.tag",
            "values.yaml:13: --key worker.image.tag reaches the value through a merge key (<<) at worker.image.<<, "
            "so writing it there would split it from its anchor; use --key imageDefaults.tag to edit the anchored value",
        ),
    ],
    ids=["alias", "merge-key"],
)
def test_alias_key_rejected(copy_case, key, message):
    folder = copy_case("anchors")
    before = (folder / "values.yaml").read_bytes()

    with pytest.raises(ManifestError) as raised:
        set_image([folder / "values.yaml"], parse_image_reference(f"{WEB}:7d41e0c"), key=key)

    assert str(raised.value) == f"{folder / message}"
    assert (folder / "values.yaml").read_bytes() == before


def test_digest_pinned_references_replaced(copy_case):
    folder = copy_case("digest_pinned")

    result = set_image([folder / "deployment.yaml"], parse_image_reference(f"{WEB}:7d41e0c"))

    assert (folder / "deployment.yaml").read_bytes() == (folder / "expected-deployment.yaml").read_bytes()
    assert len(result.changes) == 2
    assert [change.location for change in result.changes] == ["initContainer migrate", "container web"]
    assert [change.line for change in result.changes] == [16, 20]


NEW_TAGS = (CASES / "all_digit_sha" / "new-tags.txt").read_text().split()


@pytest.mark.parametrize("tag", NEW_TAGS)
@pytest.mark.parametrize("name", ["values.yaml", "values-unquoted.yaml"])
def test_all_digit_tag_written_as_string(copy_case, name, tag):
    folder = copy_case("all_digit_sha")
    expected = (folder / f"expected-{name.removesuffix('.yaml')}.tag-4651090.yaml").read_text()
    expected = expected.replace("4651090", tag)

    set_image([folder / name], parse_image_reference(f"{WEB}:{tag}"), key="image.tag")

    assert (folder / name).read_text() == expected
    assert yaml.safe_load((folder / name).read_text())["image"]["tag"] == tag


def test_leading_zero_tag_kept(copy_case):
    folder = copy_case("all_digit_sha")

    set_image([folder / "values-unquoted.yaml"], parse_image_reference(f"{WEB}:0123456"), key="image.tag")

    assert 'tag: "0123456"\n' in (folder / "values-unquoted.yaml").read_text()


def test_duplicate_image_key_rejected(copy_case):
    folder = copy_case("duplicate_keys")
    before = (folder / "deployment.yaml").read_bytes()

    with pytest.raises(ManifestError) as raised:
        set_image([folder / "deployment.yaml"], parse_image_reference(f"{WEB}:7d41e0c"))

    assert str(raised.value) == (
        f"{folder / 'deployment.yaml'}: duplicate key 'image' in spec.template.spec.containers[0] at lines 16 and 18; "
        "YAML readers keep only one of them, so remove the wrong one and run again"
    )
    assert (folder / "deployment.yaml").read_bytes() == before
