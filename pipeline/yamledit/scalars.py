"""Write a new value into a scalar's text so that every YAML reader still sees a string.

Kubernetes reads manifests with sigs.k8s.io/yaml (go-yaml v2 rules, YAML 1.1
with Go's number parsing), Helm and many tools with YAML 1.2 core rules, and
this project with PyYAML (YAML 1.1). A plain scalar such as `4651090`, `1e10`,
`0812345`, `on` or `12:30` is a number, a boolean or a time in at least one of
them, so such a value is written double-quoted whatever the old style was.
"""

import re
from dataclasses import dataclass

import yaml
from yaml.resolver import Resolver

from pipeline.yamledit import ManifestError

_STR_TAG = "tag:yaml.org,2002:str"
_PYYAML_RESOLVER = Resolver()

# YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution).
_CORE_NON_STRINGS = re.compile(
    r"""
      ~ | null | Null | NULL | true | True | TRUE | false | False | FALSE
    | [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+
    | [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
    | [-+]?(\.inf|\.Inf|\.INF) | \.nan|\.NaN|\.NAN
    """,
    re.VERBOSE,
)

# go-yaml v2's resolve.go (gopkg.in/yaml.v2; sigs.k8s.io/yaml forks v2.4.0 of
# it): its table of fixed words, then Go's ParseInt/ParseUint with base
# prefixes after removing "_", then floats, binary numbers and timestamps.
_GO_YAML_WORDS = {
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
    "true", "True", "TRUE", "false", "False", "FALSE",
    "on", "On", "ON", "off", "Off", "OFF",
    "~", "null", "Null", "NULL",
    ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF",
    "<<",
}
_GO_INT = re.compile(r"[-+]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")
_GO_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_GO_BINARY = re.compile(r"-?0b[01]+")
_GO_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ].*)?")

# Characters a plain scalar may hold here without any chance of being read as
# an indicator, a comment or a flow separator. Anything else is quoted.
_PLAIN_SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./@:+-]*")


@dataclass(frozen=True)
class Splice:
    """Replacement of text[start:end] by `text`; offsets count characters of the decoded file."""

    start: int
    end: int
    text: str


def is_plain_string(value: str) -> bool:
    """Return whether `value` written as a plain scalar reads as the same string in YAML 1.1, 1.2 and go-yaml."""
    if not _PLAIN_SAFE.fullmatch(value) or value.endswith(":"):
        return False
    if _PYYAML_RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) != _STR_TAG:
        return False
    if _CORE_NON_STRINGS.fullmatch(value):
        return False
    return not _is_go_yaml_non_string(value)


def _is_go_yaml_non_string(value: str) -> bool:
    if value in _GO_YAML_WORDS:
        return True
    if not (value[0].isdigit() or value[0] in "+-."):
        return False
    without_underscores = value.replace("_", "")
    return bool(
        _GO_INT.fullmatch(without_underscores)
        or _GO_FLOAT.fullmatch(without_underscores)
        or _GO_BINARY.fullmatch(without_underscores)
        or _GO_TIMESTAMP.fullmatch(value)
    )


def quote_double(value: str) -> str:
    """Return `value` as a double-quoted YAML scalar."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def render_value(value: str, style: str | None) -> str:
    """Return the text for `value` in the old scalar's style, or double-quoted when that style would change its type."""
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if style == '"':
        return quote_double(value)
    return value if is_plain_string(value) else quote_double(value)


def scalar_value_start(text: str, node: yaml.ScalarNode) -> int:
    """Return where the scalar's own text starts, after any `&anchor` and `!tag` properties and comments."""
    position = node.start_mark.index
    end = node.end_mark.index
    while position < end and text[position] in "&!":
        while position < end and not text[position].isspace():
            position += 1
        position = _skip_space_and_comments(text, position, end)
    return position


def _skip_space_and_comments(text: str, position: int, end: int) -> int:
    while position < end:
        if text[position].isspace():
            position += 1
        elif text[position] == "#":
            while position < end and text[position] not in "\r\n":
                position += 1
        else:
            break
    return position


def replace_scalar(text: str, node: yaml.ScalarNode, value: str, *, where: str) -> Splice:
    """Return the splice that writes `value` over the scalar `node`, keeping its anchor, tag and quoting style.

    `where` names the file and line for the error raised when the scalar is a
    block scalar (`|` or `>`) or carries a tag other than `!!str`.
    """
    start = scalar_value_start(text, node)
    properties = text[node.start_mark.index : start]
    tags = [token for token in properties.split() if token.startswith("!")]
    if tags and tags != ["!!str"] and node.tag != _STR_TAG:
        raise ManifestError(f"{where}: the value has the explicit tag {tags[0]}; remove the tag and run again")

    style = node.style or None
    if style in ("|", ">"):
        raise ManifestError(f"{where}: the value is a block scalar ({style}); write it on one line and run again")
    if tags == ["!!str"] and style is None and _PLAIN_SAFE.fullmatch(value):
        # An explicit !!str already makes any plain text a string.
        return Splice(start, node.end_mark.index, value)
    rendered = render_value(value, style)
    if start == node.end_mark.index and start > 0 and text[start - 1] not in " \t\r\n":
        # An empty value (`digest:`) starts right after the indicator, and YAML needs a space there.
        rendered = " " + rendered
    return Splice(start, node.end_mark.index, rendered)
