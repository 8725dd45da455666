"""Load YAML files as node graphs with marks, and answer questions about paths, anchors and keys.

Nodes come from PyYAML's composer (libyaml's when PyYAML was built with it),
so each one knows where its text starts and ends. Composition resolves an
alias to the very node of its anchor, so a node reached along two paths is
shared text: an edit there changes every place that refers to it.
"""

import codecs
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipeline.yamledit import ManifestError

# libyaml's composer is several times faster than the pure-Python one on large files.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"

# A path through a document: mapping keys (str) and sequence indexes (int); "<<" marks a merge key.
Segments = tuple[str | int, ...]


@dataclass
class YamlFile:
    """A file's decoded text (without its byte-order mark) and its documents."""

    path: Path
    raw: bytes
    bom: str
    text: str
    documents: list[yaml.Node]
    mode: int

    def line_of(self, index: int) -> int:
        """Return the 1-based line number of the character at `index` in `text`."""
        return self.text.count("\n", 0, index) + 1

    def encode(self, text: str) -> bytes:
        """Return `text` as the file's bytes, with its byte-order mark if it had one."""
        return (self.bom + text).encode("utf-8")


def load_yaml_file(path: Path) -> YamlFile:
    """Read and compose every document of `path`; raise ManifestError naming the file, line and column."""
    try:
        raw = path.read_bytes()
        mode = os.stat(path).st_mode
    except OSError as error:
        raise ManifestError(f"cannot read {path}: {error.strerror}; check the path and its permissions") from None

    bom = ""
    body = raw
    if raw.startswith(codecs.BOM_UTF8):
        # Stripped here because libyaml leaves it out of its marks and pure PyYAML counts it.
        bom, body = "\ufeff", raw[len(codecs.BOM_UTF8) :]
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ManifestError(f"{path} is not UTF-8 text (invalid byte at offset {error.start}); save it as UTF-8") from None

    try:
        documents = list(yaml.compose_all(text, Loader=_LOADER))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context or "invalid YAML"
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        if error.context and error.context_mark and error.problem:
            context_mark = error.context_mark
            problem += f" ({error.context} at line {context_mark.line + 1}, column {context_mark.column + 1})"
        raise ManifestError(f"{path}: invalid YAML{where}: {problem}; fix the file and run again") from None
    except yaml.YAMLError as error:
        reason = " ".join(str(error).split())
        raise ManifestError(f"{path}: invalid YAML: {reason}; fix the file and run again") from None
    return YamlFile(path=path, raw=raw, bom=bom, text=text, documents=[d for d in documents if d is not None], mode=mode)


def format_path(segments: Segments) -> str:
    """Return segments as `spec.template.spec.containers[0]`; keys with "." or "[" are bracket-quoted."""
    text = ""
    for segment in segments:
        if isinstance(segment, int):
            text += f"[{segment}]"
        elif "." in segment or "[" in segment:
            text += f'["{segment}"]'
        else:
            text += f".{segment}" if text else segment
    return text


def parse_path(dotted: str) -> Segments:
    """Parse `image.tag` or `containers[0].image` into segments; raise ManifestError when it is malformed."""
    segments: list[str | int] = []
    for part in dotted.split("."):
        key, bracket, rest = part.partition("[")
        if not key and not (bracket and segments):
            raise ManifestError(f"invalid --key {dotted!r}: empty key between dots; write it as image.tag")
        if key:
            segments.append(key)
        while bracket:
            index, closing, rest = rest.partition("]")
            if not closing or not index.isdigit():
                raise ManifestError(f"invalid --key {dotted!r}: a [index] must hold digits, as in containers[0].image")
            segments.append(int(index))
            if rest and not rest.startswith("["):
                raise ManifestError(f"invalid --key {dotted!r}: expected . or [ after ]")
            bracket, rest = (rest[:1], rest[1:]) if rest else ("", "")
    return tuple(segments)


def scalar_text(node: yaml.Node | None) -> str | None:
    """Return a scalar node's value, or None for any other node."""
    return node.value if isinstance(node, yaml.ScalarNode) else None


def mapping_get(node: yaml.Node, key: str) -> yaml.Node | None:
    """Return the value of `key` written directly in mapping `node` (not through `<<`), or None."""
    if not isinstance(node, yaml.MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key and key_node.tag != _MERGE_TAG:
            return value_node
    return None


def merged_mappings(node: yaml.MappingNode) -> list[yaml.MappingNode]:
    """Return the mappings that `node` merges with `<<`, in the order YAML looks keys up in them."""
    merged = []
    for key_node, value_node in node.value:
        if key_node.tag != _MERGE_TAG:
            continue
        if isinstance(value_node, yaml.MappingNode):
            merged.append(value_node)
        elif isinstance(value_node, yaml.SequenceNode):
            merged.extend(item for item in value_node.value if isinstance(item, yaml.MappingNode))
    return merged


def children(node: yaml.Node) -> Iterator[tuple[str | int, yaml.Node]]:
    """Yield (segment, child) for the values of a mapping ("<<" for merge keys) or the items of a sequence."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                yield "<<", value_node
            elif isinstance(key_node, yaml.ScalarNode):
                yield key_node.value, value_node
    elif isinstance(node, yaml.SequenceNode):
        yield from enumerate(node.value)


@dataclass
class Sharing:
    """How an edited node relates to anchors: reached through an alias, or defined once and used elsewhere."""

    alias_of: Segments | None = None
    alias_path: Segments | None = None
    used_by: list[Segments] = field(default_factory=list)


class DocumentIndex:
    """Every path at which each node of one document is referenced; the first path is where its text is."""

    def __init__(self, root: yaml.Node):
        self._references: dict[int, list[Segments]] = {}
        self._walk(root, ())

    def _walk(self, node: yaml.Node, path: Segments) -> None:
        # Iterative, because generated manifests can nest deeper than Python's recursion limit allows.
        stack = [(node, path)]
        while stack:
            current, current_path = stack.pop()
            references = self._references.setdefault(id(current), [])
            references.append(current_path)
            if len(references) > 1:
                continue
            stack.extend(
                (child, current_path + (segment,)) for segment, child in reversed(list(children(current)))
            )

    def sharing(self, chain: list[tuple[Segments, yaml.Node]]) -> Sharing:
        """Return how the last node of `chain` (root first, with the path each node was reached at) is shared."""
        result = Sharing()
        target_path = chain[-1][0]
        for reached_path, node in chain:
            references = self._references.get(id(node), [reached_path])
            definition = references[0]
            if reached_path != definition:
                remainder = target_path[len(reached_path) :]
                result.alias_of = definition + remainder
                result.alias_path = reached_path
                return result
            result.used_by.extend(path for path in references[1:] if path not in result.used_by)
        return result


def find_duplicate_key(root: yaml.Node) -> tuple[str, Segments, int, int] | None:
    """Return (key, mapping path, first line, second line) for the first key written twice in one mapping.

    Merge keys (`<<`) may repeat and are not duplicates. Keys are compared by
    resolved tag and value, so `a` and `"a"` are the same key and `1` and `"1"` are not.
    """
    visited: set[int] = set()
    stack: list[tuple[yaml.Node, Segments]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: dict[tuple[str, str], int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                    continue
                identity = (key_node.tag, key_node.value)
                line = key_node.start_mark.line + 1
                if identity in seen:
                    return key_node.value, path, seen[identity], line
                seen[identity] = line
        stack.extend((child, path + (segment,)) for segment, child in children(node))
    return None
