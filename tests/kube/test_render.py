"""Render every overlay with the real kubectl kustomize and check the objects Argo CD would apply."""

import pytest
import yaml

from pipeline import kube
from tests.kube.conftest import MANIFESTS, objects_by_kind, replace_in

APP_LABEL = {"app": "hello-python"}
IMAGE_REPOSITORY = "registry.gitlab.com/acme/hello-python"
ENVIRONMENTS = ("dev", "prod")


def container(objects: dict) -> dict:
    containers = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_dev_overlay_renders_expected_kinds(rendered):
    assert sorted(rendered["dev"]) == [
        "ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount",
    ]


def test_prod_overlay_adds_autoscaler(rendered):
    assert sorted(rendered["prod"]) == [
        "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service", "ServiceAccount",
    ]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_overlay_sets_its_namespace(rendered, env):
    namespaces = {obj["metadata"]["namespace"] for obj in rendered[env].values()}
    assert namespaces == {f"hello-python-{env}"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_object_carries_app_label(rendered, env):
    for kind, obj in rendered[env].items():
        assert obj["metadata"]["labels"] == APP_LABEL, kind


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_selector_matches_template_and_service(rendered, env):
    objects = rendered[env]
    deployment_spec = objects["Deployment"]["spec"]
    assert deployment_spec["selector"]["matchLabels"] == APP_LABEL
    assert deployment_spec["template"]["metadata"]["labels"] == APP_LABEL
    assert objects["Service"]["spec"]["selector"] == APP_LABEL
    assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == APP_LABEL


def test_service_targets_container_port(rendered):
    port = rendered["dev"]["Service"]["spec"]["ports"][0]
    assert port["targetPort"] == "http"
    assert container(rendered["dev"])["ports"] == [{"name": "http", "containerPort": 8080}]


@pytest.mark.parametrize("probe", ["readinessProbe", "livenessProbe"])
def test_probe_checks_healthz(rendered, probe):
    check = container(rendered["dev"])[probe]["httpGet"]
    assert check == {"path": "/healthz", "port": "http"}


def test_pod_runs_as_non_root_with_default_seccomp(rendered):
    pod_spec = rendered["dev"]["Deployment"]["spec"]["template"]["spec"]
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert pod_spec["securityContext"]["runAsUser"] == 10001
    assert pod_spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_container_security_context_is_locked_down(rendered):
    context = container(rendered["dev"])["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}


def test_tmp_is_writable_emptydir(rendered):
    pod_spec = rendered["dev"]["Deployment"]["spec"]["template"]["spec"]
    assert container(rendered["dev"])["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod_spec["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]


def test_service_account_token_not_mounted(rendered):
    assert rendered["dev"]["ServiceAccount"]["automountServiceAccountToken"] is False
    pod_spec = rendered["dev"]["Deployment"]["spec"]["template"]["spec"]
    assert pod_spec["serviceAccountName"] == "hello-python"
    assert pod_spec["automountServiceAccountToken"] is False


def test_resources_have_requests_and_limits(rendered):
    resources = container(rendered["dev"])["resources"]
    assert resources["requests"] == {"cpu": "50m", "memory": "64Mi"}
    assert resources["limits"] == {"cpu": "500m", "memory": "256Mi"}


def test_rolling_update_keeps_service_up(rendered):
    strategy = rendered["dev"]["Deployment"]["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    assert strategy["rollingUpdate"]["maxSurge"] == 1


def test_deployment_leaves_replicas_to_autoscaler(rendered):
    assert "replicas" not in rendered["prod"]["Deployment"]["spec"]
    autoscaler = rendered["prod"]["HorizontalPodAutoscaler"]["spec"]
    assert autoscaler["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "hello-python"}
    assert autoscaler["minReplicas"] == 2


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_configmap_hash_suffix_is_referenced(rendered, env):
    config_map_name = rendered[env]["ConfigMap"]["metadata"]["name"]
    assert config_map_name.startswith("hello-python-env-")
    assert len(config_map_name) > len("hello-python-env-")
    assert container(rendered[env])["envFrom"][0] == {"configMapRef": {"name": config_map_name}}


@pytest.mark.parametrize("env,level", [("dev", "debug"), ("prod", "info")])
def test_configmap_sets_environment_variables(rendered, env, level):
    assert rendered[env]["ConfigMap"]["data"] == {"APP_ENV": env, "LOG_LEVEL": level}


def test_secret_is_referenced_by_name_only(rendered):
    assert container(rendered["dev"])["envFrom"][1] == {
        "secretRef": {"name": "hello-python-secrets", "optional": True},
    }
    assert "Secret" not in rendered["dev"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_image_comes_from_overlay(rendered, env):
    assert container(rendered[env])["image"] == f"{IMAGE_REPOSITORY}:0.1.0"


def test_all_digit_tag_renders_as_string(manifests_copy, kubectl):
    kustomization = manifests_copy / "overlays" / "dev" / "kustomization.yaml"
    replace_in(kustomization, 'newTag: "0.1.0"', 'newTag: "0123456"')

    objects = objects_by_kind(kube.render_overlay(manifests_copy, "dev"))

    assert container(objects)["image"] == f"{IMAGE_REPOSITORY}:0123456"


def test_overlay_digest_pins_image(manifests_copy, kubectl):
    digest = "sha256:" + "ab" * 32
    kustomization = manifests_copy / "overlays" / "prod" / "kustomization.yaml"
    replace_in(kustomization, 'newTag: "0.1.0"\n', f'newTag: "0.1.0"\n    digest: {digest}\n')

    objects = objects_by_kind(kube.render_overlay(manifests_copy, "prod"))

    assert container(objects)["image"] == f"{IMAGE_REPOSITORY}:0.1.0@{digest}"


def test_render_diff_shows_image_change(manifests_copy, kubectl):
    kustomization = manifests_copy / "overlays" / "dev" / "kustomization.yaml"
    replace_in(kustomization, 'newTag: "0.1.0"', 'newTag: "7d41e0c"')

    diff = kube.render_diff(MANIFESTS, manifests_copy, "dev")

    changed = [line for line in diff.splitlines() if line.startswith(("-", "+"))]
    assert changed == [
        "--- a/overlays/dev (rendered)",
        "+++ b/overlays/dev (rendered)",
        f"-        image: {IMAGE_REPOSITORY}:0.1.0",
        f"+        image: {IMAGE_REPOSITORY}:7d41e0c",
    ]


def test_render_diff_empty_without_change(kubectl):
    assert kube.render_diff(MANIFESTS, MANIFESTS, "prod") == ""


def test_render_overlay_of_missing_environment_fails(kubectl):
    with pytest.raises(kube.RenderError) as caught:
        kube.render_overlay(MANIFESTS, "staging")
    assert str(caught.value) == (
        f"cannot render {MANIFESTS}/overlays/staging: no kustomization.yaml in it; check the environment's folder"
    )


def test_render_failure_is_one_line(manifests_copy, kubectl):
    replace_in(manifests_copy / "base" / "kustomization.yaml", "  - hello-python-service.yaml\n",
               "  - hello-python-service.yaml\n  - hello-python-missing.yaml\n")

    with pytest.raises(kube.RenderError) as caught:
        kube.render_overlay(manifests_copy, "dev")

    message = str(caught.value)
    assert message.startswith(f"{manifests_copy}/overlays/dev failed to render: accumulating resources")
    assert "hello-python-missing.yaml" in message
    assert "\n" not in message


def test_rendered_stream_is_valid_yaml(kubectl):
    documents = list(yaml.safe_load_all(kube.render_overlay(MANIFESTS, "dev")))
    assert len(documents) == 5
