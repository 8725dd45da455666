"""Tests of the coverage gate behind `inv test`, on a small real project run by real pytest.

The project under tests/pipeline/data/shopcalc has a package of 10 statements,
of which its 9 passing tests reach 5, and 19 fully executed test statements.
Measured over the package it is at 50%; counting the test files would lift
the total to 82.76%, above an 80% gate, which is the fault the gate prevents.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from invoke import Context

from pipeline.errors import CommandError
from pipeline.testgate import CoverageGateError, pytest_summary, run_tests

DATA = Path(__file__).parent / "data" / "shopcalc"
REPO_ROOT = Path(__file__).resolve().parents[2]

GATE_CONFIG = """
[tool.coverage.run]
source = [{source}]

[tool.coverage.report]
fail_under = 80
precision = 2
"""


def make_project(tmp_path: Path, source: str) -> Path:
    project = tmp_path / "shopcalc"
    shutil.copytree(DATA, project)
    with open(project / "pyproject.toml", "a", encoding="utf-8") as handle:
        handle.write(GATE_CONFIG.format(source=source))
    return project


def test_gate_measures_package_not_tests(tmp_path, capsys):
    project = make_project(tmp_path, '"shopcalc"')

    with pytest.raises(CoverageGateError) as raised:
        run_tests(Context(), test_paths=["tests"], reports_dir="reports", project_dir=project)

    message = str(raised.value)
    assert "coverage of shopcalc is 50.00%" in message
    assert "below the gate of 80%" in message
    assert "\n" not in message
    output = capsys.readouterr().out
    assert "measured files: src/shopcalc/__init__.py, src/shopcalc/pricing.py" in output
    assert "tests/test_pricing.py" not in output.split("measured files:")[1].splitlines()[0]


def test_gate_writes_reports_when_failing(tmp_path):
    project = make_project(tmp_path, '"shopcalc"')

    with pytest.raises(CoverageGateError):
        run_tests(Context(), test_paths=["tests"], reports_dir="out", project_dir=project)

    assert (project / "out" / "junit.xml").is_file()
    assert (project / "out" / "coverage.xml").is_file()
    assert (project / "out" / "coverage-html" / "index.html").is_file()


@pytest.mark.parametrize("source", ['"shopcalc", "tests"', '"tests"'], ids=["package-and-tests", "tests-only"])
def test_gate_rejects_measured_test_files(tmp_path, source):
    project = make_project(tmp_path, source)

    with pytest.raises(CoverageGateError) as raised:
        run_tests(Context(), test_paths=["tests"], project_dir=project)

    assert "coverage measured test files (tests/test_pricing.py)" in str(raised.value)


def test_gate_rejects_empty_measurement(tmp_path):
    project = make_project(tmp_path, '"nonexistent_package"')

    with pytest.raises(CoverageGateError) as raised:
        run_tests(Context(), test_paths=["tests"], project_dir=project)

    assert "coverage measured no files" in str(raised.value)


def test_gate_passes_at_threshold(tmp_path, capsys):
    project = make_project(tmp_path, '"shopcalc"')
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("fail_under = 80", "fail_under = 50"))

    gate = run_tests(Context(), test_paths=["tests"], project_dir=project)

    assert gate.percent == 50.0
    assert "coverage gate passed: 50.00% >= 50%" in capsys.readouterr().out


def test_failing_test_stops_with_pytest_status(tmp_path):
    project = make_project(tmp_path, '"shopcalc"')
    test_file = project / "tests" / "test_pricing.py"
    test_file.write_text(test_file.read_text().replace("== 50\n", "== 51\n", 1))

    with pytest.raises(CommandError) as raised:
        run_tests(Context(), test_paths=["tests"], project_dir=project)

    assert raised.value.exit_code == 1
    assert "tests failed (1 failed, 8 passed)" in str(raised.value)
    assert (project / "reports" / "junit.xml").is_file()


def test_no_tests_collected_fails(tmp_path):
    project = make_project(tmp_path, '"shopcalc"')
    (project / "tests" / "empty").mkdir()

    with pytest.raises(CommandError) as raised:
        run_tests(Context(), test_paths=["tests/empty"], project_dir=project)

    assert raised.value.exit_code == 5


@pytest.mark.parametrize(
    ("output", "summary"),
    [
        ("x\n===== 1 failed, 8 passed in 0.12s =====\n", "1 failed, 8 passed"),
        ("1 failed, 8 passed in 0.12s\n", "1 failed, 8 passed"),
        ("no summary here\n", ""),
    ],
)
def test_pytest_summary_strips_timing(output, summary):
    assert pytest_summary(output) == summary


def test_inv_test_below_gate_prints_one_line(tmp_path):
    """The real `inv test` command ends with one line on stderr and pytest's gate status."""
    project = make_project(tmp_path, '"shopcalc"')
    shutil.copy(REPO_ROOT / "tasks.py", project / "tasks.py")
    (project / "invoke.yaml").write_text("test:\n  paths: [tests]\n")
    env_path = f"{REPO_ROOT}"

    completed = subprocess.run(
        [sys.executable, "-m", "invoke", "test"],
        cwd=project,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin:" + str(Path(sys.executable).parent)},
        timeout=120,
    )

    assert completed.returncode == 1
    assert completed.stderr.strip().splitlines() == [
        "error: coverage of shopcalc is 50.00%, below the gate of 80% (fail_under in pyproject.toml); "
        "add tests for the missing lines listed above"
    ]
    assert "TOTAL" in completed.stdout
