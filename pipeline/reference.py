"""Parse and format container image references.

The grammar is the one of the OCI distribution reference (the Go package
github.com/distribution/reference, which Docker, containerd and Kubernetes use):

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] path
    domain     := host [ ":" port ]
    path       := component ( "/" component )*     lowercase letters and digits,
                                                   separated by ".", "_", "__" or "-"+
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest     := algorithm ":" hex                 sha256 needs 64 lowercase hex digits

The first part of a name is a registry host only when it contains "." or ":",
is "localhost", or has an uppercase letter. Otherwise it is the first path
component, as in "shop/web".
"""

import re
from dataclasses import dataclass, replace

from pipeline.errors import PipelineError

_MAX_NAME_LENGTH = 255

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = re.compile(rf"{_HOST}(?::[0-9]+)?")
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")

# Lengths fixed by the OCI image specification for the registered algorithms.
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha512": 128}

# Docker Hub is the registry of a reference without a host; these names mean it too.
_DOCKER_HUB = "docker.io"
_DOCKER_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}


class InvalidReferenceError(PipelineError):
    """A text is not a valid image reference."""


@dataclass(frozen=True)
class ImageReference:
    """An image reference split into registry, path, tag and digest, as written."""

    registry: str | None
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """Registry and path joined, without tag or digest: "registry.example.com:5000/shop/web"."""
        return f"{self.registry}/{self.path}" if self.registry else self.path

    @property
    def normalized_repository(self) -> str:
        """Repository in the long form that Kubernetes compares: "nginx" becomes "docker.io/library/nginx"."""
        registry = self.registry or _DOCKER_HUB
        path = self.path
        if registry in _DOCKER_HUB_ALIASES:
            registry = _DOCKER_HUB
            if "/" not in path:
                path = f"library/{path}"
        return f"{registry}/{path}"

    def with_tag(self, tag: str, digest: str | None = None) -> "ImageReference":
        """Return this repository with the given tag and digest; the old digest never carries over."""
        return replace(self, tag=tag, digest=digest)

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_image_reference(text: str) -> ImageReference:
    """Parse text such as "registry.example.com:5000/shop/web:7d41e0c@sha256:…" into an ImageReference.

    Raises InvalidReferenceError with one line naming the text and the part that is wrong.
    """
    if not isinstance(text, str) or not text:
        raise InvalidReferenceError(f"invalid image reference {text!r}: it is empty; give one such as registry.example.com/shop/web:7d41e0c")

    name, digest = _split_digest(text)
    name, tag = _split_tag(text, name)
    registry, path = _split_registry(text, name)
    return ImageReference(registry=registry, path=path, tag=tag, digest=digest)


def _split_digest(text: str) -> tuple[str, str | None]:
    name, at, digest = text.partition("@")
    if not at:
        return text, None
    if not _DIGEST.fullmatch(digest):
        raise _invalid(text, f"digest {digest!r} is not algorithm:hex (such as sha256: and 64 hex digits)")
    algorithm, _, hex_digits = digest.partition(":")
    expected_length = _DIGEST_HEX_LENGTHS.get(algorithm)
    if expected_length is not None and not re.fullmatch(rf"[0-9a-f]{{{expected_length}}}", hex_digits):
        raise _invalid(text, f"a {algorithm} digest needs {expected_length} lowercase hex digits, got {len(hex_digits)}")
    return name, digest


def _split_tag(text: str, name: str) -> tuple[str, str | None]:
    # A ":" after the last "/" starts the tag; one before it belongs to a registry port.
    last_slash = name.rfind("/")
    colon = name.find(":", last_slash + 1)
    if colon < 0:
        return name, None
    tag = name[colon + 1 :]
    if not _TAG.fullmatch(tag):
        raise _invalid(text, f"tag {tag!r} must match [A-Za-z0-9_][A-Za-z0-9_.-]* and be at most 128 characters")
    return name[:colon], tag


def _split_registry(text: str, name: str) -> tuple[str | None, str]:
    if not name:
        raise _invalid(text, "the repository name is empty")
    if len(name) > _MAX_NAME_LENGTH:
        raise _invalid(text, f"the repository name is longer than {_MAX_NAME_LENGTH} characters")

    first, slash, rest = name.partition("/")
    is_host = slash and ("." in first or ":" in first or first == "localhost" or first != first.lower())
    registry, path = (first, rest) if is_host else (None, name)

    if registry is not None and not _DOMAIN.fullmatch(registry):
        raise _invalid(text, f"registry {registry!r} is not a host name with an optional port")
    if not _PATH.fullmatch(path):
        raise _invalid(
            text,
            f"repository path {path!r} must be lowercase letters and digits in /-separated components "
            "(separators . _ __ -)",
        )
    return registry, path


def _invalid(text: str, reason: str) -> InvalidReferenceError:
    return InvalidReferenceError(f"invalid image reference {text!r}: {reason}")
