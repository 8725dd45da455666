"""Set an image in Kubernetes manifests, kustomizations and Helm values by splicing the original text.

The files are parsed only to find each value and its position. The new value
replaces exactly that span, so comments, quoting, indentation, key order,
document markers, line endings, a byte-order mark and the final newline stay
as they were. Three kinds of target exist:

- containers, initContainers and ephemeralContainers of workloads, matched by
  image repository (exact, never a prefix) or by container name;
- `images:` entries of kustomization files (`newTag`, `digest`);
- any scalar named by a dotted key such as `image.tag` (Helm values).

Every file is checked before any is written, and a failure writes nothing.
"""

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipeline.reference import ImageReference, InvalidReferenceError, parse_image_reference
from pipeline.yamledit import ManifestError
from pipeline.yamledit.documents import (
    DocumentIndex,
    Segments,
    YamlFile,
    children,
    find_duplicate_key,
    format_path,
    gc_paused,
    load_yaml_file,
    mapping_get,
    merged_mappings,
    parse_path,
    scalar_text,
)
from pipeline.yamledit.diff import unified_diff
from pipeline.yamledit.scalars import Splice, render_value, replace_scalar

__all__ = ["EditResult", "ImageChange", "ManifestError", "retarget_image", "set_image"]

YAML_SUFFIXES = (".yaml", ".yml")
WORKLOAD_KINDS = {
    "Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob",
    "ReplicationController", "PodTemplate",
}
# Container list key -> the word used for it in change locations ("initContainer migrate").
CONTAINER_LISTS = {"containers": "container", "initContainers": "initContainer", "ephemeralContainers": "ephemeralContainer"}
# Mappings under these keys never hold a pod template, so the search skips them.
_NOT_POD_TEMPLATE_KEYS = {"metadata", "status", "selector", "resources", "securityContext", "affinity"}
KUSTOMIZATION_FILE_NAMES = {"kustomization.yaml", "kustomization.yml", "Kustomization"}
# Maximum number of found images that the no-match error lists; it counts the rest as "and N more".
_MAX_LISTED_IMAGES = 10


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
class EditResult:
    """Result of set_image: the changes, one unified diff of all files, and whether files were written."""

    changes: list[ImageChange]
    diff: str
    written: bool
    # Matching values that already held the requested image.
    unchanged: list[ImageChange] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        """True when every matching value already contains the requested image."""
        return not self.changes


@dataclass
class _Edit:
    change: ImageChange
    splices: list[Splice]


@dataclass
class _Candidate:
    """A matching value before the checks that apply across all files."""

    yaml_file: YamlFile
    edit: _Edit
    old_tag: str | None = None


def set_image(
    paths,
    image: ImageReference,
    *,
    container: str | None = None,
    key: str | None = None,
    dry_run: bool = False,
) -> EditResult:
    """Set `image` wherever it belongs under `paths` (files, or folders searched for .yaml/.yml).

    Without `key`, containers whose image has the same repository (or the
    container named `container`) and matching kustomization `images:` entries
    are set. With `key` (dotted, such as `image.tag`), that value is set in
    every document that has it. Raises ManifestError, and writes nothing, when
    any file cannot be read or edited safely or when nothing matches.
    """
    if not image.tag and not image.digest:
        raise ManifestError(f"image reference {image} has neither a tag nor a digest; add one, as in {image}:7d41e0c")
    key_path = parse_path(key) if key else None
    with gc_paused():
        return _set_image(_yaml_files(paths), image, image, container, key, key_path, dry_run)


def retarget_image(paths, image: ImageReference, *, from_repository: str | None = None, dry_run: bool = False) -> EditResult:
    """Point the containers and kustomization `images:` entries under `paths` at another repository.

    The demo uses it to move the sample manifests to its local registry.
    `from_repository` names the repository to replace. Without it, the files
    must contain exactly one image repository. Kustomization entries get
    `newName` as well as the tag and digest.
    """
    if not image.tag and not image.digest:
        raise ManifestError(f"image reference {image} has neither a tag nor a digest; add one, as in {image}:7d41e0c")
    with gc_paused():
        files = _yaml_files(paths)
        if from_repository is None:
            references = _found_references([load_yaml_file(path) for path in files])
            found = sorted({reference.normalized_repository: reference.repository for reference in references}.values())
            if len(found) != 1:
                listed = ", ".join(found) or "none"
                raise ManifestError(
                    f"cannot tell which image to retarget: found {len(found)} repositories ({listed}); name one with from_repository"
                )
            from_repository = found[0]
        match = parse_image_reference(from_repository)
        return _set_image(files, image, match, None, None, None, dry_run)


def _set_image(paths: list[Path], image: ImageReference, match: ImageReference, container, key, key_path, dry_run: bool) -> EditResult:
    """Set image in every target whose repository is match's (or the named container, or the key)."""
    files = [load_yaml_file(path) for path in paths]
    candidates: list[_Candidate] = []
    for yaml_file in files:
        for document in yaml_file.documents():
            if key_path is not None:
                found = _key_candidates(yaml_file, document, image, key_path, key)
            else:
                found = _container_candidates(yaml_file, document, image, match, container)
                found += _kustomization_candidates(yaml_file, document, image, match)
            if found:
                _check_duplicate_keys(yaml_file, document)
                candidates.extend(found)

    if not candidates and key_path is not None:
        names = ", ".join(str(f.path) for f in files)
        raise ManifestError(f"key {key} not found in any document of {names}; check --key (a dotted path such as image.tag)")
    if not candidates:
        raise ManifestError(_no_match_message(files, match, container))
    if key_path is None and container is None:
        _check_same_tag(candidates, match)

    edits_by_file: dict[Path, tuple[YamlFile, list[_Edit]]] = {}
    for candidate in candidates:
        edits_by_file.setdefault(candidate.yaml_file.path, (candidate.yaml_file, []))[1].append(candidate.edit)

    changes, unchanged, new_texts, diffs = [], [], {}, []
    for yaml_file, edits in edits_by_file.values():
        edits.sort(key=lambda edit: edit.change.line)
        splices = sorted({splice for edit in edits for splice in edit.splices}, key=lambda s: (s.start, s.end))
        new_text = _apply_splices(yaml_file, splices)
        for edit in edits:
            (changes if edit.splices else unchanged).append(edit.change)
        if new_text != yaml_file.text:
            new_texts[yaml_file.path] = (yaml_file, new_text)
            diffs.append(_unified_diff(yaml_file, splices))

    written = False
    if new_texts and not dry_run:
        _write_all(list(new_texts.values()))
        written = True
    return EditResult(changes=changes, diff="".join(diffs), written=written, unchanged=unchanged)


# --- finding files -----------------------------------------------------------


def _yaml_files(paths) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            in_folder = sorted(
                candidate
                for candidate in path.rglob("*")
                if candidate.suffix in YAML_SUFFIXES
                and candidate.is_file()
                and not any(part.startswith(".") for part in candidate.relative_to(path).parts)
            )
            if not in_folder:
                raise ManifestError(f"folder {path} contains no .yaml or .yml file; give the folder that contains the manifests")
            found.extend(in_folder)
        elif path.is_file():
            found.append(path)
        else:
            raise ManifestError(f"manifest path {path} not found; give an existing file or folder")
    if not found:
        raise ManifestError("no manifest path given; give at least one file or folder")
    return list(dict.fromkeys(found))


# --- containers of workloads -------------------------------------------------


def _container_candidates(
    yaml_file: YamlFile, document: yaml.Node, image: ImageReference, match: ImageReference, container: str | None
) -> list[_Candidate]:
    if scalar_text(mapping_get(document, "kind")) not in WORKLOAD_KINDS:
        return []
    candidates = []
    index = None
    for chain, list_key, position in _containers(document):
        container_node = chain[-1][1]
        name = scalar_text(mapping_get(container_node, "name")) or f"{list_key}[{position}]"
        found = _lookup(chain, "image")
        if found is None or not isinstance(found[-1][1], yaml.ScalarNode):
            continue
        old = found[-1][1].value
        old_reference = _parse_or_none(old)
        matches = old_reference is not None and _same_repository(old_reference, match)
        if (container is not None and name != container) or (container is None and not matches):
            continue

        index = index or DocumentIndex.for_document(yaml_file, document)
        location = f"{CONTAINER_LISTS[list_key]} {name}"
        _reject_shared(yaml_file, index, found, location)
        # Keep the manifest's spelling of the repository (such as "nginx" for docker.io/library/nginx).
        keep_repository = old_reference is not None and _same_repository(old_reference, image)
        new = str(old_reference.with_tag(image.tag, image.digest)) if keep_repository else str(image)
        edit = _scalar_edit(yaml_file, found[-1][1], new, location)
        old_tag = old_reference.tag if old_reference else None
        candidates.append(_Candidate(yaml_file, edit, old_tag))
    return candidates


def _containers(document: yaml.Node):
    """Yield (chain to the container mapping, list key, index) for every container of a workload document.

    Pod templates sit at different depths (spec, spec.template.spec,
    spec.jobTemplate.spec.template.spec), so every mapping with a container
    list key is taken as a pod spec. Only mappings are searched, because no
    workload kind keeps its pod template inside a list.
    """
    stack = [[((), document)]]
    seen: set[int] = set()
    while stack:
        chain = stack.pop()
        path, node = chain[-1]
        if id(node) in seen or not isinstance(node, yaml.MappingNode):
            continue
        seen.add(id(node))
        descend = []
        for segment, child in children(node):
            if segment in CONTAINER_LISTS and isinstance(child, yaml.SequenceNode):
                list_chain = chain + [(path + (segment,), child)]
                for position, item in enumerate(child.value):
                    if isinstance(item, yaml.MappingNode):
                        yield list_chain + [(path + (segment, position), item)], segment, position
            elif isinstance(child, yaml.MappingNode) and segment not in _NOT_POD_TEMPLATE_KEYS:
                descend.append(chain + [(path + (segment,), child)])
        stack.extend(reversed(descend))


# --- kustomization images ----------------------------------------------------


def _is_kustomization(yaml_file: YamlFile, document: yaml.Node) -> bool:
    if not isinstance(document, yaml.MappingNode):
        return False
    kind = scalar_text(mapping_get(document, "kind"))
    return kind == "Kustomization" or (kind is None and yaml_file.path.name in KUSTOMIZATION_FILE_NAMES)


def _kustomization_candidates(
    yaml_file: YamlFile, document: yaml.Node, image: ImageReference, match: ImageReference
) -> list[_Candidate]:
    if not _is_kustomization(yaml_file, document):
        return []
    images = mapping_get(document, "images")
    if not isinstance(images, yaml.SequenceNode):
        return []
    candidates = []
    index = None
    for position, entry in enumerate(images.value):
        name = scalar_text(mapping_get(entry, "newName")) or scalar_text(mapping_get(entry, "name"))
        reference = _parse_or_none(name or "")
        if reference is None or not _same_repository(reference, match):
            continue
        index = index or DocumentIndex.for_document(yaml_file, document)
        chain = [((), document), (("images",), images), (("images", position), entry)]
        location = f"images[{position}] {scalar_text(mapping_get(entry, 'name'))}"
        _reject_shared(yaml_file, index, chain, location)
        edit = _kustomization_edit(yaml_file, entry, image, location)
        old_tag = scalar_text(mapping_get(entry, "newTag"))
        candidates.append(_Candidate(yaml_file, edit, old_tag))
    return candidates


def _kustomization_edit(yaml_file: YamlFile, entry: yaml.MappingNode, image: ImageReference, location: str) -> _Edit:
    """Return the edit that makes an images entry carry exactly image's tag and digest, never a stale one."""
    new_tag = mapping_get(entry, "newTag")
    digest = mapping_get(entry, "digest")
    old = _kustomization_value(entry)
    splices: list[Splice] = []

    new_name = mapping_get(entry, "newName")
    current = _parse_or_none(scalar_text(new_name) or scalar_text(mapping_get(entry, "name")) or "")
    if current is None or not _same_repository(current, image):
        if new_name is not None:
            splices += _set_if_different(yaml_file, new_name, image.repository)
        else:
            splices.append(_insert_pair(yaml_file, entry, "newName", render_value(image.repository, None)))
        old = f"{current.repository if current else '?'}{old}"

    if image.tag:
        if new_tag is not None:
            splices += _set_if_different(yaml_file, new_tag, image.tag)
        elif digest is not None and not image.digest:
            # Turn the stale `digest: …` pair into `newTag: …` in place.
            splices.append(_rename_key(yaml_file, entry, "digest", "newTag"))
            splices.append(replace_scalar(yaml_file.text, digest, image.tag, where=_where(yaml_file, digest)))
            digest = None
        else:
            splices.append(_insert_pair(yaml_file, entry, "newTag", render_value(image.tag, None)))
    elif new_tag is not None:
        splices.append(_delete_pair(yaml_file, entry, "newTag"))

    if image.digest:
        if digest is not None:
            splices += _set_if_different(yaml_file, digest, image.digest)
        else:
            splices.append(_insert_pair(yaml_file, entry, "digest", render_value(image.digest, None)))
    elif digest is not None:
        splices.append(_delete_pair(yaml_file, entry, "digest"))

    new = _format_tag_and_digest(image.tag, image.digest)
    line = yaml_file.line_of(entry.start_mark.index)
    return _Edit(ImageChange(yaml_file.path, line, location, old, new), splices)


def _kustomization_value(entry: yaml.MappingNode) -> str:
    return _format_tag_and_digest(scalar_text(mapping_get(entry, "newTag")), scalar_text(mapping_get(entry, "digest")))


def _format_tag_and_digest(tag: str | None, digest: str | None) -> str:
    text = ""
    if tag:
        text += f":{tag}"
    if digest:
        text += f"@{digest}"
    return text or "(no tag)"


def _rename_key(yaml_file: YamlFile, mapping: yaml.MappingNode, old_key: str, new_key: str) -> Splice:
    for key_node, _ in mapping.value:
        if scalar_text(key_node) == old_key:
            if key_node.style:
                raise ManifestError(f"{_where(yaml_file, key_node)}: the key {old_key} is quoted; unquote it and run again")
            return Splice(key_node.start_mark.index, key_node.end_mark.index, new_key)
    raise ManifestError(f"{_where(yaml_file, mapping)}: key {old_key} not found")  # pragma: no cover


def _insert_pair(yaml_file: YamlFile, mapping: yaml.MappingNode, key: str, value_text: str) -> Splice:
    """Return the splice that adds `key: value` after the last pair of `mapping`, in its block or flow style."""
    last_key, last_value = mapping.value[-1]
    if not isinstance(last_value, yaml.ScalarNode):
        raise ManifestError(f"{_where(yaml_file, mapping)}: cannot add {key} after a nested value; add {key}: {value_text} by hand")
    text = yaml_file.text
    if mapping.flow_style:
        return Splice(last_value.end_mark.index, last_value.end_mark.index, f", {key}: {value_text}")
    line_end = _line_end(text, last_value.end_mark.index)
    indent = " " * last_key.start_mark.column
    newline = "\r\n" if "\r\n" in text else "\n"
    if line_end == len(text):
        return Splice(line_end, line_end, f"{newline}{indent}{key}: {value_text}")
    next_line = line_end + len(newline)
    return Splice(next_line, next_line, f"{indent}{key}: {value_text}{newline}")


def _delete_pair(yaml_file: YamlFile, mapping: yaml.MappingNode, key: str) -> Splice:
    """Return the splice that removes `key: value` (with its end-of-line comment) from `mapping`."""
    text = yaml_file.text
    pairs = mapping.value
    position = next(i for i, (key_node, _) in enumerate(pairs) if scalar_text(key_node) == key)
    key_node, value_node = pairs[position]
    if mapping.flow_style:
        if position > 0:
            return Splice(pairs[position - 1][1].end_mark.index, value_node.end_mark.index, "")
        return Splice(key_node.start_mark.index, pairs[position + 1][0].start_mark.index, "")
    line_start = text.rfind("\n", 0, key_node.start_mark.index) + 1
    if text[line_start : key_node.start_mark.index].strip():
        raise ManifestError(
            f"{_where(yaml_file, key_node)}: cannot remove {key} because it shares its line with other text; "
            f"put {key} on its own line and run again"
        )
    line_end = _line_end(text, value_node.end_mark.index)
    if line_end < len(text):
        line_end += 1
    return Splice(line_start, line_end, "")


def _line_end(text: str, index: int) -> int:
    """Return the index of the line break (\\r\\n or \\n) that ends the line containing `index`, or len(text)."""
    end = text.find("\n", index)
    if end < 0:
        return len(text)
    return end - 1 if end > 0 and text[end - 1] == "\r" else end


# --- dotted keys (Helm values and other YAML) ---------------------------------


def _key_candidates(
    yaml_file: YamlFile, document: yaml.Node, image: ImageReference, key_path: Segments, key: str
) -> list[_Candidate]:
    chain = _resolve(document, key_path)
    if chain is None:
        return []
    target = chain[-1][1]
    if not isinstance(target, yaml.ScalarNode):
        raise ManifestError(
            f"{_where(yaml_file, target)}: --key {key} is a mapping or a list, not a value; "
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


def _resolve(document: yaml.Node, key_path: Segments) -> list[tuple[Segments, yaml.Node]] | None:
    """Return the chain of (path, node) from the root to the node at key_path, following `<<` merges, or None."""
    chain = [((), document)]
    for segment in key_path:
        path, node = chain[-1]
        if isinstance(segment, int):
            if not isinstance(node, yaml.SequenceNode) or segment >= len(node.value):
                return None
            chain.append((path + (segment,), node.value[segment]))
            continue
        found = _lookup(chain, segment)
        if found is None:
            return None
        chain = found
    return chain


def _lookup(chain: list[tuple[Segments, yaml.Node]], key: str) -> list[tuple[Segments, yaml.Node]] | None:
    """Extend chain (ending at a mapping) to the value of `key`, looking through `<<` merges as YAML does."""
    path, node = chain[-1]
    value = mapping_get(node, key)
    if value is not None:
        return chain + [(path + (key,), value)]
    if not isinstance(node, yaml.MappingNode):
        return None
    for merged in merged_mappings(node):
        found = _lookup(chain + [(path + ("<<",), merged)], key)
        if found is not None:
            return found
    return None


def _key_edits(yaml_file, chain, image: ImageReference, key_path: Segments, location: str) -> list[_Candidate]:
    target = chain[-1][1]
    parent = chain[-2][1] if len(chain) > 1 else None
    where = _where(yaml_file, target)
    old = target.value
    last = key_path[-1]

    if last == "digest":
        if not image.digest:
            raise ManifestError(f"{where}: --key {format_path(key_path)} is a digest but image {image} has none; add @sha256:…")
        return [_Candidate(yaml_file, _scalar_edit(yaml_file, target, image.digest, location))]

    old_reference = _parse_or_none(old) if any(mark in old for mark in "/:@") else None
    if old_reference is not None:
        if not _same_repository(old_reference, image):
            raise ManifestError(f"{where}: {format_path(key_path)} contains image {old}, not {image.repository}; check --image and --key")
        new = str(old_reference.with_tag(image.tag, image.digest))
        return [_Candidate(yaml_file, _scalar_edit(yaml_file, target, new, location), old_reference.tag)]

    if not image.tag:
        raise ManifestError(f"{where}: --key {format_path(key_path)} contains a tag but image {image} has none; add :TAG")
    _check_sibling_repository(yaml_file, parent, image, where)
    candidates = [_Candidate(yaml_file, _scalar_edit(yaml_file, target, image.tag, location), old)]

    # A Helm chart that also has image.digest would keep running the old image.
    sibling_digest = mapping_get(parent, "digest") if parent is not None else None
    if isinstance(sibling_digest, yaml.ScalarNode) and (sibling_digest.value or image.digest):
        digest_location = f"key {format_path(key_path[:-1] + ('digest',))}"
        new_digest = image.digest or ""
        candidates.append(_Candidate(yaml_file, _scalar_edit(yaml_file, sibling_digest, new_digest, digest_location)))
    return candidates


def _check_sibling_repository(yaml_file: YamlFile, parent, image: ImageReference, where: str) -> None:
    repository = scalar_text(mapping_get(parent, "repository")) if parent is not None else None
    if not repository:
        return
    registry = scalar_text(mapping_get(parent, "registry"))
    written = f"{registry.rstrip('/')}/{repository}" if registry else repository
    reference = _parse_or_none(written)
    if reference is None or not _same_repository(reference, image):
        raise ManifestError(
            f"{where}: the repository next to this tag is {written}, not {image.repository}; check --image and --key"
        )


def _alias_message(yaml_file: YamlFile, chain, key: str, sharing) -> str:
    definition = format_path(sharing.alias_of)
    via = format_path(sharing.alias_path)
    how = "a merge key (<<)" if sharing.alias_path[-1] == "<<" else "an alias"
    line = _alias_line(chain, sharing.alias_path)
    return (
        f"{yaml_file.path}:{line}: --key {key} reaches the value through {how} at {via}, "
        f"so writing it there would split it from its anchor; use --key {definition} to edit the anchored value"
    )


def _alias_line(chain, alias_path: Segments) -> int:
    """Return the line of the key whose value is the alias at alias_path, because the aliased node's marks point at its anchor."""
    parents = [node for path, node in chain if path == alias_path[:-1]]
    segment = alias_path[-1]
    if parents and isinstance(parents[0], yaml.MappingNode):
        for key_node, _ in parents[0].value:
            is_merge = key_node.tag == "tag:yaml.org,2002:merge"
            if (segment == "<<" and is_merge) or (not is_merge and scalar_text(key_node) == segment):
                return key_node.start_mark.line + 1
    return chain[-1][1].start_mark.line + 1


# --- shared checks -----------------------------------------------------------


def _reject_shared(yaml_file: YamlFile, index: DocumentIndex, chain, location: str) -> None:
    """Raise when a value found by matching comes from an anchor, an alias or a `<<` merge."""
    sharing = index.sharing(chain)
    target = chain[-1][1]
    through_merge = any(path and path[-1] == "<<" for path, _ in chain)
    if sharing.alias_of is None and not sharing.used_by and not through_merge:
        return
    definition = format_path(sharing.alias_of or chain[-1][0])
    line = _alias_line(chain, sharing.alias_path) if sharing.alias_path else target.start_mark.line + 1
    raise ManifestError(
        f"{yaml_file.path}:{line}: the image of {location} is shared through a YAML anchor, "
        f"alias or merge key; edit the anchored value with --key {definition}, or write the image out in each place"
    )


def _check_same_tag(candidates: list[_Candidate], image: ImageReference) -> None:
    """Raise when matching values carry different tags, because one of them may be pinned on purpose."""
    by_tag: dict[str, ImageChange] = {}
    for candidate in candidates:
        if candidate.old_tag is not None:
            by_tag.setdefault(candidate.old_tag, candidate.edit.change)
    if len(by_tag) > 1:
        listed = ", ".join(f"{change.location} at {change.file}:{change.line} has {tag}" for tag, change in by_tag.items())
        raise ManifestError(
            f"the images of {image.repository} carry different tags ({listed}); pass --container NAME to choose one"
        )


def _check_duplicate_keys(yaml_file: YamlFile, document: yaml.Node) -> None:
    duplicate = find_duplicate_key(document)
    if duplicate is not None:
        key, path, first_line, second_line = duplicate
        mapping = format_path(path) or "the document root"
        raise ManifestError(
            f"{yaml_file.path}: duplicate key {key!r} in {mapping} at lines {first_line} and {second_line}; "
            "YAML readers keep only one of them, so remove the wrong one and run again"
        )


def _found_images(files: list[YamlFile]) -> list[tuple[str, str]]:
    """Return (image, where) for every container image and kustomization `images:` entry in files."""
    found = []
    for yaml_file in files:
        for document in yaml_file.documents():
            if scalar_text(mapping_get(document, "kind")) in WORKLOAD_KINDS:
                for chain, list_key, _ in _containers(document):
                    image_node = mapping_get(chain[-1][1], "image")
                    name = scalar_text(mapping_get(chain[-1][1], "name"))
                    if isinstance(image_node, yaml.ScalarNode):
                        found.append((image_node.value, f"{CONTAINER_LISTS[list_key]} {name}"))
            if _is_kustomization(yaml_file, document):
                images = mapping_get(document, "images")
                for entry in images.value if isinstance(images, yaml.SequenceNode) else []:
                    name = scalar_text(mapping_get(entry, "newName")) or scalar_text(mapping_get(entry, "name"))
                    if name:
                        found.append((name, "kustomization images"))
    return found


def _found_references(files: list[YamlFile]) -> list[ImageReference]:
    references = (_parse_or_none(image) for image, _ in _found_images(files))
    return [reference for reference in references if reference is not None]


def _no_match_message(files: list[YamlFile], image: ImageReference, container: str | None) -> str:
    found = [f"{value} ({where})" for value, where in _found_images(files)]
    target = f"container {container}" if container else f"image {image.repository}"
    names = ", ".join(str(f.path) for f in files)
    if not found:
        return f"no {target} in {names}: no container or kustomization image found; check the paths or use --key"
    listed = "; ".join(found[:_MAX_LISTED_IMAGES])
    if len(found) > _MAX_LISTED_IMAGES:
        listed += f"; and {len(found) - _MAX_LISTED_IMAGES} more"
    return f"no {target} in {names}; images found: {listed}"


# --- editing and writing -----------------------------------------------------


def _scalar_edit(yaml_file: YamlFile, node: yaml.ScalarNode, new: str, location: str) -> _Edit:
    splices = _set_if_different(yaml_file, node, new)
    start = splices[0].start if splices else node.start_mark.index
    line = yaml_file.line_of(start)
    return _Edit(ImageChange(yaml_file.path, line, location, node.value, new), splices)


def _set_if_different(yaml_file: YamlFile, node: yaml.ScalarNode, new: str) -> list[Splice]:
    splice = replace_scalar(yaml_file.text, node, new, where=_where(yaml_file, node))
    if yaml_file.text[splice.start : splice.end] == splice.text:
        return []
    return [splice]


def _apply_splices(yaml_file: YamlFile, splices: list[Splice]) -> str:
    """Return the file's text with the splices applied, or raise when two of them overlap."""
    text = yaml_file.text
    pieces = []
    position = 0
    for splice in splices:
        if splice.start < position:
            raise ManifestError(f"{yaml_file.path}:{yaml_file.line_of(splice.start)}: two edits overlap; set the values one at a time")
        pieces.append(text[position : splice.start])
        pieces.append(splice.text)
        position = splice.end
    pieces.append(text[position:])
    return "".join(pieces)


def _unified_diff(yaml_file: YamlFile, splices: list[Splice]) -> str:
    path = yaml_file.path
    old_label, new_label = (str(path), str(path)) if path.is_absolute() else (f"a/{path}", f"b/{path}")
    return unified_diff(yaml_file.text, splices, old_label, new_label, yaml_file.line_starts)


def _write_all(files: list[tuple[YamlFile, str]]) -> None:
    """Write every file atomically, and put back the files already written when one write fails."""
    written: list[YamlFile] = []
    try:
        for yaml_file, text in files:
            _write_atomically(yaml_file.path, yaml_file.encode(text), yaml_file.mode)
            written.append(yaml_file)
    except OSError as error:
        for yaml_file in written:
            _write_atomically(yaml_file.path, yaml_file.raw, yaml_file.mode)
        raise ManifestError(f"cannot write {error.filename}: {error.strerror}; no file was changed") from None


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write data to a temporary file in path's folder and rename it over path, keeping path's mode."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode & 0o7777)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


# --- small helpers -----------------------------------------------------------


def _parse_or_none(text: str) -> ImageReference | None:
    try:
        return parse_image_reference(text)
    except InvalidReferenceError:
        return None


def _same_repository(reference: ImageReference, image: ImageReference) -> bool:
    return reference.normalized_repository == image.normalized_repository


def _where(yaml_file: YamlFile, node: yaml.Node) -> str:
    return f"{yaml_file.path}:{node.start_mark.line + 1}"

