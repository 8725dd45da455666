"""`inv bump` and `inv rollback` as a user runs them: exit status, stdout, one line on stderr, result file."""

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import yaml

from .conftest import DEPLOYMENT, IMAGE_REPOSITORY, PROTECTING_PRE_RECEIVE, REPO_ROOT, git, image


def run_inv(app_repo, *args, env=None, timeout=120) -> subprocess.CompletedProcess:
    """Run `inv ARGS` in the application repository with this project's tasks.py."""
    environment = {
        **os.environ,
        "INVOKE_IMAGE_REPOSITORY": IMAGE_REPOSITORY,
        "INVOKE_MANIFESTS_PATH": "apps",
        **(env or {}),
    }
    for name in ("CI_COMMIT_SHA", "CI_COMMIT_SHORT_SHA", "CI_PIPELINE_URL", "MANIFESTS_TOKEN"):
        if name not in (env or {}):
            environment.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO_ROOT), *args],
        cwd=app_repo.path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_bump_task_pushes_and_writes_result(remote, app_repo, tmp_path):
    result_file = tmp_path / "bump.json"

    completed = run_inv(app_repo, "bump", "--url", remote.url, "--tag", app_repo.tag(6),
                        "--result-file", str(result_file))

    report = json.loads(result_file.read_text())
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    assert completed.stdout.splitlines()[-1] == (
        f"pushed argocd/{app_repo.tag(6)}; GitLab opens or updates the merge request into main"
    )
    assert report["status"] == "changed"
    assert report["branch"] == f"argocd/{app_repo.tag(6)}"
    assert report["commit"] == remote.rev(f"argocd/{app_repo.tag(6)}")
    assert report["old_image"] == image(app_repo.tag(5))
    assert report["new_image"] == image(app_repo.tag(6))
    assert git("log", "-1", "--format=%(trailers:only,unfold)", report["commit"], cwd=remote.path) == (
        f"Source-Commit: {app_repo.commits[6]}"
    )


def test_bump_task_uses_head_as_tag(remote, app_repo, tmp_path):
    completed = run_inv(app_repo, "bump", "--url", remote.url, "--mode", "direct",
                        "--result-file", str(tmp_path / "bump.json"), env={"CI_PIPELINE_URL": "https://ci/p/7"})

    assert completed.returncode == 0, completed.stderr
    assert remote.show("main") == DEPLOYMENT.format(image=image(app_repo.tag(19)))
    assert git("log", "-1", "--format=%(trailers:only,unfold)", "main", cwd=remote.path) == (
        f"Source-Commit: {app_repo.commits[19]}\nPipeline: https://ci/p/7"
    )


def test_bump_task_skips_older_image(remote, app_repo, tmp_path):
    result_file = tmp_path / "bump.json"

    completed = run_inv(app_repo, "bump", "--url", remote.url, "--tag", app_repo.tag(2), "--mode", "direct",
                        "--result-file", str(result_file))

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines()[-1] == f"skipped: {app_repo.tag(5)} is newer than {app_repo.tag(2)}"
    assert json.loads(result_file.read_text())["status"] == "skipped"
    assert remote.count("main") == 1


def test_rollback_task_replaces_newer_image(remote, app_repo, tmp_path):
    completed = run_inv(app_repo, "rollback", "--to", app_repo.commits[2], "--url", remote.url, "--mode", "direct",
                        "--result-file", str(tmp_path / "bump.json"))

    assert completed.returncode == 0, completed.stderr
    assert remote.show("main") == DEPLOYMENT.format(image=image(app_repo.tag(2)))
    assert git("log", "-1", "--format=%(trailers:only,unfold)", "main", cwd=remote.path) == (
        f"Source-Commit: {app_repo.commits[2]}"
    )


def test_rollback_task_rejects_unknown_commit(remote, app_repo, tmp_path):
    completed = run_inv(app_repo, "rollback", "--to", "deadbeef", "--url", remote.url,
                        "--result-file", str(tmp_path / "bump.json"))

    assert completed.returncode == 1
    assert completed.stderr.count("\n") == 1
    assert completed.stderr.startswith("error: rollback target 'deadbeef' is not a commit of the application")


def test_bump_task_fails_in_one_line_when_unreachable(app_repo, tmp_path):
    result_file = tmp_path / "bump.json"
    url = (tmp_path / "missing.git").as_uri()

    completed = run_inv(app_repo, "bump", "--url", url, "--tag", app_repo.tag(6), "--result-file", str(result_file))

    assert completed.returncode == 1
    assert completed.stderr.count("\n") == 1
    assert completed.stderr.startswith(f"error: cloning {url} (branch main) failed:")
    assert "Traceback" not in completed.stderr
    assert json.loads(result_file.read_text())["status"] == "failed"


def test_bump_task_fails_on_protected_branch(remote, app_repo, tmp_path):
    hook = remote.path / "hooks" / "pre-receive"
    hook.write_text(PROTECTING_PRE_RECEIVE)
    hook.chmod(0o755)

    completed = run_inv(app_repo, "bump", "--url", remote.url, "--tag", app_repo.tag(6), "--mode", "direct",
                        "--result-file", str(tmp_path / "bump.json"))

    assert completed.returncode == 1
    assert completed.stderr.count("\n") == 1
    assert "pre-receive hook declined" in completed.stderr
    assert "GL-HOOK-ERR: You are not allowed to push code to protected branches" in completed.stderr
    assert "pushed" not in completed.stdout


def test_bump_task_rejects_dirty_tag(remote, app_repo, tmp_path):
    completed = run_inv(app_repo, "bump", "--url", remote.url, "--tag", f"{app_repo.tag(6)}-dirty",
                        "--result-file", str(tmp_path / "bump.json"))

    assert completed.returncode == 1
    assert completed.stderr.startswith(f"error: image tag {app_repo.tag(6)}-dirty is from a working tree")
    assert remote.push_log() == []


def test_bump_task_masks_token_from_url(app_repo, tmp_path):
    token = "glpat-Xy12Zw34Vu56Ts78"
    result_file = tmp_path / "bump.json"
    # Port 1 on 127.0.0.1 refuses the connection at once.
    url = f"https://oauth2:{token}@127.0.0.1:1/acme/manifests.git"

    completed = run_inv(app_repo, "bump", "--url", url, "--tag", app_repo.tag(6), "--result-file", str(result_file))

    assert completed.returncode == 1
    assert token not in completed.stderr
    assert token not in completed.stdout
    assert token not in result_file.read_text()
    assert completed.stderr.startswith("error: cloning https://127.0.0.1:1/acme/manifests.git (branch main) failed:")


def test_bump_task_dry_run_prints_diff(remote, app_repo, tmp_path):
    completed = run_inv(app_repo, "bump", "--url", remote.url, "--tag", app_repo.tag(6), "--dry-run",
                        "--result-file", str(tmp_path / "bump.json"))

    assert completed.returncode == 0, completed.stderr
    assert f"+          image: {image(app_repo.tag(6))}  # set by inv bump" in completed.stdout
    assert "dry run: would push: git push --porcelain origin HEAD:refs/heads/argocd/" in completed.stdout
    assert remote.push_log() == []


def test_concurrent_direct_bumps_all_land_or_skip(remote, app_repo, tmp_path):
    """16 bumps race for main: each lands as its own commit or is skipped as older; none is lost."""
    tags = [app_repo.tag(index) for index in range(6, 20)] + [app_repo.tag(19), app_repo.tag(12)]
    assert len(tags) == 16

    def run(number: int):
        result_file = tmp_path / f"bump-{number}.json"
        completed = run_inv(app_repo, "bump", "--url", remote.url, "--mode", "direct", "--tag", tags[number],
                            "--attempts", "16", "--result-file", str(result_file), timeout=300)
        assert result_file.exists(), f"exit status {completed.returncode}: {completed.stderr}"
        return completed, json.loads(result_file.read_text())

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(run, range(16)))

    history = git("rev-list", "main", cwd=remote.path).splitlines()
    landed = []
    for completed, report in outcomes:
        assert completed.returncode == 0, completed.stderr
        assert report["status"] in ("changed", "skipped", "unchanged"), report
        if report["commit"] is not None:
            assert report["commit"] in history
        if report["status"] == "changed":
            landed.append(report["commit"])
    assert len(set(landed)) == len(landed)
    assert len(history) == 1 + len(landed)

    final = yaml.safe_load(remote.show("main"))
    final_image = final["spec"]["template"]["spec"]["containers"][0]["image"]
    assert final_image == image(app_repo.tag(19))

    # Each landed commit's image is newer than the one before it on main.
    order = [app_repo.tag(index) for index in range(20)]
    landed_tags = [yaml.safe_load(remote.show(commit))["spec"]["template"]["spec"]["containers"][0]["image"]
                   .rsplit(":", 1)[1] for commit in reversed(history[:-1])]
    assert landed_tags == sorted(landed_tags, key=order.index)
    assert len(set(landed_tags)) == len(landed_tags)


def test_bump_env_edits_environment_folder(remote, app_repo, tmp_path):
    runtime_config = tmp_path / "environments.yaml"
    runtime_config.write_text("environments:\n  names: [hello-python]\n  path: apps/{env}\n")

    completed = run_inv(app_repo, "-f", str(runtime_config), "bump", "--url", remote.url, "--env", "hello-python",
                        "--tag", app_repo.tag(6), "--result-file", str(tmp_path / "bump.json"))

    assert completed.returncode == 0, completed.stderr
    branch = f"argocd/hello-python/{app_repo.tag(6)}"
    assert remote.show(branch) == DEPLOYMENT.format(image=image(app_repo.tag(6)))
    assert remote.show("main") == DEPLOYMENT.format(image=image(app_repo.tag(5)))


def test_bump_unknown_env_is_one_line(remote, app_repo, tmp_path):
    completed = run_inv(app_repo, "bump", "--url", remote.url, "--env", "staging", "--tag", app_repo.tag(6),
                        "--result-file", str(tmp_path / "bump.json"))

    assert completed.returncode == 1
    assert completed.stderr.splitlines() == [
        "error: unknown environment 'staging'; use one of dev, prod or add it to environments.names"
    ]
    assert remote.count("main") == 1


def short_flags(help_text: str) -> list[str]:
    """Return the short flags (such as -a) that `inv TASK --help` lists."""
    return re.findall(r"^\s+(-[A-Za-z])\b", help_text, flags=re.MULTILINE)


def test_bump_task_rejects_non_numeric_attempts(remote, app_repo, tmp_path):
    completed = run_inv(app_repo, "bump", "--url", remote.url, "--attempts", "abc", "--mode", "direct",
                        "--result-file", str(tmp_path / "bump.json"))

    assert completed.returncode == 1
    assert completed.stderr == "error: --attempts / bump.attempts must be a whole number, got 'abc'; give one such as 6\n"
    assert json.loads((tmp_path / "bump.json").read_text())["status"] == "failed"


def test_bump_task_rejects_zero_attempts(remote, app_repo, tmp_path):
    completed = run_inv(app_repo, "bump", "--url", remote.url, "--attempts", "0",
                        "--result-file", str(tmp_path / "bump.json"))

    assert completed.returncode == 1
    assert completed.stderr == "error: --attempts / bump.attempts must be at least 1, got 0\n"


def test_rollback_task_rejects_non_numeric_attempts(remote, app_repo, tmp_path):
    completed = run_inv(app_repo, "rollback", "--to", app_repo.commits[2], "--url", remote.url, "--attempts", "x",
                        "--result-file", str(tmp_path / "bump.json"))

    assert completed.returncode == 1
    assert completed.stderr == "error: --attempts / bump.attempts must be a whole number, got 'x'; give one such as 6\n"


def test_bump_task_rejects_non_numeric_attempts_variable(remote, app_repo, tmp_path):
    completed = run_inv(app_repo, "bump", "--url", remote.url, "--dry-run",
                        "--result-file", str(tmp_path / "bump.json"), env={"INVOKE_BUMP_ATTEMPTS": "abc"})

    assert completed.returncode == 1
    assert completed.stderr == (
        "error: bump.attempts (invoke.yaml or INVOKE_BUMP_ATTEMPTS) must be a whole number, got 'abc'; "
        "give one such as 6\n"
    )


def test_bump_task_accepts_attempts_variable(remote, app_repo, tmp_path):
    completed = run_inv(app_repo, "bump", "--url", remote.url, "--tag", app_repo.tag(6), "--mode", "direct",
                        "--result-file", str(tmp_path / "bump.json"),
                        env={"INVOKE_BUMP_ATTEMPTS": "2", "INVOKE_BUMP_BACKOFF_SECONDS": "0.1"})

    assert completed.returncode == 0, completed.stderr
    assert remote.show("main") == DEPLOYMENT.format(image=image(app_repo.tag(6)))


def test_bump_task_rejects_negative_backoff_variable(remote, app_repo, tmp_path):
    completed = run_inv(app_repo, "bump", "--url", remote.url, "--result-file", str(tmp_path / "bump.json"),
                        env={"INVOKE_BUMP_BACKOFF_SECONDS": "-1"})

    assert completed.returncode == 1
    assert completed.stderr == (
        "error: bump.backoff_seconds (INVOKE_BUMP_BACKOFF_SECONDS) must be at least 0 seconds, got '-1'\n"
    )


def test_rollback_help_shows_help(app_repo):
    for flag in ("--help", "-h"):
        completed = run_inv(app_repo, "rollback", flag)

        assert completed.returncode == 0, completed.stderr
        assert "--to=STRING" in completed.stdout
        assert completed.stderr == ""


def test_rollback_without_to_is_one_line(remote, app_repo, tmp_path):
    completed = run_inv(app_repo, "rollback", "--url", remote.url, "--result-file", str(tmp_path / "bump.json"))

    assert completed.returncode == 1
    assert completed.stderr == (
        "error: --to is required; give the commit of the application repository whose image to deploy again, "
        "such as a hash from git log\n"
    )


def test_bump_and_rollback_have_no_short_flags(app_repo):
    for task_name in ("bump", "rollback"):
        completed = run_inv(app_repo, task_name, "--help")

        assert completed.returncode == 0, completed.stderr
        assert short_flags(completed.stdout) == [], task_name


def test_bump_help_explains_default_path(app_repo):
    completed = run_inv(app_repo, "bump", "--help")

    help_text = " ".join(completed.stdout.split())
    assert "(default: none; without --env or --path the bump edits manifests.path, overlays/dev)" in help_text


def test_bump_task_outside_clone_asks_for_clone(tmp_path):
    not_a_clone = type("NotAClone", (), {"path": tmp_path})
    environ = {"CI_COMMIT_SHA": "1234abcd" + "0" * 32, "CI_COMMIT_SHORT_SHA": "1234abcd"}

    completed = run_inv(not_a_clone, "bump", "--url", (tmp_path / "manifests.git").as_uri(), env=environ)

    assert completed.returncode == 1
    assert completed.stderr == (
        f"error: not a Git repository: {tmp_path}; run inv bump inside a clone of the application repository, "
        "because its rollback check reads the history\n"
    )


def test_rollback_task_outside_clone_asks_for_clone(tmp_path):
    not_a_clone = type("NotAClone", (), {"path": tmp_path})

    completed = run_inv(not_a_clone, "rollback", "--to", "1234abcd", "--url", (tmp_path / "manifests.git").as_uri())

    assert completed.returncode == 1
    assert completed.stderr == (
        f"error: not a Git repository: {tmp_path}; run the task inside a clone of the application repository\n"
    )


def test_bump_task_rerun_prints_message_once(remote, app_repo, tmp_path):
    arguments = ("bump", "--url", remote.url, "--tag", app_repo.tag(6), "--result-file", str(tmp_path / "bump.json"))
    first = run_inv(app_repo, *arguments)

    rerun = run_inv(app_repo, *arguments)

    message = f"merge request branch argocd/{app_repo.tag(6)} already has this change on the current main"
    assert first.returncode == 0, first.stderr
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.splitlines().count(message) == 1


def test_bump_task_names_image_repository_source(remote, app_repo, tmp_path):
    completed = run_inv(app_repo, "bump", "--url", remote.url, "--tag", app_repo.tag(6),
                        "--result-file", str(tmp_path / "bump.json"),
                        env={"INVOKE_IMAGE_REPOSITORY": "", "CI_REGISTRY_IMAGE": ""})

    assert completed.returncode == 1
    assert completed.stderr.startswith("error: no image localhost/hello-python in apps/hello-python/deployment.yaml")
    assert completed.stderr.endswith(
        "; the bump looks for localhost/hello-python, which comes from image.registry and image.name "
        "(INVOKE_IMAGE_REGISTRY, INVOKE_IMAGE_NAME); set image.repository in invoke.yaml or "
        "INVOKE_IMAGE_REPOSITORY to the repository that the manifests use\n"
    )


def test_bump_task_names_repository_setting(remote, app_repo, tmp_path):
    completed = run_inv(app_repo, "bump", "--url", remote.url, "--tag", app_repo.tag(6),
                        "--result-file", str(tmp_path / "bump.json"),
                        env={"INVOKE_IMAGE_REPOSITORY": "registry.example.com/acme/other"})

    assert completed.returncode == 1
    assert "which comes from image.repository (invoke.yaml or INVOKE_IMAGE_REPOSITORY)" in completed.stderr


def test_bump_task_missing_path_names_flag(remote, app_repo, tmp_path):
    completed = run_inv(app_repo, "bump", "--url", remote.url, "--tag", app_repo.tag(6), "--path", "overlays/nope",
                        "--result-file", str(tmp_path / "bump.json"))

    assert completed.returncode == 1
    assert completed.stderr.endswith(
        "set --path / manifests.path to a file or folder of that repository\n"
    )


def test_bump_task_unset_url_names_flag(app_repo, tmp_path):
    completed = run_inv(app_repo, "bump", "--tag", app_repo.tag(6), "--result-file", str(tmp_path / "bump.json"),
                        env={"INVOKE_MANIFESTS_URL": ""})

    assert completed.returncode == 1
    assert completed.stderr == (
        "error: manifests.url is not set; pass --url, or set manifests.url in invoke.yaml or INVOKE_MANIFESTS_URL "
        "(for example git@gitlab.com:group/manifests.git)\n"
    )
