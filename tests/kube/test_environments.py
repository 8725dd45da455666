"""Environment names and their folders in the manifests repository."""

import pytest
from invoke import Config

from pipeline import kube
from pipeline.errors import ConfigError


def make_config(**environments) -> Config:
    settings = {"names": ["dev", "prod"], "default": "dev", "path": "overlays/{env}"}
    settings.update(environments)
    return Config(overrides={"environments": settings})


def test_environment_path_of_dev():
    assert kube.environment_path(make_config(), "dev") == "overlays/dev"


def test_environment_path_follows_pattern():
    config = make_config(names=["qa"], path="clusters/eu/{env}")
    assert kube.environment_path(config, "qa") == "clusters/eu/qa"


def test_unknown_environment_is_rejected():
    with pytest.raises(kube.UnknownEnvironmentError) as caught:
        kube.environment_path(make_config(), "staging")
    assert str(caught.value) == "unknown environment 'staging'; use one of dev, prod or add it to environments.names"


def test_environment_name_cannot_leave_folder():
    config = make_config(names=["../prod"])
    with pytest.raises(kube.UnknownEnvironmentError) as caught:
        kube.environment_path(config, "../prod")
    assert str(caught.value) == (
        "invalid environment name '../prod'; use lowercase letters, digits and '-' (for example dev)"
    )


def test_pattern_without_env_is_rejected():
    with pytest.raises(ConfigError) as caught:
        kube.environment_path(make_config(path="overlays/dev"), "dev")
    assert str(caught.value) == (
        "environments.path 'overlays/dev' lacks {env}; set it to a pattern such as overlays/{env}"
    )


def test_empty_environment_list_is_rejected():
    with pytest.raises(ConfigError) as caught:
        kube.environment_path(make_config(names=[]), "dev")
    assert str(caught.value) == (
        "environments.names is empty; list the environments in invoke.yaml, for example [dev, prod]"
    )


@pytest.mark.parametrize(
    "stderr,expected",
    [
        (
            'E1204 19:50:41.136798   18362 run.go:72] "command failed" err="accumulating resources: '
            "accumulation err='missing.yaml': no such file or directory\"",
            "accumulating resources: accumulation err='missing.yaml': no such file or directory",
        ),
        (
            'E1204 19:50:37.903285   18124 run.go:72] "command failed" err=<\n'
            "\tmap[string]interface {}(nil): yaml: unmarshal errors:\n"
            '\t  line 5: mapping key "name" already defined at line 4\n >',
            'map[string]interface {}(nil): yaml: unmarshal errors: line 5: mapping key "name" already defined at line 4',
        ),
        ("Error: no such file\n", "no such file"),
    ],
    ids=["klog-quoted", "klog-multiline", "kustomize-binary"],
)
def test_kustomize_error_becomes_one_line(stderr, expected):
    assert kube.kustomize_error(stderr) == expected
