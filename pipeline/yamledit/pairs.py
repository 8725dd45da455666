"""Add, remove and rename `key: value` pairs of a YAML mapping by splicing its text."""

import yaml

from pipeline.yamledit import ManifestError
from pipeline.yamledit.documents import YamlFile, scalar_text
from pipeline.yamledit.edits import position_of
from pipeline.yamledit.scalars import Splice


def rename_key(yaml_file: YamlFile, mapping: yaml.MappingNode, old_key: str, new_key: str) -> Splice:
    """Return the splice that renames the plain key old_key of `mapping` to new_key."""
    for key_node, _ in mapping.value:
        if scalar_text(key_node) == old_key:
            if key_node.style:
                raise ManifestError(f"{position_of(yaml_file, key_node)}: the key {old_key} is quoted; unquote it and run again")
            return Splice(key_node.start_mark.index, key_node.end_mark.index, new_key)
    raise ManifestError(f"{position_of(yaml_file, mapping)}: key {old_key} not found")  # pragma: no cover


def insert_pair(yaml_file: YamlFile, mapping: yaml.MappingNode, key: str, value_text: str) -> Splice:
    """Return the splice that adds `key: value` after the last pair of `mapping`, in its block or flow style."""
    last_key, last_value = mapping.value[-1]
    if not isinstance(last_value, yaml.ScalarNode):
        raise ManifestError(f"{position_of(yaml_file, mapping)}: cannot add {key} after a nested value; add {key}: {value_text} by hand")
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


def delete_pair(yaml_file: YamlFile, mapping: yaml.MappingNode, key: str) -> Splice:
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
            f"{position_of(yaml_file, key_node)}: cannot remove {key} because it shares its line with other text; "
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
