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

from pipeline.reference import ImageReference, parse_image_reference
from pipeline.yamledit import ManifestError
from pipeline.yamledit.diff import unified_diff
from pipeline.yamledit.documents import YamlFile, find_duplicate_key, format_path, gc_paused, load_yaml_file, mapping_get, parse_path, scalar_text
from pipeline.yamledit.edits import Candidate, Edit, ImageChange, parse_or_none
from pipeline.yamledit.kustomize import is_kustomization, kustomization_candidates
from pipeline.yamledit.scalars import Splice
from pipeline.yamledit.values import key_candidates
from pipeline.yamledit.workloads import CONTAINER_LISTS, WORKLOAD_KINDS, container_candidates, containers

__all__ = ["EditResult", "ImageChange", "ManifestError", "retarget_image", "set_image"]

YAML_SUFFIXES = (".yaml", ".yml")
# Maximum number of found images that the no-match error lists; it counts the rest as "and N more".
_MAX_LISTED_IMAGES = 10


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


def set_image(
    paths,
    image: ImageReference,
    *,
    container: str | None = None,
    key: str | None = None,
    dry_run: bool = False,
) -> EditResult:
    """Set `image` wherever it belongs under `paths` (files, or folders searched for .yaml/.yml).

    Without `key`, containers whose image has the same repository and
    matching kustomization `images:` entries are set. With `container`, only
    the container of that name is set, and a kustomization entry for the same
    image raises, because it would override the container. With `key` (dotted, such as `image.tag`), that value is set in
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
    candidates = _find_candidates(files, image, match, container, key, key_path)

    if not candidates and key_path is not None:
        names = ", ".join(str(f.path) for f in files)
        raise ManifestError(f"key {key} not found in any document of {names}; check --key (a dotted path such as image.tag)")
    if container is not None:
        _reject_unselectable_entries(files, image, match, container)
    if not candidates:
        raise ManifestError(_no_match_message(files, match, container))
    if key_path is None and container is None:
        _check_same_tag(candidates, match)

    return _apply_edits(candidates, dry_run)


def _find_candidates(files: list[YamlFile], image, match, container, key, key_path) -> list[Candidate]:
    """Return the matching values of every document, checking each matching document for duplicate keys."""
    candidates: list[Candidate] = []
    for yaml_file in files:
        for document in yaml_file.documents():
            if key_path is not None:
                found = key_candidates(yaml_file, document, image, key_path, key)
            else:
                found = container_candidates(yaml_file, document, image, match, container)
                # A kustomization images: entry has no container name, so --container cannot select it.
                if container is None:
                    found += kustomization_candidates(yaml_file, document, image, match)
            if found:
                _check_duplicate_keys(yaml_file, document)
                candidates.extend(found)
    return candidates


def _apply_edits(candidates: list[Candidate], dry_run: bool) -> EditResult:
    """Splice each file's edits into its text, build the diff, and write the changed files unless dry_run."""
    edits_by_file: dict[Path, tuple[YamlFile, list[Edit]]] = {}
    for candidate in candidates:
        edits_by_file.setdefault(candidate.yaml_file.path, (candidate.yaml_file, []))[1].append(candidate.edit)

    changes, unchanged, new_texts, diffs = [], [], {}, []
    for yaml_file, edits in edits_by_file.values():
        edits.sort(key=lambda edit: edit.change.line)
        # dict.fromkeys drops repeats but keeps the order, so that two insertions at one place come out in code order.
        unique = dict.fromkeys(splice for edit in edits for splice in edit.splices)
        splices = sorted(unique, key=lambda splice: (splice.start, splice.end))
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
    # The same file named twice (say, by a folder and by its own path) is edited once.
    unique = {os.path.realpath(path): path for path in reversed(found)}
    return list(reversed(unique.values()))


# --- checks across documents and files ---------------------------------------


def _check_same_tag(candidates: list[Candidate], image: ImageReference) -> None:
    """Raise when matching values carry different tags, because one of them may be pinned on purpose."""
    by_tag: dict[str, ImageChange] = {}
    for candidate in candidates:
        if candidate.old_tag is not None:
            by_tag.setdefault(candidate.old_tag, candidate.edit.change)
    if len(by_tag) > 1:
        listed = ", ".join(f"{change.location} at {change.file}:{change.line} has {tag}" for tag, change in by_tag.items())
        in_kustomizations = any(candidate.kustomization_entry for candidate in candidates)
        # --container cannot select a kustomization images: entry, so only a narrower --path can.
        fix = "narrow --path to one overlay or file" if in_kustomizations else "pass --container NAME to choose one"
        raise ManifestError(f"the images of {image.repository} carry different tags ({listed}); {fix}")


def _reject_unselectable_entries(files: list[YamlFile], image: ImageReference, match: ImageReference, container: str) -> None:
    """Raise when a kustomization images: entry also matches, because --container leaves it unchanged."""
    entries = [
        candidate.edit.change
        for yaml_file in files
        for document in yaml_file.documents()
        for candidate in kustomization_candidates(yaml_file, document, image, match)
    ]
    if entries:
        first = entries[0]
        raise ManifestError(
            f"--container {container} selects containers only, but kustomization {first.location} at "
            f"{first.file}:{first.line} sets the same image and overrides the container; "
            "drop --container and narrow --path to one overlay"
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
                for chain, list_key, _ in containers(document):
                    image_node = mapping_get(chain[-1][1], "image")
                    name = scalar_text(mapping_get(chain[-1][1], "name"))
                    if isinstance(image_node, yaml.ScalarNode):
                        found.append((image_node.value, f"{CONTAINER_LISTS[list_key]} {name}"))
            if is_kustomization(yaml_file, document):
                images = mapping_get(document, "images")
                for entry in images.value if isinstance(images, yaml.SequenceNode) else []:
                    name = scalar_text(mapping_get(entry, "newName")) or scalar_text(mapping_get(entry, "name"))
                    if name:
                        found.append((name, "kustomization images"))
    return found


def _found_references(files: list[YamlFile]) -> list[ImageReference]:
    references = (parse_or_none(image) for image, _ in _found_images(files))
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
    for yaml_file, text in files:
        try:
            _write_atomically(yaml_file.path, yaml_file.encode(text), yaml_file.mode)
        except OSError as error:
            for done in written:
                _write_atomically(done.path, done.raw, done.mode)
            raise ManifestError(f"cannot write {yaml_file.path}: {error.strerror}; no file was changed") from None
        written.append(yaml_file)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write data to a temporary file in path's folder and rename it over path, keeping path's mode.

    A symbolic link is followed, so the link stays and its target gets the new text.
    """
    path = Path(os.path.realpath(path))
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
