"""Image references: parsing, formatting and the errors for malformed ones."""

import pytest

from pipeline.reference import ImageReference, InvalidReferenceError, parse_image_reference

DIGEST = "sha256:" + "3732215a50f81de462c3ded78bd0bed354442df47ebc45522dd9f3ce5811f2c3"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("registry.example.com:5000/shop/web:7d41e0c", ImageReference("registry.example.com:5000", "shop/web", "7d41e0c", None)),
        ("shop/web:1.0", ImageReference(None, "shop/web", "1.0", None)),
        ("nginx", ImageReference(None, "nginx", None, None)),
        ("localhost/web:dev", ImageReference("localhost", "web", "dev", None)),
        ("localhost:5000/web", ImageReference("localhost:5000", "web", None, None)),
        ("Registry/web:1", ImageReference("Registry", "web", "1", None)),
        ("127.0.0.1:5000/a/b/c:v1", ImageReference("127.0.0.1:5000", "a/b/c", "v1", None)),
        ("[::1]:5000/web:1", ImageReference("[::1]:5000", "web", "1", None)),
        (f"registry.example.com/shop/web@{DIGEST}", ImageReference("registry.example.com", "shop/web", None, DIGEST)),
        (f"registry.example.com/shop/web:3f9c2ab@{DIGEST}", ImageReference("registry.example.com", "shop/web", "3f9c2ab", DIGEST)),
        ("a/b__c/d-e--f.g:_Tag.1-x", ImageReference(None, "a/b__c/d-e--f.g", "_Tag.1-x", None)),
        ("web:0123456", ImageReference(None, "web", "0123456", None)),
    ],
)
def test_reference_parsed(text, expected):
    assert parse_image_reference(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "registry.example.com:5000/shop/web:7d41e0c",
        f"registry.example.com/shop/web:3f9c2ab@{DIGEST}",
        f"shop/web@{DIGEST}",
        "nginx",
    ],
)
def test_reference_formats_back_unchanged(text):
    assert str(parse_image_reference(text)) == text


def test_repository_joins_registry_and_path():
    assert parse_image_reference("registry.example.com:5000/shop/web:1").repository == "registry.example.com:5000/shop/web"


def test_repository_without_registry_is_path():
    assert parse_image_reference("shop/web:1").repository == "shop/web"


def test_with_tag_drops_old_digest():
    reference = parse_image_reference(f"registry.example.com/shop/web:3f9c2ab@{DIGEST}")

    assert str(reference.with_tag("7d41e0c")) == "registry.example.com/shop/web:7d41e0c"


def test_with_tag_sets_new_digest():
    reference = parse_image_reference("registry.example.com/shop/web:3f9c2ab")

    assert str(reference.with_tag("7d41e0c", DIGEST)) == f"registry.example.com/shop/web:7d41e0c@{DIGEST}"


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("nginx", "docker.io/library/nginx"),
        ("docker.io/nginx", "docker.io/library/nginx"),
        ("index.docker.io/library/nginx", "docker.io/library/nginx"),
        ("bitnami/nginx", "docker.io/bitnami/nginx"),
        ("registry.example.com/nginx", "registry.example.com/nginx"),
    ],
)
def test_normalized_repository_expands_docker_hub(text, normalized):
    assert parse_image_reference(text).normalized_repository == normalized


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "it is empty"),
        ("Shop/Web:1", "repository path 'Web' must be lowercase"),
        ("shop/Web", "repository path 'shop/Web' must be lowercase"),
        ("shop//web", "repository path 'shop//web'"),
        ("shop/web:", "tag '' must match"),
        ("shop/web:-1", "tag '-1' must match"),
        ("shop/web:" + "a" * 129, "at most 128 characters"),
        ("shop/web@sha256:abc", "digest 'sha256:abc' is not algorithm:hex"),
        ("shop/web@sha256:" + "A" * 64, "a sha256 digest needs 64 lowercase hex digits, got 64"),
        ("shop/web@sha256:" + "a" * 63, "a sha256 digest needs 64 lowercase hex digits, got 63"),
        ("shop/web@" + "a" * 64, "is not algorithm:hex"),
        ("-bad.example.com/web:1", "registry '-bad.example.com' is not a host name"),
        ("web:1 ", "tag '1 ' must match"),
        ("a/" * 130 + "b", "longer than 255 characters"),
        (":7d41e0c", "the repository name is empty"),
    ],
)
def test_malformed_reference_rejected(text, reason):
    with pytest.raises(InvalidReferenceError) as raised:
        parse_image_reference(text)

    message = str(raised.value)
    assert message.startswith(f"invalid image reference {text!r}: ")
    assert reason in message
    assert "\n" not in message
