"""Edits that set_image collects before it checks them across files, and helpers that build them."""

from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline.reference import ImageReference, InvalidReferenceError, parse_image_reference
from pipeline.yamledit import ManifestError
from pipeline.yamledit.documents import DocumentIndex, Segments, YamlFile, format_path, scalar_text
from pipeline.yamledit.scalars import Splice, replace_scalar


@dataclass
class ImageChange:
    """One value that set_image changes, or a matching value that is already up to date."""

    file: Path
    line: int
    location: str
    old: str
    new: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} {self.location} {self.old} -> {self.new}"


@dataclass
class Edit:
    """The splices that make one change; none when the value is already up to date."""

    change: ImageChange
    splices: list[Splice]


@dataclass
class Candidate:
    """A matching value before the checks that apply across all files."""

    yaml_file: YamlFile
    edit: Edit
    old_tag: str | None = None
    kustomization_entry: bool = False  # An images: entry of a kustomization, rather than a container or a key.


def scalar_edit(yaml_file: YamlFile, node: yaml.ScalarNode, new: str, location: str) -> Edit:
    """Return the edit that writes `new` over the scalar `node`, reported at `location`."""
    splices = set_if_different(yaml_file, node, new)
    start = splices[0].start if splices else node.start_mark.index
    line = yaml_file.line_of(start)
    return Edit(ImageChange(yaml_file.path, line, location, node.value, new), splices)


def set_if_different(yaml_file: YamlFile, node: yaml.ScalarNode, new: str) -> list[Splice]:
    """Return the splice that writes `new` over `node`, or no splice when the text would stay the same."""
    splice = replace_scalar(yaml_file.text, node, new, where=position_of(yaml_file, node))
    if yaml_file.text[splice.start : splice.end] == splice.text:
        return []
    return [splice]


def reject_shared(yaml_file: YamlFile, index: DocumentIndex, chain, location: str) -> None:
    """Raise when a value found by matching comes from an anchor, an alias or a `<<` merge."""
    sharing = index.sharing(chain)
    target = chain[-1][1]
    through_merge = any(path and path[-1] == "<<" for path, _ in chain)
    if sharing.alias_of is None and not sharing.used_by and not through_merge:
        return
    definition = format_path(sharing.alias_of or chain[-1][0])
    line = alias_line(chain, sharing.alias_path) if sharing.alias_path else target.start_mark.line + 1
    raise ManifestError(
        f"{yaml_file.path}:{line}: the image of {location} is shared through a YAML anchor, "
        f"alias or merge key; edit the anchored value with --key {definition}, or write the image out in each place"
    )


def alias_line(chain, alias_path: Segments) -> int:
    """Return the line of the key whose value is the alias at alias_path, because the aliased node's marks point at its anchor."""
    parents = [node for path, node in chain if path == alias_path[:-1]]
    segment = alias_path[-1]
    if parents and isinstance(parents[0], yaml.MappingNode):
        for key_node, _ in parents[0].value:
            is_merge = key_node.tag == "tag:yaml.org,2002:merge"
            if (segment == "<<" and is_merge) or (not is_merge and scalar_text(key_node) == segment):
                return key_node.start_mark.line + 1
    return chain[-1][1].start_mark.line + 1


def parse_or_none(text: str) -> ImageReference | None:
    """Return text parsed as an image reference, or None when it is not one (such as a template)."""
    try:
        return parse_image_reference(text)
    except InvalidReferenceError:
        return None


def same_repository(reference: ImageReference, image: ImageReference) -> bool:
    """Return whether both name the same repository, counting "nginx" and "docker.io/library/nginx" as one."""
    return reference.normalized_repository == image.normalized_repository


def position_of(yaml_file: YamlFile, node: yaml.Node) -> str:
    """Return "FILE:LINE" of the node, for error messages."""
    return f"{yaml_file.path}:{node.start_mark.line + 1}"
