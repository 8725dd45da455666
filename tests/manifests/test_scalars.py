"""Scalar rendering: a value stays a string in YAML 1.1, YAML 1.2 core and go-yaml."""

import pytest
import yaml
from ruamel.yaml import YAML

from pipeline.yamledit.scalars import is_plain_string, render_value

# Plain scalars that some YAML reader takes for something other than a string,
# with the reader that does: 1.1 = PyYAML, 1.2 = core schema, go = go-yaml v2.
NOT_STRINGS = [
    "4651090",  # int everywhere
    "58467965",  # int everywhere
    "0123456",  # int (octal) in 1.1 and go, int in 1.2
    "0812345",  # float in go, int in 1.2
    "1e10",  # float in 1.2 and go
    "1E10",
    "0x1f",  # int everywhere
    "0o17",  # int in 1.2 and go
    "0b101",  # int in 1.1 and go
    "1_000",  # int in 1.1 and go
    "12:30",  # sexagesimal int in 1.1
    "1.5",
    "-1",
    "+1",
    ".5",
    "on", "On", "off", "yes", "no", "No", "y", "Y", "n", "N",  # booleans in 1.1 or go
    "true", "False",
    "null", "Null", "~",
    ".inf", "-.inf", ".NaN",
    "2001-12-14",  # timestamp in 1.1 and go
    "2001-12-14t21:59:43.10-05:00",
    "<<",  # merge key
    "=",  # value key in 1.1
    "",
]

STRINGS = [
    "3f9c2ab",
    "7d41e0c",
    "latest",
    "v1.2.3",
    "1.2.3",
    "1.4.0-alpine",
    "_build.7",
    "e10",
    "deadbeef",
    "registry.example.com/shop/web:4651090",
    "registry.example.com:5000/shop/web:7d41e0c@sha256:" + "ab" * 32,
    "sha256:" + "ab" * 32,
    "web",
]


@pytest.mark.parametrize("value", NOT_STRINGS)
def test_non_string_plain_rejected(value):
    assert is_plain_string(value) is False


@pytest.mark.parametrize("value", STRINGS)
def test_string_plain_accepted(value):
    assert is_plain_string(value) is True


@pytest.mark.parametrize("value", NOT_STRINGS + STRINGS)
def test_rendered_plain_value_loads_as_same_string(value):
    loaded = yaml.safe_load(f"key: {render_value(value, None)}\n")

    assert loaded["key"] == value


@pytest.mark.parametrize("value", NOT_STRINGS + STRINGS)
def test_rendered_value_is_string_in_yaml_1_2(value):
    # ruamel.yaml reads YAML 1.2 by default; PyYAML (above) reads YAML 1.1.
    loaded = YAML(typ="safe", pure=True).load(f"key: {render_value(value, None)}\n")

    assert loaded == {"key": value}


@pytest.mark.parametrize("value", NOT_STRINGS)
def test_non_string_written_double_quoted(value):
    assert render_value(value, None) == f'"{value}"'


@pytest.mark.parametrize(("style", "expected"), [("'", "'4651090'"), ('"', '"4651090"'), (None, '"4651090"')])
def test_quoted_style_kept(style, expected):
    assert render_value("4651090", style) == expected


def test_single_quote_escaped():
    assert render_value("it's", "'") == "'it''s'"


def test_double_quote_escaped():
    assert render_value('a"b\\c', '"') == '"a\\"b\\\\c"'
