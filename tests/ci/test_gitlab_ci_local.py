"""Run jobs of the real .gitlab-ci.yml with gitlab-ci-local's shell executor in a copy of the repository."""

import json
import re
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from tests.ci.gitlab_rules import cobertura_file_paths, coverage_pattern, extract_coverage
from tests.ci.helpers import (
    DEFAULT_BRANCH,
    IMAGE_REPOSITORY,
    PROJECT_PATH,
    REPO_ROOT,
    describe,
    git,
    job_artifacts,
    job_log,
    load_ci_file,
    make_project_copy,
    run_job,
)
from tests.support import require_program

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# A digest for reports/image.env; the bump only copies it into the manifest.
IMAGE_DIGEST = "sha256:" + "ab" * 32

# Records every push the manifests repository receives: the refs and GitLab's push options.
POST_RECEIVE_HOOK = """#!/bin/sh
while read old new ref; do
  echo "ref $ref $new" >> "$GIT_DIR/push-records.txt"
done
i=0
while [ "$i" -lt "${GIT_PUSH_OPTION_COUNT:-0}" ]; do
  eval "value=\\${GIT_PUSH_OPTION_$i}"
  echo "option $value" >> "$GIT_DIR/push-records.txt"
  i=$((i + 1))
done
"""

MANIFEST_TEMPLATE = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello-python
spec:
  selector:
    matchLabels:
      app: hello-python
  template:
    metadata:
      labels:
        app: hello-python
    spec:
      containers:
        - name: app
          image: {image}  # set by inv bump
"""


def list_jobs(gitlab_ci_local: str, project: Path, environment: dict, *variables: str) -> dict[str, str]:
    """Return {job name: when} for the pipeline gitlab-ci-local would create."""
    argv = [gitlab_ci_local, "--list-json"]
    for variable in variables:
        argv += ["--variable", variable]
    completed = subprocess.run(argv, cwd=project, env=environment, capture_output=True, text=True, check=False,
                               timeout=120)
    assert completed.returncode == 0, describe(completed)
    # gitlab-ci-local prints a warning before the JSON when a predefined variable is overridden.
    start = re.search(r"^\[", completed.stdout, re.MULTILINE)
    assert start, describe(completed)
    return {job["name"]: job["when"] for job in json.loads(completed.stdout[start.start():])}


@pytest.fixture(scope="module")
def test_job(gitlab_ci_local, project_copy, job_environment) -> subprocess.CompletedProcess:
    """Run the test job once for the tests below."""
    return run_job(gitlab_ci_local, project_copy, job_environment, "test")


def test_test_job_passes(test_job):
    assert test_job.returncode == 0, describe(test_job)


def test_test_job_coverage_read_as_gitlab_reads_it(test_job, project_copy):
    pattern = coverage_pattern(load_ci_file(REPO_ROOT / ".gitlab-ci.d" / "test.yml")["test"]["coverage"])
    total = subprocess.run(
        ["python3", "-m", "coverage", "report", "--format=total"],
        cwd=project_copy, capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert extract_coverage(job_log(project_copy, "test"), pattern) == total


@pytest.mark.parametrize("report", ["reports/junit.xml", "reports/coverage.xml", "reports/coverage-html/index.html"])
def test_test_job_uploads_report(test_job, project_copy, report):
    assert (job_artifacts(project_copy, "test") / report).is_file()


def test_test_job_cobertura_paths_resolve_in_merge_requests(test_job, project_copy):
    report = (job_artifacts(project_copy, "test") / "reports" / "coverage.xml").read_text()
    tracked = set(git(project_copy, "ls-files").splitlines())
    paths = cobertura_file_paths(report, PROJECT_PATH, tracked)
    assert "app/main.py" in paths
    assert None not in paths


def test_test_job_uploads_reports_when_a_test_fails(gitlab_ci_local, job_environment, tmp_path):
    project = make_project_copy(tmp_path)
    (project / "tests" / "app" / "test_ci_failure.py").write_text(
        "def test_fails_on_purpose():\n    assert 1 == 2\n"
    )
    git(project, "add", "tests/app/test_ci_failure.py")
    git(project, "commit", "--quiet", "--no-verify", "-m", "Add a failing test")

    completed = run_job(gitlab_ci_local, project, job_environment, "test")

    assert completed.returncode != 0, describe(completed)
    junit = ElementTree.parse(job_artifacts(project, "test") / "reports" / "junit.xml").getroot()
    suite = junit if junit.tag == "testsuite" else junit.find("testsuite")
    assert suite.get("failures") == "1"


def test_pages_job_publishes_test_report(test_job, gitlab_ci_local, project_copy, job_environment):
    # The shell executor runs in the same folder, so the test job's reports/ is already there.
    completed = run_job(gitlab_ci_local, project_copy, job_environment, "coverage-pages")
    assert completed.returncode == 0, describe(completed)
    assert (job_artifacts(project_copy, "coverage-pages") / "reports" / "coverage-html" / "index.html").is_file()


def test_lint_job_passes(gitlab_ci_local, project_copy, job_environment):
    # Without kubectl the job would download it, and this machine reaches no such host.
    require_program("kubectl")
    completed = run_job(gitlab_ci_local, project_copy, job_environment, "lint-manifests")
    assert completed.returncode == 0, describe(completed)


def test_pipeline_on_default_branch(gitlab_ci_local, project_copy, job_environment):
    assert list_jobs(gitlab_ci_local, project_copy, job_environment) == {
        "test": "on_success",
        "lint-manifests": "on_success",
        "coverage-pages": "on_success",
        "build-image-buildah": "on_success",
        "build-image-dind": "never",
        "bump-manifests": "on_success",
    }


def test_pipeline_on_other_branch_skips_pages_and_bump(gitlab_ci_local, project_copy, job_environment):
    jobs = list_jobs(gitlab_ci_local, project_copy, job_environment, "CI_COMMIT_BRANCH=feature/login")
    assert jobs["coverage-pages"] == "never"
    assert jobs["bump-manifests"] == "never"
    assert jobs["test"] == "on_success"


def test_pipeline_with_dind_builder(gitlab_ci_local, project_copy, job_environment):
    jobs = list_jobs(gitlab_ci_local, project_copy, job_environment, "IMAGE_BUILDER=dind")
    assert jobs["build-image-dind"] == "on_success"
    assert jobs["build-image-buildah"] == "never"


def test_artifact_registry_template_adds_id_token(gitlab_ci_local, job_environment, tmp_path):
    project = make_project_copy(tmp_path)
    ci_file = project / ".gitlab-ci.yml"
    ci_file.write_text(ci_file.read_text().replace(
        "  # - local: .gitlab-ci.d/gcp-artifact-registry.yml", "  - local: .gitlab-ci.d/gcp-artifact-registry.yml"
    ))
    git(project, "commit", "--quiet", "--all", "--no-verify", "-m", "Push to Artifact Registry")

    completed = subprocess.run([gitlab_ci_local, "--preview"], cwd=project, env=job_environment,
                               capture_output=True, text=True, check=False, timeout=120)

    assert completed.returncode == 0, describe(completed)
    import yaml

    preview = yaml.safe_load(completed.stdout)
    for name in ("build-image-buildah", "build-image-dind"):
        assert preview[name]["id_tokens"] == {
            "GCP_ID_TOKEN": {"aud": "https://iam.googleapis.com/${GCP_WORKLOAD_IDENTITY_PROVIDER}"}
        }
        assert preview[name]["script"][-1] == "inv push"
    assert preview["variables"]["INVOKE_IMAGE_REPOSITORY"].endswith("/hello-python")


def make_manifests_repository(folder: Path, image_repository: str, base_tag: str) -> Path:
    """Create a bare manifests repository whose Deployment runs image_repository:base_tag, and return it.

    It advertises push options and records each push in push-records.txt.
    """
    bare = folder / "manifests.git"
    subprocess.run(["git", "init", "--quiet", "--bare", f"--initial-branch={DEFAULT_BRANCH}", str(bare)], check=True)
    git(bare, "config", "receive.advertisePushOptions", "true")
    hook = bare / "hooks" / "post-receive"
    hook.write_text(POST_RECEIVE_HOOK)
    hook.chmod(0o755)

    work = folder / "work"
    subprocess.run(["git", "clone", "--quiet", str(bare), str(work)], check=True, capture_output=True)
    (work / "deployment.yaml").write_text(MANIFEST_TEMPLATE.format(image=f"{image_repository}:{base_tag}"))
    git(work, "add", "deployment.yaml")
    git(work, "commit", "--quiet", "-m", "Deploy the base commit")
    git(work, "push", "--quiet", "origin", DEFAULT_BRANCH)
    (bare / "push-records.txt").unlink(missing_ok=True)
    return bare


@pytest.fixture(scope="module")
def manifests_repository(project_copy, tmp_path_factory) -> Path:
    """Return a bare manifests repository whose Deployment runs the image of the copy's first commit."""
    base_tag = git(project_copy, "rev-parse", "--short=8", "HEAD~1")
    return make_manifests_repository(tmp_path_factory.mktemp("manifests"), IMAGE_REPOSITORY, base_tag)


@pytest.fixture(scope="module")
def bump_job(gitlab_ci_local, project_copy, job_environment, manifests_repository) -> subprocess.CompletedProcess:
    """Run the bump job as it runs after the build job, which leaves reports/image.env behind."""
    if not (project_copy / "pipeline" / "gitops.py").is_file():
        pytest.skip("inv bump is not in this tree yet (pipeline/gitops.py is missing)")
    tag = git(project_copy, "rev-parse", "--short=8", "HEAD")
    reports = project_copy / "reports"
    reports.mkdir(exist_ok=True)
    (reports / "image.env").write_text(
        f"IMAGE_REFERENCE={IMAGE_REPOSITORY}:{tag}\nIMAGE_TAG={tag}\nIMAGE_DIGEST={IMAGE_DIGEST}\n"
    )
    return run_job(gitlab_ci_local, project_copy, job_environment, "bump-manifests", {
        "INVOKE_MANIFESTS_URL": manifests_repository.as_uri(),
        "INVOKE_MANIFESTS_PATH": "deployment.yaml",
        "INVOKE_IMAGE_REPOSITORY": IMAGE_REPOSITORY,
    })


def push_records(bare: Path) -> list[str]:
    return (bare / "push-records.txt").read_text().splitlines()


def test_bump_job_passes(bump_job):
    assert bump_job.returncode == 0, describe(bump_job)


def test_bump_job_pushes_merge_request_branch(bump_job, project_copy, manifests_repository):
    tag = git(project_copy, "rev-parse", "--short=8", "HEAD")
    branch_commit = git(manifests_repository, "rev-parse", f"refs/heads/argocd/{tag}")
    assert f"ref refs/heads/argocd/{tag} {branch_commit}" in push_records(manifests_repository)


@pytest.mark.parametrize("option", ["merge_request.create", f"merge_request.target={DEFAULT_BRANCH}"])
def test_bump_job_sends_push_option(bump_job, manifests_repository, option):
    assert f"option {option}" in push_records(manifests_repository)


def test_bump_job_sets_pinned_image_on_branch(bump_job, project_copy, manifests_repository):
    tag = git(project_copy, "rev-parse", "--short=8", "HEAD")
    manifest = git(manifests_repository, "show", f"refs/heads/argocd/{tag}:deployment.yaml")
    expected = MANIFEST_TEMPLATE.format(image=f"{IMAGE_REPOSITORY}:{tag}@{IMAGE_DIGEST}")
    assert manifest + "\n" == expected


def test_bump_job_leaves_target_branch_alone(bump_job, project_copy, manifests_repository):
    base_tag = git(project_copy, "rev-parse", "--short=8", "HEAD~1")
    manifest = git(manifests_repository, "show", f"refs/heads/{DEFAULT_BRANCH}:deployment.yaml")
    assert manifest + "\n" == MANIFEST_TEMPLATE.format(image=f"{IMAGE_REPOSITORY}:{base_tag}")


def test_bump_job_uploads_result(bump_job, project_copy):
    tag = git(project_copy, "rev-parse", "--short=8", "HEAD")
    result = json.loads((job_artifacts(project_copy, "bump-manifests") / "reports" / "bump.json").read_text())
    assert result["status"] == "changed"
    assert result["branch"] == f"argocd/{tag}"


def test_build_then_bump_passes_digest_through_dotenv(gitlab_ci_local, job_environment, tmp_path):
    """Build, test in the image, push to a local registry, then bump with the digest the build job recorded.

    The image builds on the stand-in base (no base image can be pulled here),
    so this is the one real image build of the CI tests.
    """
    require_program("buildah")
    require_program("docker-registry")
    require_program("skopeo")
    from pipeline.registry import LocalRegistry

    project = make_project_copy(tmp_path / "project")
    base_tag = git(project, "rev-parse", "--short=8", "HEAD~1")
    tag = git(project, "rev-parse", "--short=8", "HEAD")
    (tmp_path / "registry").mkdir()

    with LocalRegistry(tmp_path / "registry") as registry:
        repository = f"{registry.address}/{PROJECT_PATH}"
        bare = make_manifests_repository(tmp_path, repository, base_tag)
        completed = run_job(gitlab_ci_local, project, job_environment, "bump-manifests", {
            "INVOKE_IMAGE_REPOSITORY": repository,
            "INVOKE_BUILD_STANDIN_BASE": "true",
            "INVOKE_MANIFESTS_URL": bare.as_uri(),
            "INVOKE_MANIFESTS_PATH": "deployment.yaml",
        }, needs=True)
        pushed_digest = subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}",
             f"docker://{repository}:{tag}"],
            capture_output=True, text=True, check=False, timeout=120,
        ).stdout.strip()

    assert completed.returncode == 0, describe(completed)
    assert pushed_digest.startswith("sha256:")
    manifest = git(bare, "show", f"refs/heads/argocd/{tag}:deployment.yaml")
    assert manifest + "\n" == MANIFEST_TEMPLATE.format(image=f"{repository}:{tag}@{pushed_digest}")
