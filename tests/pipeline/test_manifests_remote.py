"""Tests of the bare repository used in place of the GitLab manifests project."""

import subprocess

import pytest

from pipeline.manifests_remote import create_manifests_remote, recorded_merge_requests

IDENTITY = ["-c", "user.name=test", "-c", "user.email=test@example.invalid"]


def git(*args, cwd=None):
    return subprocess.run(["git", *IDENTITY, *args], cwd=cwd, check=True, capture_output=True, text=True)


@pytest.fixture
def remote(tmp_path):
    content = tmp_path / "content"
    (content / "overlays" / "dev").mkdir(parents=True)
    (content / "overlays" / "dev" / "kustomization.yaml").write_text("images: []\n")
    create_manifests_remote(tmp_path / "manifests.git", content, tmp_path / "requests")
    return tmp_path


def push_branch(root, branch, *options):
    clone = root / "clone"
    git("clone", "--quiet", str(root / "manifests.git"), str(clone))
    (clone / "change.txt").write_text("x\n")
    git("add", "change.txt", cwd=clone)
    git("commit", "--quiet", "-m", "change", cwd=clone)
    push_options = [argument for option in options for argument in ("-o", option)]
    return git("push", *push_options, "origin", f"HEAD:refs/heads/{branch}", cwd=clone)


def test_remote_holds_content_on_main(remote):
    files = git("-C", str(remote / "manifests.git"), "ls-tree", "-r", "--name-only", "main").stdout.split()
    assert files == ["overlays/dev/kustomization.yaml"]


def test_remote_records_merge_request(remote):
    result = push_branch(
        remote, "argocd/0123abcd",
        "merge_request.create", "merge_request.target=main", "merge_request.title=Deploy 0123abcd",
    )

    requests = recorded_merge_requests(remote / "requests")
    assert len(requests) == 1
    assert requests[0]["source_branch"] == "argocd/0123abcd"
    assert requests[0]["target_branch"] == "main"
    assert requests[0]["title"] == "Deploy 0123abcd"
    assert "merge request recorded for argocd/0123abcd -> main" in result.stderr


def test_push_without_create_option_records_nothing(remote):
    push_branch(remote, "feature")
    assert recorded_merge_requests(remote / "requests") == []


def test_second_creation_starts_clean(remote):
    push_branch(remote, "argocd/0123abcd", "merge_request.create", "merge_request.target=main")
    content = remote / "content"

    create_manifests_remote(remote / "manifests.git", content, remote / "requests")

    branches = git("-C", str(remote / "manifests.git"), "branch", "--format=%(refname:short)").stdout.split()
    assert branches == ["main"]
    assert recorded_merge_requests(remote / "requests") == []
