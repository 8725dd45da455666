"""Load YAML files as node graphs with marks, and answer questions about paths, anchors and keys.

Nodes come from PyYAML's composer (libyaml's when PyYAML was built with it),
so each one records where its text starts and ends. Composition resolves an
alias to the very node of its anchor, so a node reached along two paths is
shared text: an edit there changes every place that refers to it.
"""

import bisect
import codecs
import contextlib
import functools
import gc
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipeline.yamledit import ManifestError
from pipeline.yamledit.diff import line_starts

_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_FULL_RESOLVER = yaml.resolver.Resolver()

# An alias (`*name`) after a space, a flow indicator or the start of a line. A
# file without one has no shared nodes, so the reference index can be skipped.
_ALIAS = re.compile(r"(?:^|[\s\[{,])\*[^\s\[\]{},]", re.MULTILINE)


class _KeyResolver(yaml.resolver.BaseResolver):
    """Resolve only merge keys; every other plain scalar stays a string.

    The edit never uses the type of a value: it reads the text and writes text
    whose type it checks itself. Skipping PyYAML's implicit resolution of every
    scalar halves the time to compose a large file. Keys are resolved where
    they are compared (see `find_duplicate_key`).
    """

    def resolve(self, kind, value, implicit):
        if kind is yaml.ScalarNode:
            return _MERGE_TAG if implicit[0] and value == "<<" else _STR_TAG
        return super().resolve(kind, value, implicit)

    def descend_resolver(self, current_node, current_index):
        pass

    def ascend_resolver(self):
        pass


# libyaml's parser when PyYAML was built with it; it is several times faster than the pure-Python one.
try:
    from yaml.cyaml import CParser as _Parser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _Parser = None
if _Parser is not None:

    class _Loader(_Parser, yaml.constructor.SafeConstructor, _KeyResolver):
        def __init__(self, stream):
            _Parser.__init__(self, stream)
            yaml.constructor.SafeConstructor.__init__(self)
            _KeyResolver.__init__(self)

else:  # pragma: no cover - PyYAML without libyaml

    class _Loader(
        yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer,
        yaml.constructor.SafeConstructor, _KeyResolver,
    ):
        def __init__(self, stream):
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            _KeyResolver.__init__(self)

# A path through a document: mapping keys (str) and sequence indexes (int); "<<" marks a merge key.
Segments = tuple[str | int, ...]


@dataclass
class YamlFile:
    """A file's decoded text (without its byte-order mark) and its documents."""

    path: Path
    raw: bytes
    bom: str
    text: str
    mode: int

    def documents(self) -> Iterator[yaml.Node]:
        """Compose and yield the documents one at a time, so that only one is in memory.

        Raises ManifestError with the line and column when the text is not valid YAML.
        """
        try:
            for document in yaml.compose_all(self.text, Loader=_Loader):
                if document is not None:
                    yield document
        except yaml.MarkedYAMLError as error:
            raise ManifestError(f"{self.path}: invalid YAML{_describe_yaml_error(error)}; fix the file and run again") from None
        except yaml.YAMLError as error:
            reason = " ".join(str(error).split())
            raise ManifestError(f"{self.path}: invalid YAML: {reason}; fix the file and run again") from None

    @functools.cached_property
    def line_starts(self) -> list[int]:
        """Index in `text` where each line starts."""
        return line_starts(self.text)

    @functools.cached_property
    def has_aliases(self) -> bool:
        """Whether the text may contain an alias; False means that no node is shared."""
        return _ALIAS.search(self.text) is not None

    def line_of(self, index: int) -> int:
        """Return the 1-based line number of the character at `index` in `text`."""
        return bisect.bisect_right(self.line_starts, index)

    def encode(self, text: str) -> bytes:
        """Return `text` as the file's bytes, with its byte-order mark if it had one."""
        return (self.bom + text).encode("utf-8")


def load_yaml_file(path: Path) -> YamlFile:
    """Read and decode `path`; raise ManifestError naming the file when it cannot be read or is not UTF-8."""
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
    return YamlFile(path=path, raw=raw, bom=bom, text=text, mode=mode)


def _describe_yaml_error(error: yaml.MarkedYAMLError) -> str:
    mark = error.problem_mark or error.context_mark
    text = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    text += f": {error.problem or error.context or 'invalid YAML'}"
    if error.context and error.context_mark and error.problem:
        context_mark = error.context_mark
        text += f" ({error.context} at line {context_mark.line + 1}, column {context_mark.column + 1})"
    return text


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic garbage collector, which otherwise rescans every node many times while a large file loads.

    Composing 1,000 documents (28,000 lines) took 3 to 10 times longer with it
    running (bench/set_image.py on a shared 2-core machine). Nodes form no
    cycles except through recursive aliases, which the next collection frees.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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
    """Relation of an edited node to anchors: reached through an alias, or defined once and used elsewhere."""

    alias_of: Segments | None = None
    alias_path: Segments | None = None
    used_by: list[Segments] = field(default_factory=list)


class DocumentIndex:
    """Every path at which each node of one document is referenced; the first path is where its text is."""

    @classmethod
    def for_document(cls, yaml_file: YamlFile, root: yaml.Node) -> "DocumentIndex":
        """Return the index of root, or an empty one when the file has no alias and so no shared node."""
        return cls(root) if yaml_file.has_aliases else cls(None)

    def __init__(self, root: yaml.Node | None):
        self._references: dict[int, list[Segments]] = {}
        if root is not None:
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
    YAML 1.1 tag and text, so `a` and `"a"` are the same key and `1` and `"1"` are not.
    """
    # NOTE: keys with the same value but different text, such as 1 and 0x1, are not reported.
    visited: set[int] = set()
    stack: list[tuple[yaml.Node, Segments]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: dict[tuple[str, str], int] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                    identity = (_key_tag(key_node), key_node.value)
                    line = key_node.start_mark.line + 1
                    if identity in seen:
                        return key_node.value, path, seen[identity], line
                    seen[identity] = line
                if not isinstance(value_node, yaml.ScalarNode):
                    segment = "<<" if key_node.tag == _MERGE_TAG else (scalar_text(key_node) or "?")
                    stack.append((value_node, path + (segment,)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, path + (index,)) for index, item in enumerate(node.value) if not isinstance(item, yaml.ScalarNode))
    return None


def _key_tag(key_node: yaml.ScalarNode) -> str:
    if key_node.style or key_node.tag != _STR_TAG:
        return key_node.tag
    return _resolve_plain(key_node.value)


@functools.lru_cache(maxsize=4096)
def _resolve_plain(value: str) -> str:
    return _FULL_RESOLVER.resolve(yaml.ScalarNode, value, (True, False))


def resolve_path(document: yaml.Node, key_path: Segments) -> list[tuple[Segments, yaml.Node]] | None:
    """Return the chain of (path, node) from the root to the node at key_path, following `<<` merges, or None."""
    chain = [((), document)]
    for segment in key_path:
        path, node = chain[-1]
        if isinstance(segment, int):
            if not isinstance(node, yaml.SequenceNode) or segment >= len(node.value):
                return None
            chain.append((path + (segment,), node.value[segment]))
            continue
        found = lookup(chain, segment)
        if found is None:
            return None
        chain = found
    return chain


def lookup(chain: list[tuple[Segments, yaml.Node]], key: str) -> list[tuple[Segments, yaml.Node]] | None:
    """Extend chain (ending at a mapping) to the value of `key`, looking through `<<` merges as YAML does."""
    path, node = chain[-1]
    value = mapping_get(node, key)
    if value is not None:
        return chain + [(path + (key,), value)]
    if not isinstance(node, yaml.MappingNode):
        return None
    for merged in merged_mappings(node):
        found = lookup(chain + [(path + ("<<",), merged)], key)
        if found is not None:
            return found
    return None
