"""Build host and registry address parsing, without any external program."""

import pytest

from pipeline.engines import is_local_registry, registry_host
from pipeline.remote import BuildHost, RemoteError, parse_build_host


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("builder", BuildHost(user=None, host="builder", port=22)),
        ("ci@builder.example.com", BuildHost(user="ci", host="builder.example.com", port=22)),
        ("ci@10.0.0.5:2222", BuildHost(user="ci", host="10.0.0.5", port=2222)),
        ("ci@[::1]:2222", BuildHost(user="ci", host="::1", port=2222)),
    ],
    ids=["host", "user-host", "user-host-port", "ipv6"],
)
def test_parse_build_host(text, expected):
    assert parse_build_host(text) == expected


@pytest.mark.parametrize("text", ["", "ci@", "ci@host:", "ci@host:99999", "a b@host", "ci@host:ssh"])
def test_parse_build_host_rejects(text):
    with pytest.raises(RemoteError) as raised:
        parse_build_host(text)

    assert str(raised.value) == f"invalid build host {text!r}; write it as user@host or user@host:port"


@pytest.mark.parametrize(
    ("image", "host"),
    [
        ("hello-python:1", "docker.io"),
        ("shop/web:1", "docker.io"),
        ("localhost/hello-python:1", "localhost"),
        ("127.0.0.1:5000/shop/web:1", "127.0.0.1:5000"),
        ("registry.gitlab.com/shop/web:1", "registry.gitlab.com"),
    ],
)
def test_registry_host(image, host):
    assert registry_host(image) == host


@pytest.mark.parametrize(
    ("image", "local"),
    [
        ("127.0.0.1:5000/shop/web:1", True),
        ("localhost:5000/shop/web:1", True),
        ("localhost/shop/web:1", True),
        ("127.0.0.1:5000", True),
        ("registry.gitlab.com/shop/web:1", False),
        ("shop/web:1", False),
        ("127.0.0.1.example.com/web:1", False),
    ],
)
def test_is_local_registry(image, local):
    assert is_local_registry(image) is local


def test_in_image_failure_names_coverage_gate(tmp_path):
    from invoke.runners import Result

    from pipeline.images import in_image_failure
    from pipeline.testgate import CoverageGateError

    output = (
        "tests/app/test_main.py ..\n"
        "FAIL Required test coverage of 80% not reached. Total coverage: 50.00%\n"
        "============================== 2 passed in 0.31s ===============================\n"
    )
    result = Result(stdout=output, stderr="", command="python -m pytest", exited=1)

    error = in_image_failure(result, "localhost/hello-python:7d41e0c2-test", tmp_path)

    assert isinstance(error, CoverageGateError)
    assert str(error) == (
        "coverage gate failed inside localhost/hello-python:7d41e0c2-test: FAIL Required test coverage of 80% "
        "not reached. Total coverage: 50.00% (fail_under in pyproject.toml); add tests for the missing lines "
        "listed above"
    )


def test_in_image_failure_no_tests_collected(tmp_path):
    from invoke.runners import Result

    from pipeline.images import in_image_failure

    result = Result(stdout="no tests ran in 0.01s\n", stderr="", command="python -m pytest", exited=5)

    error = in_image_failure(result, "localhost/hello-python:7d41e0c2-test", tmp_path)

    assert str(error) == "pytest collected no tests inside localhost/hello-python:7d41e0c2-test; check tests/app in the image"
    assert error.exit_code == 5
