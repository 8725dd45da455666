"""Kustomization `images:` entries: match them by repository and set newName, newTag and digest together."""

import yaml

from pipeline.reference import ImageReference
from pipeline.yamledit.documents import DocumentIndex, YamlFile, mapping_get, scalar_text
from pipeline.yamledit.edits import (
    Candidate,
    Edit,
    ImageChange,
    parse_or_none,
    reject_shared,
    same_repository,
    set_if_different,
    position_of,
)
from pipeline.yamledit.pairs import delete_pair, insert_pair, rename_key
from pipeline.yamledit.scalars import Splice, render_value, replace_scalar

KUSTOMIZATION_FILE_NAMES = {"kustomization.yaml", "kustomization.yml", "Kustomization"}


def is_kustomization(yaml_file: YamlFile, document: yaml.Node) -> bool:
    """Return whether document is a Kustomization, by its kind or, without one, by the file name."""
    if not isinstance(document, yaml.MappingNode):
        return False
    kind = scalar_text(mapping_get(document, "kind"))
    return kind == "Kustomization" or (kind is None and yaml_file.path.name in KUSTOMIZATION_FILE_NAMES)


def kustomization_candidates(
    yaml_file: YamlFile, document: yaml.Node, image: ImageReference, match: ImageReference
) -> list[Candidate]:
    """Return the edits for the `images:` entries of a kustomization whose newName (or name) is match's repository."""
    if not is_kustomization(yaml_file, document):
        return []
    images = mapping_get(document, "images")
    if not isinstance(images, yaml.SequenceNode):
        return []
    candidates = []
    index = None
    for position, entry in enumerate(images.value):
        name = scalar_text(mapping_get(entry, "newName")) or scalar_text(mapping_get(entry, "name"))
        reference = parse_or_none(name or "")
        if reference is None or not same_repository(reference, match):
            continue
        index = index or DocumentIndex.for_document(yaml_file, document)
        chain = [((), document), (("images",), images), (("images", position), entry)]
        location = f"images[{position}] {scalar_text(mapping_get(entry, 'name'))}"
        reject_shared(yaml_file, index, chain, location)
        edit = _kustomization_edit(yaml_file, entry, image, location)
        old_tag = scalar_text(mapping_get(entry, "newTag"))
        candidates.append(Candidate(yaml_file, edit, old_tag, kustomization_entry=True))
    return candidates


def _kustomization_edit(yaml_file: YamlFile, entry: yaml.MappingNode, image: ImageReference, location: str) -> Edit:
    """Return the edit that makes an images entry carry exactly image's tag and digest, never a stale one."""
    new_tag = mapping_get(entry, "newTag")
    digest = mapping_get(entry, "digest")
    old = _kustomization_value(entry)
    splices: list[Splice] = []

    new_name = mapping_get(entry, "newName")
    current = parse_or_none(scalar_text(new_name) or scalar_text(mapping_get(entry, "name")) or "")
    if current is None or not same_repository(current, image):
        if new_name is not None:
            splices += set_if_different(yaml_file, new_name, image.repository)
        else:
            splices.append(insert_pair(yaml_file, entry, "newName", render_value(image.repository, None)))
        old = f"{current.repository if current else '?'}{old}"

    if image.tag:
        if new_tag is not None:
            splices += set_if_different(yaml_file, new_tag, image.tag)
        elif digest is not None and not image.digest:
            # Turn the stale `digest: …` pair into `newTag: …` in place.
            splices.append(rename_key(yaml_file, entry, "digest", "newTag"))
            splices.append(replace_scalar(yaml_file.text, digest, image.tag, where=position_of(yaml_file, digest)))
            digest = None
        else:
            splices.append(insert_pair(yaml_file, entry, "newTag", render_value(image.tag, None)))
    elif new_tag is not None:
        splices.append(delete_pair(yaml_file, entry, "newTag"))

    if image.digest:
        if digest is not None:
            splices += set_if_different(yaml_file, digest, image.digest)
        else:
            splices.append(insert_pair(yaml_file, entry, "digest", render_value(image.digest, None)))
    elif digest is not None:
        splices.append(delete_pair(yaml_file, entry, "digest"))

    new = _format_tag_and_digest(image.tag, image.digest)
    line = yaml_file.line_of(entry.start_mark.index)
    return Edit(ImageChange(yaml_file.path, line, location, old, new), splices)


def _kustomization_value(entry: yaml.MappingNode) -> str:
    return _format_tag_and_digest(scalar_text(mapping_get(entry, "newTag")), scalar_text(mapping_get(entry, "digest")))


def _format_tag_and_digest(tag: str | None, digest: str | None) -> str:
    text = ""
    if tag:
        text += f":{tag}"
    if digest:
        text += f"@{digest}"
    return text or "(no tag)"
