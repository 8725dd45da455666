"""`inv promote` against a real bare manifests repository with a hook that records every push."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.promote import PromotionError, image_in_folder
from pipeline.reference import parse_image_reference
from tests.kube.conftest import MANIFESTS, REPOSITORY_ROOT, replace_in, run_invoke

IMAGE_REPOSITORY = "registry.gitlab.com/acme/hello-python"
DIGEST = "sha256:" + "0f" * 32
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.invalid",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.invalid",
}

# Appends the refs and push options of each accepted push to pushes.jsonl beside the repository.
RECORDING_HOOK = """\
#!/usr/bin/env python3
import json, os, sys
refs = [line.split()[2] for line in sys.stdin if line.strip()]
count = int(os.environ.get("GIT_PUSH_OPTION_COUNT", "0"))
options = [os.environ[f"GIT_PUSH_OPTION_{index}"] for index in range(count)]
with open(os.path.join(os.path.dirname(os.getcwd().rstrip("/")), "pushes.jsonl"), "a") as log:
    log.write(json.dumps({"refs": refs, "options": options}) + "\\n")
"""


def git(*arguments: str, cwd: Path) -> str:
    completed = subprocess.run(["git", *arguments], cwd=cwd, env={**os.environ, **GIT_IDENTITY},
                               capture_output=True, text=True, check=False, timeout=60)
    assert completed.returncode == 0, f"git {' '.join(arguments)}: {completed.stderr}"
    return completed.stdout.strip()


@pytest.fixture(scope="module")
def app_commits(tmp_path_factory) -> tuple[Path, list[str]]:
    """An application repository with three commits, oldest first; image tags are their first 8 hex digits."""
    path = tmp_path_factory.mktemp("app")
    git("init", "--quiet", "--initial-branch", "main", cwd=path)
    for number in range(3):
        (path / "version.txt").write_text(f"{number}\n")
        git("add", "version.txt", cwd=path)
        git("commit", "--quiet", "-m", f"Change {number}", cwd=path)
    commits = git("log", "--reverse", "--format=%H", cwd=path).splitlines()
    return path, commits


def make_manifests_remote(root: Path, dev_image_lines: str, prod_tag: str) -> Path:
    """Create a bare manifests repository whose main branch is manifests/ with the given dev and prod images."""
    work = root / "manifests-work"
    shutil.copytree(MANIFESTS, work)
    replace_in(work / "overlays" / "dev" / "kustomization.yaml", '    newTag: "0.1.0"\n', dev_image_lines)
    replace_in(work / "overlays" / "prod" / "kustomization.yaml", 'newTag: "0.1.0"', f'newTag: "{prod_tag}"')
    git("init", "--quiet", "--initial-branch", "main", cwd=work)
    git("add", ".", cwd=work)
    git("commit", "--quiet", "-m", "Add the manifests", cwd=work)

    bare = root / "manifests.git"
    git("clone", "--quiet", "--bare", str(work), str(bare), cwd=root)
    git("config", "receive.advertisePushOptions", "true", cwd=bare)
    hook = bare / "hooks" / "post-receive"
    hook.write_text(RECORDING_HOOK)
    hook.chmod(0o755)
    return bare


def refs(bare: Path) -> str:
    return git("for-each-ref", "--format=%(refname) %(objectname)", cwd=bare)


def pushes(bare: Path) -> list[dict]:
    log = bare.parent / "pushes.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def promote(app: Path, *arguments: str):
    return run_invoke("--search-root", str(REPOSITORY_ROOT), "promote", *arguments,
                      env={"INVOKE_IMAGE_REPOSITORY": IMAGE_REPOSITORY}, cwd=app)


def test_promote_copies_tag_and_digest(tmp_path, app_commits):
    app, commits = app_commits
    new_tag, old_tag = commits[2][:8], commits[1][:8]
    bare = make_manifests_remote(tmp_path, f'    newTag: "{new_tag}"\n    digest: {DIGEST}\n', old_tag)

    result = promote(app, "--from", "dev", "--to", "prod", "--url", str(bare))

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    branch = f"argocd/prod/{new_tag}"
    prod = git("show", f"{branch}:overlays/prod/kustomization.yaml", cwd=bare)
    assert f'newTag: "{new_tag}"' in prod
    assert f"digest: {DIGEST}" in prod
    assert git("diff", "--name-only", "main", branch, cwd=bare) == "overlays/prod/kustomization.yaml"


def test_promote_opens_merge_request(tmp_path, app_commits):
    app, commits = app_commits
    new_tag, old_tag = commits[2][:8], commits[0][:8]
    bare = make_manifests_remote(tmp_path, f'    newTag: "{new_tag}"\n', old_tag)

    result = promote(app, "--from", "dev", "--to", "prod", "--url", str(bare))

    assert result.returncode == 0, result.stderr
    [push] = pushes(bare)
    assert push["refs"] == [f"refs/heads/argocd/prod/{new_tag}"]
    assert "merge_request.create" in push["options"]
    assert "merge_request.target=main" in push["options"]
    assert f"merge_request.title=Promote {IMAGE_REPOSITORY}:{new_tag} from dev to prod" in push["options"]


def test_promote_rejects_older_dev_image(tmp_path, app_commits):
    app, commits = app_commits
    older, newer = commits[0][:8], commits[2][:8]
    bare = make_manifests_remote(tmp_path, f'    newTag: "{older}"\n', newer)
    before = refs(bare)

    result = promote(app, "--from", "dev", "--to", "prod", "--url", str(bare))

    assert result.returncode == 1
    assert result.stderr == (
        f"error: not promoting dev to prod: {newer} is newer than {older}, so prod would roll back; "
        "bump dev first\n"
    )
    assert refs(bare) == before
    assert pushes(bare) == []


def test_promote_rejects_unknown_environment(tmp_path, app_commits):
    app, commits = app_commits
    bare = make_manifests_remote(tmp_path, f'    newTag: "{commits[2][:8]}"\n', commits[1][:8])
    before = refs(bare)

    result = promote(app, "--from", "dev", "--to", "staging", "--url", str(bare))

    assert result.returncode == 1
    assert result.stderr == (
        "error: unknown environment 'staging'; use one of dev, prod or add it to environments.names\n"
    )
    assert refs(bare) == before
    assert pushes(bare) == []


def test_promote_rejects_same_environment(tmp_path, app_commits):
    app, commits = app_commits
    bare = make_manifests_remote(tmp_path, f'    newTag: "{commits[2][:8]}"\n', commits[1][:8])

    result = promote(app, "--from", "prod", "--to", "prod", "--url", str(bare))

    assert result.returncode == 1
    assert result.stderr == "error: cannot promote prod to itself; give two different environments\n"
    assert pushes(bare) == []


def test_promote_requires_target(tmp_path, app_commits):
    app, _ = app_commits

    result = promote(app, "--from", "dev")

    assert result.returncode == 1
    assert result.stderr == "error: --to is required; name the environment to promote to, such as prod\n"


def test_promote_of_unreachable_repository_fails(tmp_path, app_commits):
    app, _ = app_commits

    result = promote(app, "--to", "prod", "--url", str(tmp_path / "absent.git"))

    assert result.returncode == 1
    assert result.stderr.startswith(f"error: cloning {tmp_path / 'absent.git'} (branch main) failed: ")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def write_kustomization(folder: Path, images: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "kustomization.yaml").write_text(f"resources: [../../base]\nimages:\n{images}")
    return folder


def test_image_in_folder_keeps_leading_zero(tmp_path):
    folder = write_kustomization(tmp_path / "overlays" / "dev",
                                 f"  - name: {IMAGE_REPOSITORY}\n    newTag: 0123456\n")

    reference = image_in_folder(folder, parse_image_reference(IMAGE_REPOSITORY), shown_as="overlays/dev")

    assert str(reference) == f"{IMAGE_REPOSITORY}:0123456"


def test_image_in_folder_follows_new_name(tmp_path):
    local = "127.0.0.1:5000/hello-python"
    folder = write_kustomization(tmp_path / "overlays" / "dev",
                                 f"  - name: {IMAGE_REPOSITORY}\n    newName: {local}\n    newTag: abc12345\n")

    reference = image_in_folder(folder, parse_image_reference(local), shown_as="overlays/dev")

    assert str(reference) == f"{local}:abc12345"


def test_image_in_folder_rejects_two_references(tmp_path):
    folder = write_kustomization(tmp_path / "overlays" / "dev", f"  - name: {IMAGE_REPOSITORY}\n    newTag: a1\n")
    (folder / "hello-python-deployment.yaml").write_text(
        f"kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n"
        f"        - name: web\n          image: {IMAGE_REPOSITORY}:b2\n"
    )

    with pytest.raises(PromotionError) as caught:
        image_in_folder(folder, parse_image_reference(IMAGE_REPOSITORY), shown_as="overlays/dev")

    assert str(caught.value) == (
        f"overlays/dev sets {IMAGE_REPOSITORY} more than once ({IMAGE_REPOSITORY}:a1, {IMAGE_REPOSITORY}:b2); "
        "keep one images: entry per overlay"
    )


def test_image_in_folder_requires_tag(tmp_path):
    folder = write_kustomization(tmp_path / "overlays" / "dev", f"  - name: {IMAGE_REPOSITORY}\n    digest: {DIGEST}\n")

    with pytest.raises(PromotionError) as caught:
        image_in_folder(folder, parse_image_reference(IMAGE_REPOSITORY), shown_as="overlays/dev")

    assert str(caught.value) == (
        f"overlays/dev runs {IMAGE_REPOSITORY}@{DIGEST} without a tag; set newTag next to the digest"
    )


def test_image_in_folder_without_image_fails(tmp_path):
    folder = write_kustomization(tmp_path / "overlays" / "dev", "  - name: registry.example.com/other\n    newTag: a1\n")

    with pytest.raises(PromotionError) as caught:
        image_in_folder(folder, parse_image_reference(IMAGE_REPOSITORY), shown_as="overlays/dev")

    assert str(caught.value) == (
        f"no image of {IMAGE_REPOSITORY} in overlays/dev; set it in the images: list of its kustomization.yaml, "
        "or check image.repository"
    )


def test_promote_rejects_non_numeric_attempts(tmp_path, app_commits):
    app, commits = app_commits
    bare = make_manifests_remote(tmp_path, f'    newTag: "{commits[2][:8]}"\n', commits[1][:8])

    result = run_invoke("--search-root", str(REPOSITORY_ROOT), "promote", "--from", "dev", "--to", "prod",
                        "--url", str(bare), env={"INVOKE_IMAGE_REPOSITORY": IMAGE_REPOSITORY,
                                                 "INVOKE_BUMP_ATTEMPTS": "abc"}, cwd=app)

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: bump.attempts (invoke.yaml or INVOKE_BUMP_ATTEMPTS) must be a whole number, got 'abc'; "
        "give one such as 6"
    ]
    assert pushes(bare) == []
