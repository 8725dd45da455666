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
