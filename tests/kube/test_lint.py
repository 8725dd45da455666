"""`inv lint` on the real manifests and on broken copies, run as a user runs it."""

import sys
from pathlib import Path

from tests.kube.conftest import MANIFESTS, replace_in, run_invoke

DEPLOYMENT = "base/hello-python-deployment.yaml"


def lint(path: Path, env: dict[str, str] | None = None):
    return run_invoke("lint", "--path", str(path), env=env)


def problem_lines(result) -> list[str]:
    """Return stderr without its last line, which is the summary."""
    return result.stderr.splitlines()[:-1]


def summary(result) -> str:
    return result.stderr.splitlines()[-1]


def test_lint_passes_on_real_manifests(kubectl):
    result = run_invoke("lint")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines()[-1] == "lint passed: 3 kustomization folder(s), 15 object(s) in manifests"


def test_lint_reports_overlay_that_does_not_render(manifests_copy, kubectl):
    replace_in(manifests_copy / "overlays" / "dev" / "kustomization.yaml", "  - ../../base\n",
               "  - ../../base\n  - hello-python-ingress.yaml\n")

    result = lint(manifests_copy)

    assert result.returncode == 1
    [line] = problem_lines(result)
    assert line.startswith(f"{manifests_copy}/overlays/dev/kustomization.yaml: failed to render: ")
    assert "hello-python-ingress.yaml" in line
    assert summary(result) == f"error: lint found 1 problem(s) in {manifests_copy}; fix the lines above"
    assert "Traceback" not in result.stderr


def test_lint_reports_string_where_integer_goes(manifests_copy, kubectl):
    replace_in(manifests_copy / DEPLOYMENT, "containerPort: 8080", 'containerPort: "eighty"')

    result = lint(manifests_copy)

    assert result.returncode == 1
    assert problem_lines(result) == [
        f"{manifests_copy}/{DEPLOYMENT}: Deployment/hello-python spec.template.spec.containers[0].ports[0]"
        ".containerPort: 'eighty' is not of type 'integer'",
    ]
    assert "Traceback" not in result.stderr


def test_lint_reports_unknown_field(manifests_copy, kubectl):
    replace_in(manifests_copy / DEPLOYMENT, "  revisionHistoryLimit: 5\n", "  revisionHistoryLimit: 5\n  replica: 2\n")

    result = lint(manifests_copy)

    assert result.returncode == 1
    assert problem_lines(result) == [
        f"{manifests_copy}/{DEPLOYMENT}: Deployment/hello-python spec: "
        "Additional properties are not allowed ('replica' was unexpected)",
    ]


def test_lint_reports_overlay_image_without_tag(manifests_copy, kubectl):
    replace_in(manifests_copy / "overlays" / "prod" / "kustomization.yaml", '    newTag: "0.1.0"\n', "")

    result = lint(manifests_copy)

    assert result.returncode == 1
    assert problem_lines(result) == [
        f"{manifests_copy}/overlays/prod/kustomization.yaml: images[0]: sets no newTag or digest, "
        "so the tag written in the base is deployed; set newTag",
    ]


def test_lint_reports_container_image_without_tag(manifests_copy, kubectl):
    replace_in(manifests_copy / DEPLOYMENT, "hello-python:base", "hello-python")

    result = lint(manifests_copy)

    assert result.returncode == 1
    assert problem_lines(result) == [
        f"{manifests_copy}/{DEPLOYMENT}: Deployment/hello-python spec.template.spec.containers[0].image: "
        "'registry.gitlab.com/acme/hello-python' has no tag or digest; pin the image with :TAG or @sha256:DIGEST",
    ]


def test_lint_reports_overlay_tag_latest(manifests_copy, kubectl):
    replace_in(manifests_copy / "overlays" / "prod" / "kustomization.yaml", '    newTag: "0.1.0"\n', "    newTag: latest\n")

    result = lint(manifests_copy)

    assert result.returncode == 1
    assert problem_lines(result) == [
        f"{manifests_copy}/overlays/prod/kustomization.yaml: images[0]: "
        "'registry.gitlab.com/acme/hello-python:latest' uses the mutable tag 'latest'; "
        "pin the image with a commit tag or @sha256:DIGEST",
    ]


def test_lint_accepts_latest_with_digest(manifests_copy, kubectl):
    digest = "sha256:" + "ab" * 32
    replace_in(manifests_copy / "overlays" / "prod" / "kustomization.yaml", '    newTag: "0.1.0"\n',
               f"    newTag: latest\n    digest: {digest}\n")

    result = lint(manifests_copy)

    assert result.returncode == 0, result.stderr


def test_lint_reports_image_without_registry(manifests_copy, kubectl):
    replace_in(manifests_copy / "overlays" / "dev" / "kustomization.yaml",
               "    newName: registry.gitlab.com/acme/hello-python\n", "    newName: hello-python\n")

    result = lint(manifests_copy)

    assert result.returncode == 1
    assert problem_lines(result) == [
        f"{manifests_copy}/overlays/dev/kustomization.yaml: images[0]: 'hello-python:0.1.0' has no registry host; "
        "write the full reference, such as registry.example.com/team/app:TAG",
    ]


def test_lint_reports_application_without_destination(manifests_copy, kubectl):
    application = manifests_copy / "argocd" / "hello-python-application.yaml"
    replace_in(application, "  destination:\n    server: https://kubernetes.default.svc\n"
               "    namespace: hello-python-dev\n", "")

    result = lint(manifests_copy)

    assert result.returncode == 1
    assert problem_lines(result) == [
        f"{application}: Application/hello-python spec.destination: is missing; "
        "set the cluster (server or name) and namespace to deploy to",
    ]


def test_lint_reports_applicationset_path_without_overlay(manifests_copy, kubectl):
    applicationset = manifests_copy / "argocd" / "hello-python-applicationset.yaml"
    replace_in(applicationset, "          - env: prod\n", "          - env: staging\n")

    result = lint(manifests_copy)

    assert result.returncode == 1
    assert problem_lines(result) == [
        f"{applicationset}: ApplicationSet/hello-python spec.template.spec.source.path: "
        "folder 'overlays/staging' does not exist in manifests",
    ]


def test_lint_reports_repository_outside_project(manifests_copy, kubectl):
    applicationset = manifests_copy / "argocd" / "hello-python-applicationset.yaml"
    replace_in(applicationset, "        repoURL: git@gitlab.com:acme/hello-python-manifests.git\n",
               "        repoURL: git@gitlab.com:acme/other.git\n")

    result = lint(manifests_copy)

    assert result.returncode == 1
    assert problem_lines(result) == [
        f"{applicationset}: ApplicationSet/hello-python spec.template.spec.source.repoURL: "
        "'git@gitlab.com:acme/other.git' is not in the sourceRepos of AppProject 'hello-python'",
    ]


def test_lint_reports_duplicate_key_with_lines(manifests_copy, kubectl):
    service = manifests_copy / "base" / "hello-python-service.yaml"
    replace_in(service, "  name: hello-python\n", "  name: hello-python\n  name: hello-python-old\n")

    result = lint(manifests_copy)

    assert result.returncode == 1
    assert problem_lines(result) == [
        f"{service}: line 5: invalid YAML: key 'name' is defined twice (lines 4 and 5)",
    ]
    assert result.stdout.splitlines()[0] == "note: rendering skipped until the files with invalid YAML are fixed"


def test_lint_prints_one_line_per_problem(manifests_copy, kubectl):
    replace_in(manifests_copy / DEPLOYMENT, "maxUnavailable: 0", 'maxUnavailable: []')
    replace_in(manifests_copy / "argocd" / "hello-python-appproject.yaml",
               "  sourceRepos:\n    - git@gitlab.com:acme/hello-python-manifests.git\n", "")

    result = lint(manifests_copy)

    assert result.returncode == 1
    assert len(problem_lines(result)) == 2
    assert summary(result) == f"error: lint found 2 problem(s) in {manifests_copy}; fix the lines above"
    assert "Traceback" not in result.stderr


def test_lint_of_missing_folder_fails(tmp_path):
    result = lint(tmp_path / "absent")
    assert result.returncode == 1
    assert result.stderr == (
        f"error: manifests folder {tmp_path / 'absent'} not found; pass --path or set lint.manifests\n"
    )


def path_without_kubectl(tmp_path: Path) -> str:
    """Return a PATH with only the running Python, so that neither kubectl nor kustomize is found."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    return str(bin_dir)


def test_lint_without_kubectl_skips_rendering(tmp_path):
    result = lint(MANIFESTS, env={"PATH": path_without_kubectl(tmp_path), "CI": "false"})

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "note: rendering skipped: neither kubectl nor kustomize is on PATH (install kubectl)",
        f"lint passed: 0 kustomization folder(s), 0 object(s) in {MANIFESTS}",
    ]


def test_lint_without_kubectl_fails_in_ci(tmp_path):
    result = lint(MANIFESTS, env={"PATH": path_without_kubectl(tmp_path), "CI": "true"})

    assert result.returncode == 1
    assert problem_lines(result) == [
        f"{MANIFESTS}: rendering cannot run: neither kubectl nor kustomize is on PATH (install kubectl); "
        "CI runs every check",
    ]


def test_lint_of_empty_folder_fails(tmp_path):
    result = lint(tmp_path)

    assert result.returncode == 1
    assert result.stderr == (
        f"error: no kustomization or manifests found in {tmp_path}: it contains no .yaml or .yml file; "
        "pass --path with the folder of the manifests repository\n"
    )


def test_lint_of_file_asks_for_folder(manifests_copy):
    kustomization = manifests_copy / "base" / "kustomization.yaml"

    result = lint(kustomization)

    assert result.returncode == 1
    assert result.stderr == (
        f"error: manifests path {kustomization} is a file; give a folder, not a file, such as {manifests_copy / 'base'}\n"
    )


def test_lint_rejects_version_below_schemas():
    from kubernetes_validate.utils import all_versions

    oldest, newest = (".".join(version.split(".")[:2]) for version in (all_versions()[0], all_versions()[-1]))
    older_minor = int(oldest.split(".")[1]) - 1

    result = run_invoke("lint", "-k", f"1.{older_minor}")

    assert result.returncode == 1
    assert result.stderr == f"error: invalid Kubernetes version '1.{older_minor}'; use one from {oldest} to {newest}\n"


def test_lint_rejects_version_that_is_not_one():
    from kubernetes_validate.utils import all_versions

    oldest, newest = (".".join(version.split(".")[:2]) for version in (all_versions()[0], all_versions()[-1]))

    result = run_invoke("lint", "-k", "abc")

    assert result.returncode == 1
    assert result.stderr == f"error: invalid Kubernetes version 'abc'; use one from {oldest} to {newest}\n"


def test_kubernetes_version_keeps_major_minor():
    from pipeline.kubelint import check_kubernetes_version

    assert check_kubernetes_version("v1.31.4") == "1.31"
