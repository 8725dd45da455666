"""How GitLab reads a job's coverage and a Cobertura report, re-implemented to test the pipeline against.

Both follow GitLab's own code (gitlab-org/gitlab):
- `extract_coverage`: lib/gitlab/ci/trace/stream.rb, `extract_coverage`.
  The `coverage:` value without its slashes is compiled with RE2. The log is
  read from the last line backwards; the first line (from the end) with a
  match wins. In that line GitLab takes the last capture group of the last
  match (the whole match when the expression has no group), and from that
  text the first number.
- `cobertura_file_paths`: lib/gitlab/ci/parsers/coverage/sax_document.rb.
  Each `<source>` is cut after "<project full path>/"; a source that does not
  contain it is dropped. A class `filename` joined with a kept source must be
  a file of the repository; with no kept source, `filename` is used as is.
  Merge request diffs show coverage only for the paths this returns.
- `rule_matches`: lib/gitlab/ci/pipeline/expression/, for the `rules:if`
  syntax the workflow uses (gitlab-ci-local 4.73 does not apply
  workflow:rules, so the tests evaluate them with this).
"""

import re
import xml.etree.ElementTree as ElementTree

# GitLab's pattern for the number inside the matched text.
_NUMBER = re.compile(r"\d+(\.\d+)?")


def coverage_pattern(coverage_value: str) -> str:
    """Return the regular expression inside a `coverage: '/.../'` value, as GitLab strips the slashes."""
    if len(coverage_value) < 2 or not coverage_value.startswith("/") or not coverage_value.endswith("/"):
        raise ValueError(f"coverage must be written /regex/, got {coverage_value!r}")
    return coverage_value[1:-1]


def extract_coverage(log: str, pattern: str) -> str | None:
    """Return the coverage number GitLab reads from the job log, as text, or None when nothing matches."""
    import re2

    regex = re2.compile(pattern)
    for line in reversed(log.split("\n")):
        line = line.removesuffix("\r")
        matches = list(regex.finditer(line))
        if not matches:
            continue
        last = matches[-1]
        text = last.group(regex.groups) if regex.groups else last.group(0)
        if text is None:
            # Ruby raises on nil here, and GitLab's rescue then returns no coverage at all.
            return None
        number = _NUMBER.search(text)
        if number:
            return number.group(0)
    return None


def cobertura_file_paths(xml_text: str, project_path: str, worktree_paths: set[str]) -> list[str | None]:
    """Return, for each class in the report, the repository path GitLab assigns to it (None: unmatched)."""
    root = ElementTree.fromstring(xml_text)
    sources = []
    for source in root.iter("source"):
        text = (source.text or "").replace("\\", "/")
        _, separator, rest = text.partition(f"{project_path}/")
        if separator and rest:
            sources.append(rest)

    paths: list[str | None] = []
    for element in root.iter("class"):
        filename = element.get("filename", "")
        if not sources:
            paths.append(filename)
            continue
        joined = [f"{source.rstrip('/')}/{filename}" for source in sources]
        paths.append(next((path for path in joined if path in worktree_paths), None))
    return paths


# Tokens of the subset of GitLab's `rules:if` syntax that the workflow uses.
_RULE_TOKEN = re.compile(r"""\s*(?:(?P<variable>\$[A-Za-z_][A-Za-z0-9_]*)|(?P<string>"[^"]*"|'[^']*')"""
                         r"""|(?P<operator>==|!=|&&|\|\||\(|\)))""")


def rule_matches(expression: str, variables: dict[str, str]) -> bool:
    """Evaluate a `rules:if` expression of variables, quoted strings, ==, !=, &&, || and parentheses.

    This follows lib/gitlab/ci/pipeline/expression/ in gitlab-org/gitlab: a
    variable evaluates to its value or nil, == and != compare values, && and
    || use Ruby's truthiness (only nil and false are false, so an empty string
    is true inside them), and the whole expression matches when its value is
    present (not nil, false or blank). && binds tighter than ||. Regular
    expressions (=~), null and ! are not supported and raise ValueError.
    """
    tokens = _tokenize(expression)
    value, position = _parse_or(tokens, 0, variables)
    if position != len(tokens):
        raise ValueError(f"unexpected {tokens[position][1]!r} in rules:if expression {expression!r}")
    return _present(value)


def workflow_creates_pipeline(rules: list[dict], variables: dict[str, str]) -> bool:
    """Return whether workflow:rules let GitLab create the pipeline: the first matching rule decides."""
    for rule in rules:
        if "if" in rule and not rule_matches(rule["if"], variables):
            continue
        return rule.get("when", "always") != "never"
    return False


def _truthy(value) -> bool:
    """Ruby's truthiness: only nil (None) and false are false."""
    return value is not None and value is not False


def _present(value) -> bool:
    """Rails' present?: not nil, not false, and not a blank string."""
    if isinstance(value, str):
        return value.strip() != ""
    return _truthy(value)


def _tokenize(expression: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(expression.rstrip()):
        match = _RULE_TOKEN.match(expression, position)
        if not match:
            raise ValueError(f"unsupported syntax at {expression[position:]!r} in rules:if expression")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _parse_or(tokens, position, variables):
    value, position = _parse_and(tokens, position, variables)
    while position < len(tokens) and tokens[position][1] == "||":
        right, position = _parse_and(tokens, position + 1, variables)
        value = value if _truthy(value) else right
    return value, position


def _parse_and(tokens, position, variables):
    value, position = _parse_comparison(tokens, position, variables)
    while position < len(tokens) and tokens[position][1] == "&&":
        right, position = _parse_comparison(tokens, position + 1, variables)
        value = right if _truthy(value) else value
    return value, position


def _parse_comparison(tokens, position, variables):
    left, position = _parse_operand(tokens, position, variables)
    if position < len(tokens) and tokens[position][1] in ("==", "!="):
        operator = tokens[position][1]
        right, position = _parse_operand(tokens, position + 1, variables)
        equal = left == right
        return (equal if operator == "==" else not equal), position
    return left, position


def _parse_operand(tokens, position, variables):
    if position >= len(tokens):
        raise ValueError("rules:if expression ends where an operand was expected")
    kind, text = tokens[position]
    if text == "(":
        value, position = _parse_or(tokens, position + 1, variables)
        if position >= len(tokens) or tokens[position][1] != ")":
            raise ValueError("rules:if expression has an unclosed parenthesis")
        return value, position + 1
    if kind == "variable":
        return variables.get(text[1:]), position + 1
    if kind == "string":
        return text[1:-1], position + 1
    raise ValueError(f"unexpected {text!r} in rules:if expression")
