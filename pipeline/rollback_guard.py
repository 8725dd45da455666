"""Decide whether replacing the deployed image would roll the environment back.

Image tags are short commit hashes of the application repository, so the
deployed image is older than ours when our commit is a descendant of its
commit, and newer when our commit is its ancestor. The check runs in the
application repository with GitPython; a shallow clone (GitLab's default
GIT_DEPTH) is unshallowed once when a commit is missing.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.reference import ImageReference, InvalidReferenceError, parse_image_reference
from pipeline.revision import open_repository

_COMMIT_HASH = re.compile(r"[0-9a-f]{7,40}")


class RollbackRiskError(PipelineError):
    """The bump might replace a newer image, and --allow-rollback was not given."""


@dataclass(frozen=True)
class Decision:
    """Outcome of the check: skip with a message, or go on (with an optional note to print)."""

    skip: bool
    message: str = ""
    note: str = ""


def check(
    *,
    app_repo: str | Path,
    new_image: ImageReference,
    deployed_images: Iterable[str],
    source_commit: str = "",
    allow_rollback: bool = False,
) -> Decision:
    """Return whether to skip the bump because a deployed image is newer than new_image.

    A deployed tag that is not a commit hash (a release tag such as "0.1.0")
    is not compared. Raises RollbackRiskError when a deployed tag looks like a
    commit hash but is not a commit of the application repository, unless
    allow_rollback is set.
    """
    deployed_tags = sorted({tag for tag in (_tag_of(text) for text in deployed_images) if tag})
    deployed_tags = [tag for tag in deployed_tags if tag != new_image.tag]
    if not deployed_tags:
        return Decision(skip=False)

    repo = open_repository(app_repo)
    ours = _resolve(repo, source_commit or new_image.tag or "")
    if ours is None:
        return _undecidable(f"our tag {new_image.tag} is not a commit of the application repository at "
                            f"{repo.working_tree_dir}", allow_rollback)

    notes = []
    for tag in deployed_tags:
        if not _COMMIT_HASH.fullmatch(tag):
            # A release tag such as "0.1.0" names no commit, so there is no history to compare.
            notes.append(f"the deployed tag {tag} is not a commit hash, so the rollback check does not apply")
            continue
        deployed = _resolve(repo, tag)
        if deployed is None:
            decision = _undecidable(f"the deployed tag {tag} is not a commit of the application repository at "
                                    f"{repo.working_tree_dir}", allow_rollback)
            notes.append(decision.note)
            continue
        try:
            is_older = deployed != ours and _is_ancestor(repo, ours, deployed)
        except RollbackRiskError as error:
            if not allow_rollback:
                raise
            notes.append(f"{error}; going on because --allow-rollback is set")
            continue
        if is_older:
            if allow_rollback:
                notes.append(f"rolling back on purpose: {tag} is newer than {new_image.tag}")
                continue
            return Decision(skip=True, message=f"skipped: {tag} is newer than {new_image.tag}")
    return Decision(skip=False, note="; ".join(notes))


def _tag_of(text: str) -> str | None:
    """Return the tag of an image reference, or text itself when it is a bare tag (a kustomize newTag)."""
    text = str(text).strip()
    if not text:
        return None
    if "/" not in text and ":" not in text and "@" not in text:
        return text
    try:
        return parse_image_reference(text).tag
    except InvalidReferenceError:
        return None


def _resolve(repo, revision: str) -> str | None:
    """Return the full hash of revision in repo, unshallowing a shallow clone once if it is missing."""
    if not _COMMIT_HASH.fullmatch(revision):
        return None
    found = _rev_parse(repo, revision)
    if found is None and _is_shallow(repo) and _unshallow(repo):
        found = _rev_parse(repo, revision)
    return found


def _is_ancestor(repo, ours: str, deployed: str) -> bool:
    """Return True when ours is an ancestor of deployed, unshallowing first when a shallow clone cannot tell.

    In a shallow clone a "yes" is reliable but a "no" is not, because the
    history that connects the two commits may be cut off.
    """
    if repo.is_ancestor(ours, deployed):
        return True
    if repo.is_ancestor(deployed, ours) or not _is_shallow(repo):
        return False
    if not _unshallow(repo):
        raise RollbackRiskError(
            f"cannot tell whether {deployed[:12]} is newer than {ours[:12]}: the application repository at "
            f"{repo.working_tree_dir} is shallow and fetching its history failed; fetch with --unshallow, or "
            "pass --allow-rollback"
        )
    return repo.is_ancestor(ours, deployed)


def _unshallow(repo) -> bool:
    import git

    try:
        repo.git.fetch("--unshallow", "--no-tags", "origin")
    except git.GitCommandError:
        return False
    return True


def _rev_parse(repo, revision: str) -> str | None:
    import git

    try:
        return repo.git.rev_parse("--verify", "--quiet", f"{revision}^{{commit}}")
    except git.GitCommandError:
        return None


def _is_shallow(repo) -> bool:
    return repo.git.rev_parse("--is-shallow-repository").strip() == "true"


def _undecidable(reason: str, allow_rollback: bool) -> Decision:
    if allow_rollback:
        return Decision(skip=False, note=f"cannot tell whether this is a rollback ({reason}); going on because "
                        "--allow-rollback is set")
    raise RollbackRiskError(
        f"cannot tell whether this bump rolls back: {reason}; fetch the application repository's history, "
        "or pass --allow-rollback to replace the image anyway"
    )
