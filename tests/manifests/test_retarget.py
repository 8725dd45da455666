"""retarget_image: point manifests at another repository, as the demo does for its local registry."""

import shutil
from pathlib import Path

import pytest

from pipeline.manifests import ManifestError, retarget_image
from pipeline.reference import parse_image_reference

ROOT = Path(__file__).resolve().parents[2]
LOCAL = "127.0.0.1:5000/hello-python"
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: web
          image: registry.example.com/shop/web:3f9c2ab  # app
"""


def test_retarget_kustomization_sets_new_name_and_tag(tmp_path):
    path = tmp_path / "kustomization.yaml"
    path.write_text("images:\n  - name: registry.gitlab.com/acme/hello-python\n    newName: registry.gitlab.com/acme/hello-python\n    newTag: \"0.1.0\"\n")

    result = retarget_image([tmp_path], parse_image_reference(f"{LOCAL}:1234567"))

    assert path.read_text() == (
        f"images:\n  - name: registry.gitlab.com/acme/hello-python\n    newName: {LOCAL}\n    newTag: \"1234567\"\n"
    )
    assert [change.old for change in result.changes] == ["registry.gitlab.com/acme/hello-python:0.1.0"]


def test_retarget_inserts_missing_new_name(tmp_path):
    path = tmp_path / "kustomization.yaml"
    path.write_text("images:\n- name: registry.gitlab.com/acme/hello-python\n  newTag: v1\n")

    retarget_image([path], parse_image_reference(f"{LOCAL}:v2"))

    assert path.read_text() == (
        f"images:\n- name: registry.gitlab.com/acme/hello-python\n  newTag: v2\n  newName: {LOCAL}\n"
    )


def test_retarget_container_writes_full_reference(tmp_path):
    path = tmp_path / "deployment.yaml"
    path.write_text(DEPLOYMENT)

    retarget_image([path], parse_image_reference(f"{LOCAL}:7d41e0c"))

    assert path.read_text() == DEPLOYMENT.replace("registry.example.com/shop/web:3f9c2ab", f"{LOCAL}:7d41e0c")


def test_retarget_several_repositories_rejected(tmp_path):
    path = tmp_path / "deployment.yaml"
    path.write_text(DEPLOYMENT + "        - name: cache\n          image: redis:7.2\n")

    with pytest.raises(ManifestError) as raised:
        retarget_image([path], parse_image_reference(f"{LOCAL}:1"))

    assert str(raised.value) == (
        "cannot tell which image to retarget: found 2 repositories "
        "(redis, registry.example.com/shop/web); name one with from_repository"
    )
    assert path.read_text() == DEPLOYMENT + "        - name: cache\n          image: redis:7.2\n"


def test_retarget_named_repository_only(tmp_path):
    path = tmp_path / "deployment.yaml"
    path.write_text(DEPLOYMENT + "        - name: cache\n          image: redis:7.2\n")

    retarget_image([path], parse_image_reference(f"{LOCAL}:1"), from_repository="registry.example.com/shop/web")

    assert path.read_text() == DEPLOYMENT.replace("registry.example.com/shop/web:3f9c2ab", f"{LOCAL}:1") + (
        "        - name: cache\n          image: redis:7.2\n"
    )


def test_retarget_project_dev_overlay(tmp_path):
    overlay = tmp_path / "dev"
    shutil.copytree(ROOT / "manifests" / "overlays" / "dev", overlay)
    before = (overlay / "kustomization.yaml").read_text()

    result = retarget_image([overlay], parse_image_reference(f"{LOCAL}:0123456"))

    after = (overlay / "kustomization.yaml").read_text()
    assert len(result.changes) == 1
    assert f"newName: {LOCAL}\n" in after
    assert 'newTag: "0123456"\n' in after
    assert len(after.splitlines()) == len(before.splitlines())


def test_retarget_inserts_name_before_tag(tmp_path):
    path = tmp_path / "kustomization.yaml"
    path.write_text("images:\n- name: registry.gitlab.com/acme/hello-python\n")

    retarget_image([path], parse_image_reference(f"{LOCAL}:v2"))

    assert path.read_text() == (
        f"images:\n- name: registry.gitlab.com/acme/hello-python\n  newName: {LOCAL}\n  newTag: v2\n"
    )
