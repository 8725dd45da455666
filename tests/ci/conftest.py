"""Fixtures for the GitLab CI tests: the environment and the repository copy that gitlab-ci-local uses."""

import os
import venv
from pathlib import Path

import pytest

from tests.ci.helpers import make_project_copy
from tests.support import require_program

# Variables of an outer CI system that must not leak into the jobs run here.
_LEAKING_PREFIXES = ("CI_", "GITLAB_", "INVOKE_", "MANIFESTS_", "GCP_", "DOCKER_", "IMAGE_", "GCL_")


@pytest.fixture(scope="session")
def job_environment(tmp_path_factory) -> dict[str, str]:
    """Return the environment for gitlab-ci-local: a virtual environment first on PATH, no outer CI variables."""
    venv_dir = tmp_path_factory.mktemp("ci-venv")
    venv.create(venv_dir, system_site_packages=True, with_pip=True)

    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(_LEAKING_PREFIXES)
    }
    environment["PATH"] = f"{venv_dir / 'bin'}{os.pathsep}{environment.get('PATH', '')}"
    environment["VIRTUAL_ENV"] = str(venv_dir)
    # setuptools is installed already; an isolated build would download it again.
    environment["PIP_NO_BUILD_ISOLATION"] = "1"
    # gitlab-ci-local reads GCL_* as its options. An empty home folder keeps a
    # developer's ~/.gitlab-ci-local/variables.yml out of the jobs.
    environment["GCL_HOME"] = str(tmp_path_factory.mktemp("gitlab-ci-local-home"))
    environment.pop("PYTHONPATH", None)
    return environment


@pytest.fixture(scope="session")
def gitlab_ci_local() -> str:
    """Return the path of gitlab-ci-local (and check rsync, which its shell executor needs)."""
    require_program("rsync")
    return require_program("gitlab-ci-local")


@pytest.fixture(scope="session")
def project_copy(tmp_path_factory) -> Path:
    """Return one repository copy shared by the tests that run jobs; each job writes its own reports."""
    return make_project_copy(tmp_path_factory.mktemp("ci-project"))
