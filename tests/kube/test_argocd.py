"""The Argo CD objects under manifests/argocd agree with each other and with the overlays."""

import pytest
import yaml

from tests.kube.conftest import MANIFESTS

ARGOCD = MANIFESTS / "argocd"
MANIFESTS_REPOSITORY = "git@gitlab.com:acme/hello-python-manifests.git"
IN_CLUSTER = "https://kubernetes.default.svc"
FINALIZER = "resources-finalizer.argocd.argoproj.io"
SYNC_POLICY = {"automated": {"prune": True, "selfHeal": True}, "syncOptions": ["CreateNamespace=true"]}


def load(name: str) -> dict:
    return yaml.safe_load((ARGOCD / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def project() -> dict:
    return load("hello-python-appproject.yaml")


@pytest.fixture(scope="module")
def application_set() -> dict:
    return load("hello-python-applicationset.yaml")


@pytest.fixture(scope="module")
def application() -> dict:
    return load("hello-python-application.yaml")


def test_project_allows_only_manifests_repository(project):
    assert project["spec"]["sourceRepos"] == [MANIFESTS_REPOSITORY]


def test_project_allows_only_environment_namespaces(project):
    assert project["spec"]["destinations"] == [
        {"server": IN_CLUSTER, "namespace": "hello-python-dev"},
        {"server": IN_CLUSTER, "namespace": "hello-python-prod"},
    ]


def test_project_allows_only_namespace_at_cluster_scope(project):
    assert project["spec"]["clusterResourceWhitelist"] == [{"group": "", "kind": "Namespace"}]


def test_project_allows_exactly_rendered_kinds(project, rendered):
    api_groups = {"v1": "", "apps/v1": "apps", "policy/v1": "policy", "autoscaling/v2": "autoscaling"}
    deployed = {
        (api_groups[obj["apiVersion"]], obj["kind"]) for objects in rendered.values() for obj in objects.values()
    }
    allowed = {(entry["group"], entry["kind"]) for entry in project["spec"]["namespaceResourceWhitelist"]}
    assert allowed == deployed


def test_application_set_generates_one_application_per_overlay(application_set):
    elements = application_set["spec"]["generators"][0]["list"]["elements"]
    assert elements == [{"env": "dev", "server": IN_CLUSTER}, {"env": "prod", "server": IN_CLUSTER}]
    for element in elements:
        assert (MANIFESTS / "overlays" / element["env"] / "kustomization.yaml").is_file()


def test_application_set_template_syncs_automatically(application_set):
    template = application_set["spec"]["template"]
    assert template["metadata"]["finalizers"] == [FINALIZER]
    assert template["spec"]["syncPolicy"] == SYNC_POLICY


def test_application_set_template_uses_project_and_repository(application_set, project):
    spec = application_set["spec"]["template"]["spec"]
    assert spec["project"] == project["metadata"]["name"]
    assert spec["source"] == {"repoURL": MANIFESTS_REPOSITORY, "targetRevision": "main", "path": "overlays/{{.env}}"}
    assert spec["destination"] == {"server": "{{.server}}", "namespace": "hello-python-{{.env}}"}


def test_plain_application_matches_cli_command(application):
    assert application["metadata"] == {"name": "hello-python", "namespace": "argocd", "finalizers": [FINALIZER]}
    assert application["spec"] == {
        "project": "default",
        "source": {"repoURL": MANIFESTS_REPOSITORY, "targetRevision": "main", "path": "overlays/dev"},
        "destination": {"server": IN_CLUSTER, "namespace": "hello-python-dev"},
        "syncPolicy": SYNC_POLICY,
    }


def test_argocd_objects_live_in_argocd_namespace(project, application_set, application):
    assert project["metadata"]["namespace"] == "argocd"
    assert application_set["metadata"]["namespace"] == "argocd"
    assert application["metadata"]["namespace"] == "argocd"
