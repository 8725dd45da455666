"""The test job's `coverage:` expression, read the way GitLab reads it (RE2, last matching line)."""

import os

import pytest

from tests.ci.gitlab_rules import coverage_pattern, extract_coverage
from tests.ci.helpers import CI_JOB_FOLDER, load_ci_file


@pytest.fixture(scope="module")
def pattern() -> str:
    """Return the test job's coverage expression; skip without google-re2, but fail in CI (CI=true)."""
    try:
        import re2  # noqa: F401
    except ImportError:
        message = "google-re2 is not installed; pip install -e '.[dev]' installs it"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return coverage_pattern(load_ci_file(CI_JOB_FOLDER / "test.yml")["test"]["coverage"])


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        pytest.param("TOTAL  10  5  50%", "50", id="whole"),
        pytest.param("TOTAL   25   0   4   0   100.00%", "100.00", id="hundred-branch-columns"),
        pytest.param("TOTAL     16      2      4      1  87.50%", "87.50", id="decimal-branch-columns"),
        pytest.param("TOTAL  200  1  99.5%", "99.5", id="one-decimal"),
        pytest.param("TOTAL  3  3  0%", "0", id="zero"),
        pytest.param("TOTAL  10  0  100%", "100", id="hundred-whole"),
        pytest.param("TOTAL  10  5  50.00%  ", "50.00", id="trailing-spaces"),
        pytest.param("TOTAL  10  5  50.00%\r", "50.00", id="carriage-return"),
    ],
)
def test_coverage_regex_reads_total_line(pattern, log, expected):
    assert extract_coverage(log, pattern) == expected


def test_coverage_regex_takes_last_total_line(pattern):
    log = "TOTAL  10  5  50%\nsome output\nTOTAL  10  1  90.00%\n"
    assert extract_coverage(log, pattern) == "90.00"


def test_coverage_regex_ignores_lines_after_total(pattern):
    log = (
        "Name          Stmts   Miss Branch BrPart    Cover   Missing\n"
        "app/main.py      16      2      4      1  87.50%   12-14\n"
        "TOTAL            16      2      4      1  87.50%\n"
        "coverage gate passed: 87.50% >= 80%\n"
        "Required test coverage of 80% reached. Total coverage: 87.50%\n"
    )
    assert extract_coverage(log, pattern) == "87.50"


@pytest.mark.parametrize(
    "log",
    [
        pytest.param("app/main.py      16      0  100.00%", id="file-row"),
        pytest.param("Required test coverage of 80% reached. Total coverage: 87.50%", id="pytest-cov-summary"),
        pytest.param("coverage gate passed: 100.00% >= 80%", id="gate-line"),
        pytest.param("SUBTOTAL  10  5  50%", id="other-word"),
        pytest.param("$ echo TOTAL 10 5 50%", id="echoed-command"),
    ],
)
def test_coverage_regex_ignores_other_lines(pattern, log):
    assert extract_coverage(log, pattern) is None
