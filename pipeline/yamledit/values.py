"""Values named by a dotted key, such as `image.tag` in Helm values, in any YAML file."""

import yaml

from pipeline.reference import ImageReference
from pipeline.yamledit import ManifestError
from pipeline.yamledit.documents import DocumentIndex, Segments, YamlFile, format_path, mapping_get, resolve_path, scalar_text
from pipeline.yamledit.edits import Candidate, alias_line, parse_or_none, position_of, same_repository, scalar_edit


def key_candidates(
    yaml_file: YamlFile, document: yaml.Node, image: ImageReference, key_path: Segments, key: str
) -> list[Candidate]:
    """Return the edits that set the value at key_path in document, or none when the document lacks it.

    Raises when the path reaches the value through an alias or merge key,
    because writing there would split the value from its anchor.
    """
    chain = resolve_path(document, key_path)
    if chain is None:
        return []
    target = chain[-1][1]
    if not isinstance(target, yaml.ScalarNode):
        raise ManifestError(
            f"{position_of(yaml_file, target)}: --key {key} is a mapping or a list, not a value; "
            f"name the value itself, such as {key}.tag"
        )
    index = DocumentIndex.for_document(yaml_file, document)
    location = f"key {key}"
    sharing = index.sharing(chain)
    if sharing.alias_of is not None:
        raise ManifestError(_alias_message(yaml_file, chain, key, sharing))
    if sharing.used_by:
        users = ", ".join(format_path(path) for path in sharing.used_by)
        location += f" (anchored, also used by {users})"
    return _key_edits(yaml_file, chain, image, key_path, location)


def _key_edits(yaml_file, chain, image: ImageReference, key_path: Segments, location: str) -> list[Candidate]:
    target = chain[-1][1]
    parent = chain[-2][1] if len(chain) > 1 else None
    where = position_of(yaml_file, target)
    old = target.value
    last = key_path[-1]

    if last == "digest":
        if not image.digest:
            raise ManifestError(f"{where}: --key {format_path(key_path)} is a digest but image {image} has none; add @sha256:…")
        return [Candidate(yaml_file, scalar_edit(yaml_file, target, image.digest, location))]

    old_reference = parse_or_none(old) if any(mark in old for mark in "/:@") else None
    if old_reference is not None:
        if not same_repository(old_reference, image):
            raise ManifestError(f"{where}: {format_path(key_path)} contains image {old}, not {image.repository}; check --image and --key")
        new = str(old_reference.with_tag(image.tag, image.digest))
        return [Candidate(yaml_file, scalar_edit(yaml_file, target, new, location), old_reference.tag)]

    if not image.tag:
        raise ManifestError(f"{where}: --key {format_path(key_path)} contains a tag but image {image} has none; add :TAG")
    _check_sibling_repository(yaml_file, parent, image, where)
    candidates = [Candidate(yaml_file, scalar_edit(yaml_file, target, image.tag, location), old)]

    # A Helm chart that also has image.digest would keep running the old image.
    sibling_digest = mapping_get(parent, "digest") if parent is not None else None
    if isinstance(sibling_digest, yaml.ScalarNode) and (sibling_digest.value or image.digest):
        digest_location = f"key {format_path(key_path[:-1] + ('digest',))}"
        new_digest = image.digest or ""
        candidates.append(Candidate(yaml_file, scalar_edit(yaml_file, sibling_digest, new_digest, digest_location)))
    return candidates


def _check_sibling_repository(yaml_file: YamlFile, parent, image: ImageReference, where: str) -> None:
    repository = scalar_text(mapping_get(parent, "repository")) if parent is not None else None
    if not repository:
        return
    registry = scalar_text(mapping_get(parent, "registry"))
    written = f"{registry.rstrip('/')}/{repository}" if registry else repository
    reference = parse_or_none(written)
    if reference is None or not same_repository(reference, image):
        raise ManifestError(
            f"{where}: the repository next to this tag is {written}, not {image.repository}; check --image and --key"
        )


def _alias_message(yaml_file: YamlFile, chain, key: str, sharing) -> str:
    definition = format_path(sharing.alias_of)
    via = format_path(sharing.alias_path)
    how = "a merge key (<<)" if sharing.alias_path[-1] == "<<" else "an alias"
    line = alias_line(chain, sharing.alias_path)
    return (
        f"{yaml_file.path}:{line}: --key {key} reaches the value through {how} at {via}, "
        f"so writing it there would split it from its anchor; use --key {definition} to edit the anchored value"
    )
