"""bump_manifests against real bare repositories on disk, with hooks."""

import json
import os
import shutil

import pytest

from pipeline.errors import PipelineError
from pipeline.gitops import (
    BumpError,
    BumpResult,
    PushRejectedError,
    bump_manifests,
    check_push,
    pin_digest,
    read_image_env,
    write_result,
)
from pipeline.reference import parse_image_reference
from pipeline.rollback_guard import RollbackRiskError

from .conftest import (
    DEPLOYMENT,
    PROTECTING_PRE_RECEIVE,
    WARNING_POST_RECEIVE,
    git,
    image,
    make_remote,
)


def bump(remote, app, tag, **options) -> BumpResult:
    settings = dict(
        url=remote.url,
        target_branch="main",
        manifests_path="apps",
        image=parse_image_reference(image(tag)),
        app_repo=app.path,
        output=lambda line: None,
    )
    settings.update(options)
    return bump_manifests(**settings)


def install_hook(remote, name: str, text: str) -> None:
    hook = remote.path / "hooks" / name
    hook.write_text(text)
    hook.chmod(0o755)


# --- merge-request mode ---------------------------------------------------------


def test_merge_request_pushes_branch(remote, app_repo):
    result = bump(remote, app_repo, app_repo.tag(6))

    assert result.status == "changed"
    assert result.branch == f"argocd/{app_repo.tag(6)}"
    assert remote.rev(f"refs/heads/argocd/{app_repo.tag(6)}") == result.commit
    assert remote.show(result.branch) == DEPLOYMENT.format(image=image(app_repo.tag(6)))
    assert remote.count("main") == 1


def test_merge_request_sends_push_options(remote, app_repo):
    bump(remote, app_repo, app_repo.tag(6), source_commit=app_repo.commits[6],
         pipeline_url="https://gitlab.example.com/acme/hello-python/-/pipelines/42")

    [push] = remote.push_log()
    options = push["options"]
    assert push["refs"] == [f"refs/heads/argocd/{app_repo.tag(6)}"]
    assert options[:3] == [
        "merge_request.create",
        "merge_request.target=main",
        f"merge_request.title=Set image registry.example.com/acme/hello-python to {app_repo.tag(6)}",
    ]
    assert options[3] == (
        f"merge_request.description=Image {image(app_repo.tag(5))} -> {image(app_repo.tag(6))}. "
        f"Source commit {app_repo.commits[6]}. "
        "Pipeline https://gitlab.example.com/acme/hello-python/-/pipelines/42."
    )
    assert len(options) == 4


def test_merge_request_optional_push_options(remote, app_repo):
    from pipeline.gitops import MergeRequestOptions

    options = MergeRequestOptions(remove_source_branch=True, auto_merge=True,
                                  auto_merge_option="merge_request.merge_when_pipeline_succeeds",
                                  labels=("deploy", "env::dev"))
    bump(remote, app_repo, app_repo.tag(6), merge_request=options)

    sent = remote.push_log()[0]["options"]
    assert sent[4:] == [
        "merge_request.remove_source_branch",
        "merge_request.merge_when_pipeline_succeeds",
        "merge_request.label=deploy",
        "merge_request.label=env::dev",
    ]


def test_commit_has_bot_identity_and_trailers(remote, app_repo):
    result = bump(remote, app_repo, app_repo.tag(6), source_commit=app_repo.commits[6],
                  pipeline_url="https://gitlab.example.com/p/1", author_name="Deploy Bot",
                  author_email="deploy-bot@example.invalid")

    author = git("log", "-1", "--format=%an <%ae>", result.commit, cwd=remote.path)
    committer = git("log", "-1", "--format=%cn <%ce>", result.commit, cwd=remote.path)
    subject = git("log", "-1", "--format=%s", result.commit, cwd=remote.path)
    trailers = git("log", "-1", "--format=%(trailers:only,unfold)", result.commit, cwd=remote.path)
    assert author == "Deploy Bot <deploy-bot@example.invalid>"
    assert committer == "Deploy Bot <deploy-bot@example.invalid>"
    assert subject == f"Set image registry.example.com/acme/hello-python to {app_repo.tag(6)}"
    assert trailers == f"Source-Commit: {app_repo.commits[6]}\nPipeline: https://gitlab.example.com/p/1"


def test_rerun_with_same_image_pushes_nothing(remote, app_repo):
    first = bump(remote, app_repo, app_repo.tag(6))
    second = bump(remote, app_repo, app_repo.tag(6))

    assert second.status == "unchanged"
    assert second.commit == first.commit
    assert len(remote.push_log()) == 1


def test_rerun_after_target_moved_updates_branch(remote, app_repo, tmp_path):
    first = bump(remote, app_repo, app_repo.tag(6))
    other = tmp_path / "other"
    git("clone", "--quiet", remote.url, str(other))
    (other / "README.md").write_text("manifests\n")
    git("add", "README.md", cwd=other)
    git("commit", "--quiet", "-m", "Add README", cwd=other)
    git("push", "--quiet", "origin", "HEAD:main", cwd=other)

    second = bump(remote, app_repo, app_repo.tag(6))

    branches = git("for-each-ref", "--format=%(refname)", "refs/heads/argocd/", cwd=remote.path).splitlines()
    assert second.status == "changed"
    assert second.commit != first.commit
    assert branches == [f"refs/heads/argocd/{app_repo.tag(6)}"]
    assert remote.rev(f"argocd/{app_repo.tag(6)}^") == remote.rev("main")


# --- direct mode -------------------------------------------------------------------


def test_direct_pushes_to_target_branch(remote, app_repo):
    result = bump(remote, app_repo, app_repo.tag(7), mode="direct")

    assert result.status == "changed"
    assert result.branch == "main"
    assert remote.rev("main") == result.commit
    assert remote.count("main") == 2
    assert remote.push_log()[0]["options"] == []


def test_direct_retries_after_losing_race(remote, app_repo, tmp_path):
    """Another push lands between our clone and our push; the bump fetches, re-applies and lands after it."""
    other = tmp_path / "other"
    git("clone", "--quiet", remote.url, str(other))
    lines = []

    def push_first(line: str) -> None:
        lines.append(line)
        if line.startswith("$ git push") and not (other / "README.md").exists():
            (other / "README.md").write_text("manifests\n")
            git("add", "README.md", cwd=other)
            git("commit", "--quiet", "-m", "Add README", cwd=other)
            git("push", "--quiet", "origin", "HEAD:main", cwd=other)

    result = bump(remote, app_repo, app_repo.tag(7), mode="direct", output=push_first, backoff_seconds=0.01)

    assert result.status == "changed"
    assert remote.rev("main") == result.commit
    assert remote.rev("main^") == git("rev-parse", "HEAD", cwd=other)
    assert remote.show("main") == DEPLOYMENT.format(image=image(app_repo.tag(7)))
    assert sum(line.startswith("$ git push") for line in lines) == 2
    assert any("lost a race" in line for line in lines)


def test_direct_gives_up_after_attempts(remote, app_repo, tmp_path):
    other = tmp_path / "other"
    git("clone", "--quiet", remote.url, str(other))
    counter = iter(range(100))

    def always_push_first(line: str) -> None:
        if line.startswith("$ git push"):
            (other / "README.md").write_text(f"{next(counter)}\n")
            git("add", "README.md", cwd=other)
            git("commit", "--quiet", "-m", "Move main", cwd=other)
            git("push", "--quiet", "origin", "HEAD:main", cwd=other)

    with pytest.raises(PushRejectedError) as raised:
        bump(remote, app_repo, app_repo.tag(7), mode="direct", output=always_push_first, attempts=3,
             backoff_seconds=0.01)

    assert "(after 3 attempts)" in str(raised.value)
    assert "rejected" in str(raised.value)
    assert remote.show("main") == DEPLOYMENT.format(image=image(app_repo.tag(5)))


# --- rollback guard ------------------------------------------------------------------


def test_older_image_is_skipped(remote, app_repo):
    result = bump(remote, app_repo, app_repo.tag(3), mode="direct")

    assert result.status == "skipped"
    assert result.message == f"skipped: {app_repo.tag(5)} is newer than {app_repo.tag(3)}"
    assert result.commit is None
    assert remote.count("main") == 1


def test_allow_rollback_replaces_newer_image(remote, app_repo):
    result = bump(remote, app_repo, app_repo.tag(3), mode="direct", allow_rollback=True)

    assert result.status == "changed"
    assert remote.show("main") == DEPLOYMENT.format(image=image(app_repo.tag(3)))


def test_unknown_deployed_hash_needs_allow_rollback(tmp_path, app_repo):
    remote = make_remote(tmp_path, "0badc0de")

    with pytest.raises(RollbackRiskError) as raised:
        bump(remote, app_repo, app_repo.tag(6), mode="direct")

    assert "the deployed tag 0badc0de is not a commit of the application repository" in str(raised.value)
    assert "--allow-rollback" in str(raised.value)
    assert remote.count("main") == 1


def test_unknown_deployed_hash_with_allow_rollback(tmp_path, app_repo):
    remote = make_remote(tmp_path, "0badc0de")

    result = bump(remote, app_repo, app_repo.tag(6), mode="direct", allow_rollback=True)

    assert result.status == "changed"
    assert result.old_image == image("0badc0de")


def test_release_tag_is_replaced_without_check(tmp_path, app_repo):
    """A deployed release tag such as 0.1.0 names no commit, so the first bump needs no flag."""
    remote = make_remote(tmp_path, "0.1.0")

    result = bump(remote, app_repo, app_repo.tag(6), mode="direct")

    assert result.status == "changed"
    assert result.old_image == image("0.1.0")


def test_shallow_application_clone_is_unshallowed(remote, app_repo, tmp_path):
    shallow = tmp_path / "shallow-app"
    git("clone", "--quiet", "--depth=1", app_repo.origin.as_uri(), str(shallow))

    result = bump(remote, app_repo, app_repo.tag(19), mode="direct", app_repo=shallow)

    assert result.status == "changed"
    assert git("rev-parse", "--is-shallow-repository", cwd=shallow) == "false"


def test_shallow_application_clone_skips_older(tmp_path, app_repo):
    remote = make_remote(tmp_path, app_repo.tag(19))
    shallow = tmp_path / "shallow-app"
    git("clone", "--quiet", "--depth=1", "--branch=main", app_repo.origin.as_uri(), str(shallow))
    git("fetch", "--quiet", "--depth=1", "origin", app_repo.commits[4], cwd=shallow)

    result = bump(remote, app_repo, app_repo.tag(4), app_repo=shallow)

    assert result.status == "skipped"
    assert result.message == f"skipped: {app_repo.tag(19)} is newer than {app_repo.tag(4)}"


# --- no-ops and bad input ---------------------------------------------------------------


def test_same_image_makes_no_commit(remote, app_repo):
    result = bump(remote, app_repo, app_repo.tag(5), mode="direct")

    assert result.status == "unchanged"
    assert result.message.startswith("already up to date")
    assert remote.count("main") == 1
    assert remote.push_log() == []


def test_dry_run_pushes_nothing(remote, app_repo):
    lines = []
    result = bump(remote, app_repo, app_repo.tag(6), dry_run=True, output=lines.append)

    assert result.status == "dry-run"
    assert result.commit is None
    assert f"-          image: {image(app_repo.tag(5))}  # set by inv bump" in result.diff
    assert f"+          image: {image(app_repo.tag(6))}  # set by inv bump" in result.diff
    assert any(line.startswith("dry run: would push: git push --porcelain origin HEAD:refs/heads/argocd/")
               for line in lines)
    assert remote.push_log() == []
    assert remote.rev(f"argocd/{app_repo.tag(6)}") == ""


def test_dirty_tag_is_rejected(remote, app_repo):
    with pytest.raises(BumpError) as raised:
        bump(remote, app_repo, f"{app_repo.tag(6)}-dirty")

    assert "uncommitted changes" in str(raised.value)
    assert remote.push_log() == []


def test_missing_path_fails(remote, app_repo):
    with pytest.raises(BumpError) as raised:
        bump(remote, app_repo, app_repo.tag(6), manifests_path="overlays/dev")

    assert str(raised.value).startswith("manifests path 'overlays/dev' not found in")
    assert remote.push_log() == []


def test_missing_container_fails(remote, app_repo):
    other_image = parse_image_reference(f"registry.example.com/acme/other:{app_repo.tag(6)}")

    with pytest.raises(PipelineError) as raised:
        bump(remote, app_repo, app_repo.tag(6), image=other_image)

    assert "no image registry.example.com/acme/other in apps/hello-python/deployment.yaml" in str(raised.value)
    assert "/tmp" not in str(raised.value)
    assert remote.push_log() == []


def test_unreachable_repository_fails(tmp_path, app_repo):
    missing = type("Missing", (), {"url": (tmp_path / "nowhere.git").as_uri()})

    with pytest.raises(BumpError) as raised:
        bump(missing, app_repo, app_repo.tag(6))

    assert str(raised.value).startswith(f"cloning {(tmp_path / 'nowhere.git').as_uri()} (branch main) failed:")
    assert "check --url / manifests.url, --branch / manifests.branch and the credentials" in str(raised.value)


def test_missing_target_branch_fails(remote, app_repo):
    with pytest.raises(BumpError) as raised:
        bump(remote, app_repo, app_repo.tag(6), target_branch="production")

    assert "Remote branch production not found" in str(raised.value)


def test_temporary_clone_is_removed(remote, app_repo, tmp_path):
    temp_root = tmp_path / "temp"
    temp_root.mkdir()

    bump(remote, app_repo, app_repo.tag(6), temp_root=str(temp_root))
    with pytest.raises(PipelineError):
        bump(remote, app_repo, app_repo.tag(6), manifests_path="missing", temp_root=str(temp_root))

    assert list(temp_root.iterdir()) == []


def test_clone_is_shallow(remote, app_repo, tmp_path):
    """The clone contains main's tip only, plus the bump's own commit."""
    seen = {}

    def inspect_clone(line: str) -> None:
        if line.startswith("$ git push"):
            [clone] = list((tmp_path / "temp").iterdir())
            seen["count"] = git("rev-list", "--count", "--all", cwd=clone / "manifests")
            seen["shallow"] = git("rev-parse", "--is-shallow-repository", cwd=clone / "manifests")

    (tmp_path / "temp").mkdir()
    bump(remote, app_repo, app_repo.tag(6), temp_root=str(tmp_path / "temp"), output=inspect_clone)

    assert seen == {"count": "2", "shallow": "true"}


# --- push results ---------------------------------------------------------------------


@pytest.fixture
def protected_remote(tmp_path, app_repo):
    """A remote whose pre-receive hook declines main (a protected branch) and branches under locked/."""
    remote = make_remote(tmp_path, app_repo.tag(5))
    install_hook(remote, "pre-receive", PROTECTING_PRE_RECEIVE)
    return remote


def test_push_to_protected_branch_fails(protected_remote, app_repo):
    lines = []
    with pytest.raises(PushRejectedError) as raised:
        bump(protected_remote, app_repo, app_repo.tag(6), mode="direct", output=lines.append)

    message = str(raised.value)
    assert message.startswith("push to refs/heads/main was rejected: [remote rejected] (pre-receive hook declined)")
    assert "GL-HOOK-ERR: You are not allowed to push code to protected branches on this project." in message
    assert not any(line.startswith("pushed") for line in lines)
    assert sum(line.startswith("$ git push") for line in lines) == 1
    assert protected_remote.count("main") == 1


def test_push_to_reserved_branch_fails(protected_remote, app_repo):
    with pytest.raises(PushRejectedError) as raised:
        bump(protected_remote, app_repo, app_repo.tag(6), branch_prefix="locked/web-")

    assert f"push to refs/heads/locked/web-{app_repo.tag(6)} was rejected" in str(raised.value)
    assert "GL-HOOK-ERR: branch name is reserved." in str(raised.value)
    assert protected_remote.rev(f"locked/web-{app_repo.tag(6)}") == ""


def test_push_to_allowed_branch_succeeds(protected_remote, app_repo):
    result = bump(protected_remote, app_repo, app_repo.tag(6), branch_prefix="bump/web-")

    assert result.status == "changed"
    assert protected_remote.rev(f"bump/web-{app_repo.tag(6)}") == result.commit


def test_push_option_warning_fails(remote, app_repo):
    install_hook(remote, "post-receive", WARNING_POST_RECEIVE)

    with pytest.raises(PushRejectedError) as raised:
        bump(remote, app_repo, app_repo.tag(6))

    assert "GitLab did not act on the push options" in str(raised.value)
    assert "Target branch nope does not exist" in str(raised.value)


def test_check_push_rejects_empty_output():
    with pytest.raises(PushRejectedError) as raised:
        check_push(0, "", "", "refs/heads/main")

    assert "git printed no status for this ref" in str(raised.value)


def test_check_push_rejects_missing_ref():
    stdout = "To /srv/manifests.git\n*\tHEAD:refs/heads/other\t[new branch]\nDone"

    with pytest.raises(PushRejectedError):
        check_push(0, stdout, "", "refs/heads/main")


def test_check_push_rejects_failed_status():
    stdout = "To /srv/manifests.git\n \tHEAD:refs/heads/main\t1111111..2222222\nDone"

    with pytest.raises(PushRejectedError) as raised:
        check_push(1, stdout, "error: something went wrong", "refs/heads/main")

    assert "git exited with status 1: error: something went wrong" in str(raised.value)


def test_check_push_accepts_fast_forward():
    stdout = "To /srv/manifests.git\n \tHEAD:refs/heads/main\t1111111..2222222\nDone"

    check_push(0, stdout, "", "refs/heads/main")


def test_check_push_marks_non_fast_forward_retryable():
    stdout = "To /srv/manifests.git\n!\tHEAD:refs/heads/main\t[rejected] (fetch first)\nDone"

    with pytest.raises(PushRejectedError) as raised:
        check_push(1, stdout, "", "refs/heads/main")

    assert raised.value.retryable is True


# --- result file and digest pinning -----------------------------------------------------


def test_result_file_has_no_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("MANIFESTS_TOKEN", "glpat-secret-value-123")
    result = BumpResult("changed", "argocd/1a2b3c4d", "f" * 40, "old", "new", "diff",
                        "pushed to https://oauth2:glpat-secret-value-123@gitlab.example.com/x.git")

    path = write_result(result, tmp_path / "reports" / "bump.json")

    report = json.loads(path.read_text())
    assert report["status"] == "changed"
    assert report["branch"] == "argocd/1a2b3c4d"
    assert report["commit"] == "f" * 40
    assert "glpat-secret-value-123" not in path.read_text()


def test_pin_digest_appends_recorded_digest(tmp_path):
    digest = "sha256:" + "a" * 64
    env_file = tmp_path / "image.env"
    env_file.write_text(f"IMAGE_REFERENCE={image('1a2b3c4d')}@{digest}\nIMAGE_TAG=1a2b3c4d\nIMAGE_DIGEST={digest}\n")

    pinned = pin_digest(parse_image_reference(image("1a2b3c4d")), read_image_env(env_file), str(env_file))

    assert str(pinned) == f"{image('1a2b3c4d')}@{digest}"


def test_pin_digest_rejects_other_tag(tmp_path):
    env_file = tmp_path / "image.env"
    env_file.write_text("IMAGE_TAG=0f0e0d0c\nIMAGE_DIGEST=sha256:" + "a" * 64 + "\n")

    with pytest.raises(BumpError) as raised:
        pin_digest(parse_image_reference(image("1a2b3c4d")), read_image_env(env_file), str(env_file))

    assert "has no digest for tag 1a2b3c4d (tag '0f0e0d0c')" in str(raised.value)


def test_bump_leaves_os_environ_alone(remote, app_repo):
    before = dict(os.environ)

    bump(remote, app_repo, app_repo.tag(6))

    assert dict(os.environ) == before


def test_long_history_is_cloned_at_depth_one(big_remote, app_repo, tmp_path):
    """A bump on a 10,000-commit main fetches one commit and pushes on top of it."""
    copy = tmp_path / "big.git"
    shutil.copytree(big_remote.path, copy)
    remote = type(big_remote)(copy)
    seen = {}

    def inspect_clone(line: str) -> None:
        if line.startswith("$ git push"):
            [clone] = list((tmp_path / "temp").iterdir())
            seen["count"] = git("rev-list", "--count", "--all", cwd=clone / "manifests")

    (tmp_path / "temp").mkdir()
    result = bump(remote, app_repo, app_repo.tag(6), mode="direct", temp_root=str(tmp_path / "temp"),
                  output=inspect_clone)

    assert result.status == "changed"
    assert seen == {"count": "2"}
    assert remote.count("main") == 10_001


KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
images:
  - name: registry.example.com/acme/hello-python
    # Quoted, because a tag of digits only would be read as a number.
    newTag: "{tag}"
"""


def test_kustomize_overlay_new_tag_is_set(tmp_path, app_repo):
    """The default manifests.path is a kustomize overlay whose images: entry carries only the tag."""
    remote = make_remote(tmp_path, app_repo.tag(5))
    clone = tmp_path / "overlay-clone"
    git("clone", "--quiet", remote.url, str(clone))
    (clone / "overlays" / "dev").mkdir(parents=True)
    (clone / "overlays" / "dev" / "kustomization.yaml").write_text(KUSTOMIZATION.format(tag=app_repo.tag(5)))
    git("add", "overlays", cwd=clone)
    git("commit", "--quiet", "-m", "Add the dev overlay", cwd=clone)
    git("push", "--quiet", "origin", "HEAD:main", cwd=clone)

    older = bump(remote, app_repo, app_repo.tag(4), manifests_path="overlays/dev", mode="direct")
    newer = bump(remote, app_repo, app_repo.tag(6), manifests_path="overlays/dev", mode="direct")

    assert older.status == "skipped"
    assert older.message == f"skipped: {app_repo.tag(5)} is newer than {app_repo.tag(4)}"
    assert newer.status == "changed"
    assert newer.old_image == image(app_repo.tag(5))
    assert remote.show("main", "overlays/dev/kustomization.yaml") == KUSTOMIZATION.format(tag=app_repo.tag(6))


def test_server_without_push_options_suggests_fix(tmp_path, app_repo):
    remote = make_remote(tmp_path, app_repo.tag(5))
    git("config", "receive.advertisePushOptions", "false", cwd=remote.path)

    with pytest.raises(PushRejectedError) as raised:
        bump(remote, app_repo, app_repo.tag(6))

    message = str(raised.value)
    assert message.startswith(f"push to refs/heads/argocd/{app_repo.tag(6)} failed: the manifests repository "
                              "does not accept push options")
    assert "use --mode direct (bump.mode: direct)" in message
    assert "run `git config receive.advertisePushOptions true` in the bare repository" in message
    assert "bump again" not in message
    assert remote.rev(f"refs/heads/argocd/{app_repo.tag(6)}") == ""


def test_missing_path_names_given_setting(remote, app_repo):
    with pytest.raises(BumpError) as raised:
        bump(remote, app_repo, app_repo.tag(6), manifests_path="overlays/nope", path_setting="--path / manifests.path")

    assert "set --path / manifests.path to a file or folder of that repository" in str(raised.value)


def test_merge_request_rerun_prints_no_line(remote, app_repo):
    """The caller prints result.message, so bump_manifests must not print it as well."""
    bump(remote, app_repo, app_repo.tag(6))
    lines = []

    result = bump(remote, app_repo, app_repo.tag(6), output=lines.append)

    assert result.status == "unchanged"
    assert result.message == (
        f"merge request branch argocd/{app_repo.tag(6)} already has this change on the current main"
    )
    assert result.message not in lines
