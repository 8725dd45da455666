"""`inv bump` and `inv rollback` as a user runs them: exit status, stdout, one line on stderr, result file."""

import json
import os
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
