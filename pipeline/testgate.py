"""Run the app's tests under coverage, write the reports, and apply the coverage gate.

What is measured (`[tool.coverage.run] source_pkgs` or `source`) and the gate
(`[tool.coverage.report] fail_under`) come from the project's pyproject.toml;
this module sets neither. The percentage is read from coverage.py's own data,
never from a rendered report.
"""

import contextlib
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from invoke import Context

from pipeline.errors import CommandError, PipelineError

# pytest's exit status when it collected no test at all.
PYTEST_NO_TESTS_COLLECTED = 5
TEST_FOLDERS = ("tests", "test")


class CoverageGateError(PipelineError):
    """Coverage is below the gate, or what was measured cannot be trusted."""


@dataclass
class GateResult:
    percent: float
    fail_under: float
    precision: int
    sources: list[str]
    measured_files: list[str]

    @property
    def passed(self) -> bool:
        """Judge as coverage.py does: the percentage rounded to the report's precision must reach the gate."""
        from coverage.results import should_fail_under

        return not should_fail_under(self.percent, self.fail_under, self.precision)


def run_tests(
    c: Context,
    *,
    test_paths: list[str],
    reports_dir: str | Path = "reports",
    project_dir: str | Path = ".",
) -> GateResult:
    """Run pytest with coverage, write JUnit, Cobertura and HTML reports, and apply the gate.

    Reports are written also when tests fail, so CI can upload them. Raises
    CommandError with pytest's exit status when a test fails, and
    CoverageGateError when coverage is below the gate.
    """
    project_dir = Path(project_dir).resolve()
    reports_dir = (project_dir / reports_dir).resolve()
    reports_dir.mkdir(parents=True, exist_ok=True)
    data_file = project_dir / ".coverage"
    data_file.unlink(missing_ok=True)

    argv = [
        sys.executable, "-m", "pytest", *test_paths,
        # No value after --cov: pytest-cov measures the `source` list from pyproject.toml.
        "--cov",
        "--cov-report=",
        # The gate is applied below, after the reports exist, so pytest-cov must not apply it too.
        "--cov-fail-under=0",
        f"--junitxml={reports_dir / 'junit.xml'}",
    ]
    command = shlex.join(argv)
    # Printed by hand, because invoke's own echo wraps the command in terminal colour codes.
    print(f"$ {command}", flush=True)
    with c.cd(str(project_dir)):
        result = c.run(command, warn=True, echo=False, pty=False, in_stream=False)

    if result.exited == PYTEST_NO_TESTS_COLLECTED:
        raise CommandError(f"pytest collected no tests from {' '.join(test_paths)}; check test.paths", exit_code=5)
    if not data_file.exists():
        raise CommandError(
            f"pytest exited with status {result.exited} and wrote no coverage data to {data_file}; "
            "read the pytest output above",
            exit_code=result.exited or 1,
        )

    gate = write_reports(project_dir, reports_dir)

    if result.failed:
        summary = pytest_summary(result.stdout)
        detail = summary or f"exit status {result.exited}"
        raise CommandError(f"tests failed ({detail}); see {reports_dir / 'junit.xml'}", exit_code=result.exited)
    if not gate.passed:
        raise CoverageGateError(
            f"coverage of {', '.join(gate.sources)} is {gate.percent:.{gate.precision}f}%, below the gate of "
            f"{gate.fail_under:g}% (fail_under in pyproject.toml); add tests for the missing lines listed above"
        )
    print(f"coverage gate passed: {gate.percent:.{gate.precision}f}% >= {gate.fail_under:g}%")
    return gate


def write_reports(project_dir: Path, reports_dir: Path) -> GateResult:
    """Check what was measured, print the report with its TOTAL line, and write the XML and HTML reports."""
    import coverage

    # coverage.py resolves the relative paths in its configuration from the working directory.
    with contextlib.chdir(project_dir):
        cov = coverage.Coverage(config_file=str(project_dir / "pyproject.toml"))
        cov.load()
        sources = list(cov.get_option("run:source_pkgs") or []) + list(cov.get_option("run:source") or [])
        measured = sorted(_relative(path, project_dir) for path in cov.get_data().measured_files())
        check_measured_files(measured, project_dir)

        print("measured files: " + ", ".join(measured))
        percent = cov.report(file=sys.stdout)
        cov.xml_report(outfile=str(reports_dir / "coverage.xml"))
        cov.html_report(directory=str(reports_dir / "coverage-html"))

    print(f"reports: {reports_dir / 'junit.xml'}, {reports_dir / 'coverage.xml'}, {reports_dir / 'coverage-html'}")
    return GateResult(
        percent=percent,
        fail_under=float(cov.get_option("report:fail_under") or 0),
        precision=int(cov.get_option("report:precision") or 0),
        sources=sources,
        measured_files=measured,
    )


def check_measured_files(measured: list[str], project_dir: Path) -> None:
    """Raise CoverageGateError when nothing was measured or a test file was measured."""
    if not measured:
        raise CoverageGateError(
            f"coverage measured no files in {project_dir}; set [tool.coverage.run] source in pyproject.toml "
            "(or source_pkgs) to the package the tests import"
        )
    test_files = [path for path in measured if PurePosixPath(path).parts[0] in TEST_FOLDERS]
    if test_files:
        raise CoverageGateError(
            f"coverage measured test files ({', '.join(test_files[:3])}), which would inflate the gate; "
            "remove the tests from [tool.coverage.run] source or source_pkgs in pyproject.toml"
        )


def pytest_summary(output: str) -> str:
    """Return pytest's closing summary without its timing, for example '1 failed, 8 passed'."""
    for line in reversed(output.splitlines()):
        text = line.strip().strip("=").strip()
        if " in " in text and any(word in text for word in ("passed", "failed", "error")):
            return text.rsplit(" in ", 1)[0]
    return ""


def _relative(path: str, project_dir: Path) -> str:
    try:
        return Path(path).resolve().relative_to(project_dir).as_posix()
    except ValueError:
        return Path(path).as_posix()
