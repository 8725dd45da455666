"""Property: set_image changes only the image value's span, and the data only in that value."""

import copy
import difflib
from dataclasses import dataclass

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.manifests import set_image
from pipeline.reference import parse_image_reference

REPOSITORY = "registry.example.com/shop/web"

tags = st.one_of(
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,15}", fullmatch=True),
    st.from_regex(r"[0-9]{7,8}", fullmatch=True),
    st.sampled_from(["1e10", "0x1f", "0812345", "1_000", "on", "no", "null", "0o17", "1.5", "2001-12-14"]),
)
comment_texts = st.text(alphabet=st.sampled_from(list("abz 09#:-'\"{}[],&*!|>日本語のコメント")), max_size=20)


@dataclass
class Generated:
    text: str
    image_start: int
    image_end: int
    image_path: tuple


@st.composite
def manifests(draw, old_image: str) -> Generated:
    """Draw a multi-document file with a Deployment whose container `web` has old_image."""
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    indent = " " * draw(st.sampled_from([2, 3, 4]))
    item_indent = draw(st.sampled_from(["", indent]))
    style = draw(st.sampled_from(["plain", "single", "double"]))
    flow_container = draw(st.booleans())
    image_first = draw(st.booleans())

    quoted = {"plain": old_image, "single": f"'{old_image}'", "double": f'"{old_image}"'}[style]
    chunks: list[str] = []
    position = {"start": 0}

    def comment_line(level: str) -> None:
        if draw(st.booleans()):
            chunks.append(f"{level}# {draw(comment_texts)}{newline}")

    def add(text: str) -> None:
        chunks.append(text)

    documents_before = draw(st.integers(0, 2))
    if draw(st.booleans()):
        add(f"# {draw(comment_texts)}{newline}")
    for number in range(documents_before):
        add(f"---{newline}kind: ConfigMap{newline}metadata: {{name: before{number}}}{newline}data:{newline}")
        add(f"{indent}note: {yaml.safe_dump(draw(comment_texts), default_style=chr(34)).strip()}{newline}")
        if draw(st.booleans()):
            add(f"...{newline}")

    add(f"---{newline}" if documents_before or draw(st.booleans()) else "")
    comment_line("")
    add(f"apiVersion: apps/v1{newline}kind: Deployment{newline}metadata:{newline}{indent}name: web{newline}")
    add(f"spec:{newline}{indent}template:{newline}{indent * 2}spec:{newline}")
    comment_line(indent * 3)
    level = indent * 3
    if flow_container:
        add(f"{level}containers: [{{name: web, image: ")
        position["start"] = sum(map(len, chunks))
        add(f"{quoted}, imagePullPolicy: IfNotPresent}}]")
    else:
        add(f"{level}containers:{newline}")
        item = level + item_indent
        pairs = [("name", "web"), ("image", None), ("imagePullPolicy", "IfNotPresent")]
        if image_first:
            pairs.insert(0, pairs.pop(1))
        for number, (key, value) in enumerate(pairs):
            prefix = f"{item}- " if number == 0 else f"{item}  "
            if value is None:
                add(f"{prefix}image: ")
                position["start"] = sum(map(len, chunks))
                add(quoted)
            else:
                add(f"{prefix}{key}: {value}")
            if draw(st.booleans()):
                add(f"  # {draw(comment_texts)}")
            add(newline)
            comment_line(item + "  ")
    documents_after = draw(st.integers(0, 2))
    for number in range(documents_after):
        add(f"{newline if flow_container else ''}---{newline}kind: Service{newline}metadata:{newline}{indent}name: after{number}")
        if number < documents_after - 1 or draw(st.booleans()):
            add(newline)
    if flow_container and draw(st.booleans()):
        add(newline)

    text = "".join(chunks)
    start = position["start"]
    return Generated(text, start, start + len(quoted), ("spec", "template", "spec", "containers", 0, "image"))


@st.composite
def scenarios(draw):
    old_tag = draw(tags)
    new_tag = draw(tags.filter(lambda tag: tag != old_tag))
    bom = draw(st.booleans())
    generated = draw(manifests(f"{REPOSITORY}:{old_tag}"))
    return generated, bom, old_tag, new_tag


def replace_value(documents, path, value):
    documents = copy.deepcopy(documents)
    for document in documents:
        if isinstance(document, dict) and document.get("kind") == "Deployment":
            node = document
            for segment in path[:-1]:
                node = node[segment]
            node[path[-1]] = value
    return documents


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios())
def test_set_image_changes_only_value_span(tmp_path, scenario):
    generated, bom, old_tag, new_tag = scenario
    path = tmp_path / "manifest.yaml"
    prefix = b"\xef\xbb\xbf" if bom else b""
    path.write_bytes(prefix + generated.text.encode("utf-8"))
    before = generated.text

    result = set_image([path], parse_image_reference(f"{REPOSITORY}:{new_tag}"))

    raw = path.read_bytes()
    assert raw.startswith(prefix)
    after = raw[len(prefix) :].decode("utf-8")
    suffix = before[generated.image_end :]
    assert after[: generated.image_start] == before[: generated.image_start]
    assert after.endswith(suffix)
    written_value = after[generated.image_start : len(after) - len(suffix)]
    assert yaml.safe_load(f"key: {written_value}") == {"key": f"{REPOSITORY}:{new_tag}"}
    expected = replace_value(list(yaml.safe_load_all(before)), generated.image_path, f"{REPOSITORY}:{new_tag}")
    assert list(yaml.safe_load_all(after)) == expected
    assert result.diff == difflib_diff(before, after, str(path))


def difflib_diff(before: str, after: str, label: str) -> str:
    lines = difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True), label, label)
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


@st.composite
def helm_values(draw):
    old_tag = draw(tags)
    new_tag = draw(tags.filter(lambda tag: tag != old_tag))
    style = draw(st.sampled_from(["plain", "single", "double"]))
    old_text = {"plain": old_tag, "single": f"'{old_tag}'", "double": f'"{old_tag}"'}[style]
    comment = f"  # {draw(comment_texts)}" if draw(st.booleans()) else ""
    head = f"# {draw(comment_texts)}\nimage:\n  repository: {REPOSITORY}\n  tag: "
    tail = f"{comment}\n  pullPolicy: IfNotPresent\nreplicaCount: 2\n"
    return head, old_text, tail, new_tag


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=helm_values())
def test_set_tag_by_key_stays_string(tmp_path, values):
    head, old_text, tail, new_tag = values
    path = tmp_path / "values.yaml"
    path.write_text(head + old_text + tail)

    set_image([path], parse_image_reference(f"{REPOSITORY}:{new_tag}"), key="image.tag")

    after = path.read_text()
    assert after.startswith(head)
    assert after.endswith(tail)
    assert yaml.safe_load(after)["image"]["tag"] == new_tag
