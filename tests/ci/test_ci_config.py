"""The shape of .gitlab-ci.yml and its job files: schema, rules, and the settings each job needs."""

import re
import subprocess

import pytest

from tests.ci.gitlab_rules import rule_matches, workflow_creates_pipeline
from tests.ci.helpers import CI_FILE, CI_JOB_FOLDER, REPO_ROOT, ci_files, load_ci_file
from tests.support import require_program

# Top-level keys that are GitLab keywords, not jobs.
GLOBAL_KEYWORDS = {"default", "include", "stages", "variables", "workflow", "image", "services", "cache",
                   "before_script", "after_script", "spec"}
KEBAB_CASE = re.compile(r"\.?[a-z0-9]+(-[a-z0-9]+)*")


def all_jobs() -> dict[str, dict]:
    """Return every job and hidden template from all CI files, later files merged over earlier ones."""
    jobs: dict[str, dict] = {}
    for path in ci_files():
        for name, body in load_ci_file(path).items():
            if name not in GLOBAL_KEYWORDS:
                jobs.setdefault(name, {}).update(body)
    return jobs


def resolved(job_name: str) -> dict:
    """Return a job with its `extends` applied (hashes merged deeply, lists replaced), as GitLab does."""
    jobs = all_jobs()
    job = jobs[job_name]
    parents = job.get("extends", [])
    result: dict = {}
    for parent in [parents] if isinstance(parents, str) else parents:
        _merge(result, resolved(parent))
    _merge(result, {key: value for key, value in job.items() if key != "extends"})
    return result


def _merge(target: dict, source: dict) -> None:
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def script_lines(job: dict) -> list[str]:
    """Return the before_script and script lines of a resolved job."""
    return [*job.get("before_script", []), *job.get("script", [])]


@pytest.mark.parametrize("path", ci_files(), ids=lambda path: path.name)
def test_ci_file_matches_gitlab_schema(path):
    check_jsonschema = require_program("check-jsonschema")
    completed = subprocess.run(
        [check_jsonschema, "--builtin-schema", "vendor.gitlab-ci", str(path)],
        capture_output=True, text=True, check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_includes_every_job_file():
    included = {entry["local"] for entry in load_ci_file(CI_FILE)["include"]}
    job_files = {f".gitlab-ci.d/{path.name}" for path in CI_JOB_FOLDER.glob("*.yml")}
    # The Artifact Registry template is optional and listed as a comment.
    assert included == job_files - {".gitlab-ci.d/gcp-artifact-registry.yml"}


def test_workflow_avoids_duplicate_pipelines():
    rules = load_ci_file(CI_FILE)["workflow"]["rules"]
    assert rules == [
        {"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'},
        {"if": "$CI_COMMIT_BRANCH && $CI_OPEN_MERGE_REQUESTS", "when": "never"},
        {"if": "$CI_COMMIT_BRANCH"},
    ]


def test_default_uses_python_image_and_pip_cache():
    config = load_ci_file(CI_FILE)
    assert config["default"]["image"].startswith("python:3.")
    assert config["default"]["cache"]["key"] == {"files": ["pyproject.toml"]}
    assert config["variables"]["PIP_CACHE_DIR"] == "$CI_PROJECT_DIR/.cache/pip"
    assert config["default"]["cache"]["paths"] == [".cache/pip"]


def test_job_names_are_kebab_case():
    bad = [name for name in all_jobs() if not KEBAB_CASE.fullmatch(name)]
    assert bad == []


def test_rules_never_name_a_branch():
    texts = [rule.get("if", "") for job in all_jobs().values() for rule in job.get("rules", [])]
    hard_coded = [text for text in texts if re.search(r"CI_COMMIT_(BRANCH|REF_NAME)\s*==\s*['\"]", text)]
    assert hard_coded == []


@pytest.mark.parametrize("job_name", ["coverage-pages", "bump-manifests"])
def test_job_runs_on_default_branch_only(job_name):
    assert resolved(job_name)["rules"] == [{"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"}]


@pytest.mark.parametrize(
    ("job_name", "expected"),
    [
        ("test", True),
        ("lint-manifests", True),
        ("build-image-buildah", True),
        ("build-image-dind", True),
        ("bump-manifests", False),
    ],
)
def test_interruptible_except_bump(job_name, expected):
    assert resolved(job_name)["interruptible"] is expected


def test_test_job_uploads_reports_when_tests_fail():
    artifacts = resolved("test")["artifacts"]
    assert artifacts["when"] == "always"
    assert artifacts["reports"]["junit"] == "reports/junit.xml"
    assert artifacts["reports"]["coverage_report"] == {"coverage_format": "cobertura", "path": "reports/coverage.xml"}


def test_test_job_runs_inv_test():
    assert resolved("test")["script"] == ["inv test"]


def test_pages_job_publishes_coverage_html():
    job = resolved("coverage-pages")
    assert job["pages"] == {"publish": "reports/coverage-html"}
    assert job["artifacts"]["paths"] == ["reports/coverage-html"]
    assert job["needs"] == [{"job": "test", "artifacts": True}]


@pytest.mark.parametrize("job_name", ["build-image-buildah", "build-image-dind"])
def test_build_job_passes_image_through_dotenv(job_name):
    job = resolved(job_name)
    assert job["script"][-3:] == ["inv build", "inv test --in-image", "inv push"]
    assert job["artifacts"]["reports"]["dotenv"] == "reports/image.env"
    assert job["artifacts"]["paths"] == ["reports/image.env"]


@pytest.mark.parametrize(("job_name", "builder"), [("build-image-buildah", "buildah"), ("build-image-dind", "dind")])
def test_build_variant_selected_by_image_builder(job_name, builder):
    assert resolved(job_name)["rules"] == [{"if": f'$IMAGE_BUILDER == "{builder}"'}]


def test_buildah_job_runs_unprivileged():
    job = resolved("build-image-buildah")
    assert job["image"].startswith("quay.io/buildah/stable:v")
    assert job["variables"]["STORAGE_DRIVER"] == "vfs"
    assert job["variables"]["BUILDAH_ISOLATION"] == "chroot"
    assert "services" not in job


def test_dind_job_uses_tls_with_pinned_versions():
    job = resolved("build-image-dind")
    variables = job["variables"]
    assert variables["DOCKER_TLS_CERTDIR"] == "/certs"
    assert variables["DOCKER_HOST"] == "tcp://docker:2376"
    assert variables["DOCKER_TLS_VERIFY"] == "1"
    assert variables["DOCKER_CERT_PATH"] == "$DOCKER_TLS_CERTDIR/client"
    cli_version = job["image"].removeprefix("docker:").removesuffix("-cli")
    assert re.fullmatch(r"\d+\.\d+\.\d+", cli_version)
    assert job["services"] == [{"name": f"docker:{cli_version}-dind", "alias": "docker"}]


def test_bump_job_serialized_after_build():
    job = resolved("bump-manifests")
    assert job["resource_group"] == "manifests-repository"
    assert job["needs"] == [
        {"job": "build-image-buildah", "optional": True},
        {"job": "build-image-dind", "optional": True},
    ]
    assert job["script"] == ["inv bump --pin-digest"]


@pytest.mark.parametrize("program", ["git", "openssh-client"])
def test_bump_job_installs_git_tools(program):
    install_step = resolved("bump-manifests")["before_script"][0]
    assert re.search(rf"apt-get install .*\b{program}\b", install_step)


def test_jobs_hold_no_cluster_credentials():
    text = "\n".join(path.read_text() for path in ci_files())
    commands = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "ssh-keyscan" not in commands
    assert "KUBECONFIG" not in text
    assert "kubectl apply" not in text


def test_script_expansions_are_quoted():
    unquoted = []
    for name in all_jobs():
        for line in script_lines(resolved(name)):
            outside_quotes = re.sub(r'"[^"]*"', "", line)
            outside_quotes = re.sub(r"'[^']*'", "", outside_quotes)
            if "$" in outside_quotes:
                unquoted.append(f"{name}: {line}")
    assert unquoted == []


def test_pip_cache_dir_is_git_ignored():
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", ".cache/pip/wheels", ".gitlab-ci-local/output"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False,
    )
    assert ignored.stdout.split() == [".cache/pip/wheels", ".gitlab-ci-local/output"]


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        pytest.param({"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "feature"}, True,
                     id="branch-without-merge-request"),
        pytest.param({"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "feature",
                      "CI_OPEN_MERGE_REQUESTS": "group/hello-python!7"}, False,
                     id="branch-with-open-merge-request"),
        pytest.param({"CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_IID": "7",
                      "CI_OPEN_MERGE_REQUESTS": "group/hello-python!7"}, True,
                     id="merge-request-pipeline"),
        pytest.param({"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "main"}, True, id="default-branch"),
        pytest.param({"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_TAG": "v1.0.0"}, False, id="tag"),
    ],
)
def test_workflow_creates_one_pipeline_per_push(variables, expected):
    # gitlab-ci-local 4.73 does not apply workflow:rules, so the rules are evaluated here.
    rules = load_ci_file(CI_FILE)["workflow"]["rules"]
    assert workflow_creates_pipeline(rules, variables) is expected


@pytest.mark.parametrize(
    ("expression", "variables", "expected"),
    [
        ('$A == "x"', {"A": "x"}, True),
        ('$A == "x"', {}, False),
        ("$A && $B", {"A": "1", "B": ""}, False),
        # Inside && an empty string is true (Ruby), so only the comparison decides here.
        ('$A && $B == "x"', {"A": "", "B": "x"}, True),
        ("$A", {"A": "  "}, False),
        ('$A == "x" || ($B && $C)', {"B": "1", "C": "1"}, True),
        ("$A != $B", {"A": "main", "B": "main"}, False),
        ("$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH", {"CI_DEFAULT_BRANCH": "main"}, False),
    ],
)
def test_rule_evaluator_follows_gitlab(expression, variables, expected):
    assert rule_matches(expression, variables) is expected
