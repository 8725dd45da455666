"""Compute the image tag for the application repository's current commit.

Build, push, bump and the demo all call `image_tag`, so a tag computed on a
laptop and one computed in CI for the same commit are the same string.
"""

import os
import re
from collections.abc import Mapping
from pathlib import Path

from pipeline.errors import PipelineError

# GitLab's CI_COMMIT_SHORT_SHA is 8 characters, so a local tag uses 8 as well.
SHORT_SHA_LENGTH = 8
DIRTY_SUFFIX = "-dirty"
# Advice for a task outside a clone that needs only the commit's hashes, as a build does.
CI_VARIABLES_ADVICE = (
    "run the task inside a clone, or set both CI_COMMIT_SHA and CI_COMMIT_SHORT_SHA "
    "(the commit's full hash and its first 8 characters)"
)
_SHORT_SHA = re.compile(r"[0-9a-f]{7,40}")


class RevisionError(PipelineError):
    """The application repository's commit cannot be read."""


def image_tag(repo_dir: Path | str = ".", environ: Mapping[str, str] | None = None) -> str:
    """Return the tag for the commit being built.

    In GitLab CI this is CI_COMMIT_SHORT_SHA. Elsewhere it is the first 8 hex
    characters of HEAD, with "-dirty" appended when tracked files differ from
    HEAD or untracked files exist (ignored files do not count).
    """
    environ = os.environ if environ is None else environ
    ci_short_sha = environ.get("CI_COMMIT_SHORT_SHA", "").strip()
    if ci_short_sha:
        if not _SHORT_SHA.fullmatch(ci_short_sha):
            raise RevisionError(
                f"CI_COMMIT_SHORT_SHA is not a short commit hash: {ci_short_sha!r}; unset it or fix the CI variable"
            )
        return ci_short_sha

    repo = open_repository(repo_dir, advice=CI_VARIABLES_ADVICE)
    tag = head_commit(repo)[:SHORT_SHA_LENGTH]
    if repo.is_dirty(untracked_files=True):
        tag += DIRTY_SUFFIX
    return tag


def source_commit(repo_dir: Path | str = ".", environ: Mapping[str, str] | None = None) -> str:
    """Return the full hash of the commit being built (CI_COMMIT_SHA in CI, else HEAD)."""
    environ = os.environ if environ is None else environ
    ci_sha = environ.get("CI_COMMIT_SHA", "").strip()
    if ci_sha:
        return ci_sha
    return head_commit(open_repository(repo_dir, advice=CI_VARIABLES_ADVICE))


def open_repository(repo_dir: Path | str, advice: str = "run the task inside a clone of the application repository"):
    """Open the Git repository that contains repo_dir, or raise RevisionError that ends with advice."""
    import git

    try:
        return git.Repo(repo_dir, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise RevisionError(f"not a Git repository: {Path(repo_dir).resolve()}; {advice}") from None


def head_commit(repo) -> str:
    """Return HEAD's full hash, or raise RevisionError when the repository has no commit yet."""
    try:
        return repo.head.commit.hexsha
    except ValueError:
        raise RevisionError(
            f"the Git repository at {repo.working_tree_dir} has no commit yet; commit once, then run the task again"
        ) from None
