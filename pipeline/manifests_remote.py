"""Local stand-ins for GitLab's manifests repository, used by `inv demo` and the tests.

A bare Git repository plays the GitLab project: it advertises push options, as
GitLab does, and its post-receive hook records, as one JSON file per push, the
merge request GitLab would open for `-o merge_request.create`.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from pipeline.errors import PipelineError

# Runs inside `git receive-pack`. Git passes push options as GIT_PUSH_OPTION_COUNT
# and GIT_PUSH_OPTION_<n>, and the updated refs on stdin as "<old> <new> <ref>".
RECORD_HOOK = """\
#!{python}
import json, os, sys, time
from pathlib import Path

options = [os.environ["GIT_PUSH_OPTION_%d" % i] for i in range(int(os.environ.get("GIT_PUSH_OPTION_COUNT", "0")))]
values = dict(option.split("=", 1) if "=" in option else (option, "true") for option in options)
if values.get("merge_request.create") != "true":
    sys.exit(0)
record_dir = Path({record_dir!r})
record_dir.mkdir(parents=True, exist_ok=True)
for line in sys.stdin:
    old, new, ref = line.split()
    if not ref.startswith("refs/heads/") or set(new) == {{"0"}}:
        continue
    branch = ref[len("refs/heads/"):]
    record = {{
        "source_branch": branch,
        "target_branch": values.get("merge_request.target", ""),
        "title": values.get("merge_request.title", ""),
        "description": values.get("merge_request.description", ""),
        "commit": new,
        "push_options": options,
    }}
    name = branch.replace("/", "-") + ".json"
    (record_dir / name).write_text(json.dumps(record, indent=2) + "\\n")
    print("remote: merge request recorded for %s -> %s" % (branch, record["target_branch"]))
"""

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "hello-python demo",
    "GIT_AUTHOR_EMAIL": "demo@hello-python.invalid",
    "GIT_COMMITTER_NAME": "hello-python demo",
    "GIT_COMMITTER_EMAIL": "demo@hello-python.invalid",
}


class StandinError(PipelineError):
    """A local stand-in could not be set up."""


def create_manifests_remote(bare_dir: Path, content_dir: Path, record_dir: Path, branch: str = "main") -> None:
    """Create a bare repository whose first commit on branch contains the files of content_dir.

    An existing bare_dir and record_dir are replaced, so a second run starts
    from the same state as the first.
    """
    for folder in (bare_dir, record_dir):
        if folder.exists():
            shutil.rmtree(folder)
    record_dir.mkdir(parents=True)
    _git("init", "--quiet", "--bare", f"--initial-branch={branch}", str(bare_dir))
    _git("-C", str(bare_dir), "config", "receive.advertisePushOptions", "true")

    seed = bare_dir.parent / (bare_dir.name + ".seed")
    if seed.exists():
        shutil.rmtree(seed)
    shutil.copytree(content_dir, seed)
    _git("init", "--quiet", f"--initial-branch={branch}", str(seed))
    _git("-C", str(seed), "add", "--all")
    _git("-C", str(seed), "commit", "--quiet", "-m", "Add the hello-python manifests")
    _git("-C", str(seed), "push", "--quiet", str(bare_dir), f"HEAD:refs/heads/{branch}")
    shutil.rmtree(seed)

    hook = bare_dir / "hooks" / "post-receive"
    hook.write_text(RECORD_HOOK.format(python=sys.executable, record_dir=str(record_dir)))
    hook.chmod(0o755)


def recorded_merge_requests(record_dir: Path) -> list[dict]:
    """Return the merge requests the stand-in recorded, oldest first."""
    files = sorted(record_dir.glob("*.json"), key=lambda path: path.stat().st_mtime)
    return [json.loads(path.read_text()) for path in files]


def _git(*args: str) -> str:
    completed = subprocess.run(["git", *args], capture_output=True, text=True, env=_git_env())
    if completed.returncode != 0:
        reason = (completed.stderr or completed.stdout).strip().splitlines()
        raise StandinError(f"git {args[0]} failed while creating the stand-in repository: {reason[-1] if reason else completed.returncode}")
    return completed.stdout


def _git_env() -> dict[str, str]:
    import os

    return {**os.environ, **GIT_IDENTITY}
