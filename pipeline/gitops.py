"""Propose a new image to the manifests repository: shallow clone, edit, commit, push.

`bump_manifests` is the round trip behind `inv bump`, `inv rollback` and the
demo. It clones only the target branch at depth 1 into a temporary folder,
which is removed afterwards, also on failure. It edits the image through
`pipeline.manifests.set_image` and rejects replacing a newer image with an
older one (see `pipeline.rollback_guard`). It commits as the bot with
`Source-Commit:` and `Pipeline:` trailers, and pushes in one of two modes:

- "merge-request": branch <prefix><tag> from the target branch, pushed with
  GitLab's merge_request.* push options, so GitLab opens the merge request.
- "direct": the commit goes straight to the target branch. A push rejected as
  non-fast-forward is retried on the new tip, with jittered backoff and a
  bounded number of attempts; it is never force-pushed.

Every push is checked ref by ref from `git push --porcelain`, because a push
that the server declines does not always make git or GitPython raise.
"""

import json
import random
import shlex
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline import credentials, rollback_guard
from pipeline.errors import PipelineError
from pipeline.redact import redact
from pipeline.reference import ImageReference, parse_image_reference
from pipeline.revision import DIRTY_SUFFIX
from pipeline.shell import last_lines

MODES = ("merge-request", "direct")

# Direct mode: attempts in all, and the backoff before the second attempt
# (doubled each time, at most _MAX_BACKOFF_SECONDS, then a random part of it).
DEFAULT_ATTEMPTS = 6
DEFAULT_BACKOFF_SECONDS = 0.5
_MAX_BACKOFF_SECONDS = 8.0

# Reasons in `git push --porcelain` output that mean another push got there
# first, so fetching the new tip and pushing again can succeed.
_RETRYABLE_REASONS = ("non-fast-forward", "fetch first", "stale info", "failed to update ref", "cannot lock ref",
                      "incorrect old value")

# GitLab prints this on the remote: channel when it cannot act on a push
# option, for example a merge_request.target branch that does not exist.
_PUSH_OPTION_WARNING = "Error encountered with push options"
# git prints this when the server does not advertise push options, and then nothing was pushed.
_NO_PUSH_OPTIONS = "the receiving end does not support push options"


class BumpError(PipelineError):
    """The manifests repository could not be cloned, edited, committed or pushed."""


class PushRejectedError(BumpError):
    """The server rejected the pushed ref; retryable when another push got there first."""

    def __init__(self, message: str, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


@dataclass
class BumpResult:
    """Outcome of one bump, also written as JSON for the CI job."""

    status: str  # "changed" | "unchanged" | "skipped" | "dry-run"
    branch: str
    commit: str | None
    old_image: str | None
    new_image: str
    diff: str
    message: str
    mode: str = "merge-request"
    target_branch: str = "main"

    def as_report(self) -> dict:
        """Return the fields for the result file; the diff is left out to keep the file small."""
        report = asdict(self)
        report.pop("diff")
        return report


@dataclass(frozen=True)
class MergeRequestOptions:
    """GitLab merge request settings, sent as merge_request.* push options."""

    create: bool = True
    title: str = ""
    remove_source_branch: bool = False
    auto_merge: bool = False
    # GitLab 17 and later take merge_request.auto_merge; older ones merge_request.merge_when_pipeline_succeeds.
    auto_merge_option: str = "merge_request.auto_merge"
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Credentials:
    """How to reach the manifests repository; see pipeline.credentials.git_access."""

    ssh_key: str = ""
    known_hosts: str = ""
    token: str = ""
    token_username: str = credentials.DEFAULT_TOKEN_USERNAME
    ssh_program: str = "ssh"


@dataclass
class _Context:
    """State shared by the steps of one bump."""

    repo: object
    access: credentials.GitAccess
    url: str
    target_branch: str
    output: Callable[[str], None]
    secrets: list[str] = field(default_factory=list)

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)


def bump_manifests(
    *,
    url: str,
    target_branch: str,
    manifests_path: str,
    image: ImageReference,
    mode: str = "merge-request",
    branch_prefix: str = "argocd/",
    container: str | None = None,
    key: str | None = None,
    source_commit: str = "",
    pipeline_url: str = "",
    app_repo: str | Path = ".",
    author_name: str = "hello-python bot",
    author_email: str = "hello-python-bot@noreply.invalid",
    merge_request: MergeRequestOptions = MergeRequestOptions(),
    credentials_: Credentials = Credentials(),
    allow_rollback: bool = False,
    dry_run: bool = False,
    attempts: int = DEFAULT_ATTEMPTS,
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
    temp_root: str | None = None,
    output: Callable[[str], None] = print,
    path_setting: str = "manifests.path",
) -> BumpResult:
    """Set image in the manifests repository at url and push the change; return what happened.

    Raises BumpError (or another PipelineError) with one line when the
    repository cannot be reached, the path or the container is missing, the
    tag is dirty, a push is rejected, or a rollback cannot be ruled out.
    path_setting names the flag or setting that gave manifests_path; the path errors quote it.
    """
    _check_request(image, mode, target_branch, attempts)
    branch = target_branch if mode == "direct" else f"{branch_prefix}{image.tag}"

    with credentials.git_access(
        url,
        ssh_key=credentials_.ssh_key,
        known_hosts=credentials_.known_hosts,
        token=credentials_.token,
        token_username=credentials_.token_username,
        ssh_program=credentials_.ssh_program,
    ) as access, tempfile.TemporaryDirectory(prefix="hello-python-bump-", dir=temp_root) as workdir:
        secrets = access.secrets + ([credentials_.token] if credentials_.token else [])
        context = _Context(
            repo=None, access=access, url=access.url, target_branch=target_branch, output=output, secrets=secrets
        )
        context.repo = _clone(context, Path(workdir) / "manifests")

        for attempt in range(1, attempts + 1):
            edit = _plan_edit(context, manifests_path, image, container, key, path_setting)
            old_image = _old_image(edit, image)
            decision = rollback_guard.check(
                app_repo=app_repo,
                new_image=image,
                deployed_images=[_full_reference(str(change.old), image) for change in edit.changes],
                source_commit=source_commit,
                allow_rollback=allow_rollback,
            )
            if decision.note:
                output(decision.note)
            if decision.skip:
                return BumpResult("skipped", branch, None, old_image, str(image), "", decision.message, mode,
                                  target_branch)
            if edit.up_to_date:
                message = f"already up to date: {image} in {target_branch}:{manifests_path}"
                return BumpResult("unchanged", branch, None, old_image, str(image), "", message, mode, target_branch)

            subject = f"Set image {image.repository} to {image.tag}"
            push_arguments = _push_arguments(mode, branch, target_branch, merge_request, subject,
                                             _describe(old_image, image, source_commit, pipeline_url))
            if dry_run:
                output(edit.diff.rstrip("\n"))
                output(f"dry run: would push: git push {context.redact(shlex.join(push_arguments))}")
                return BumpResult("dry-run", branch, None, old_image, str(image), edit.diff,
                                  f"dry run: would push {image} to {branch}", mode, target_branch)

            written = _apply_edit(context, manifests_path, image, container, key, path_setting)
            commit = _commit(context, manifests_path, subject, old_image, image, source_commit, pipeline_url,
                             author_name, author_email)
            try:
                if mode == "merge-request":
                    return _push_merge_request_branch(context, branch, commit, push_arguments, old_image, image,
                                                      written.diff, target_branch)
                flag = _push(context, push_arguments, branch)
            except PushRejectedError as error:
                if mode != "direct" or not error.retryable or attempt == attempts:
                    if error.retryable and mode == "direct":
                        raise PushRejectedError(
                            f"{error} (after {attempt} attempts); run the bump again, or raise bump.attempts"
                        ) from None
                    raise
                delay = _backoff(attempt, backoff_seconds)
                output(f"push to {branch} lost a race with another push; fetching the new tip and retrying "
                       f"in {delay:.1f}s (attempt {attempt + 1} of {attempts})")
                time.sleep(delay)
                _refresh(context)
                continue

            if flag == "=":
                # Another job pushed a byte-identical commit (same tree, parent, identity and second) first.
                message = f"already up to date: {branch} is at {commit[:12]}, which another bump pushed"
                return BumpResult("unchanged", branch, commit, old_image, str(image), "", message, mode,
                                  target_branch)
            output(f"pushed {commit[:12]} to {branch}: {old_image} -> {image}")
            return BumpResult("changed", branch, commit, old_image, str(image), written.diff,
                              f"pushed {image} to {branch}", mode, target_branch)

    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover


def _check_request(image: ImageReference, mode: str, target_branch: str, attempts: int) -> None:
    if mode not in MODES:
        raise BumpError(f"invalid bump mode {mode!r}; use one of: {', '.join(MODES)}")
    if not image.tag:
        raise BumpError(f"image {image} has no tag; give the tag of the commit to deploy")
    if image.tag.endswith(DIRTY_SUFFIX):
        raise BumpError(
            f"image tag {image.tag} is from a working tree with uncommitted changes; commit them, build and push "
            "again, then bump"
        )
    if not target_branch.strip():
        raise BumpError("the target branch is empty; set manifests.branch")
    if attempts < 1:
        # inv bump checks --attempts before this, so only callers that pass bump.attempts reach this line.
        raise BumpError(f"bump.attempts must be at least 1, got {attempts}")


def _clone(context: _Context, destination: Path):
    """Clone the target branch at depth 1; a local path becomes a file:// URL so that --depth applies."""
    import git

    source = context.url
    if "://" not in source and Path(source).exists():
        source = Path(source).resolve().as_uri()
    context.output(f"cloning {context.redact(context.url)} (branch {context.target_branch}, depth 1)")
    try:
        repo = git.Repo.clone_from(
            source,
            destination,
            env=context.access.env,
            branch=context.target_branch,
            depth=1,
            single_branch=True,
            no_tags=True,
        )
    except git.GitCommandError as error:
        raise BumpError(_git_failure(context, f"cloning {context.url} (branch {context.target_branch})", error,
                                     "check --url / manifests.url, --branch / manifests.branch and the "
                                     "credentials")) from None
    repo.git.update_environment(**context.access.env)
    with repo.config_writer() as config:
        # The bot's commits must not pick up a signing key or hooks from the runner's global config.
        config.set_value("commit", "gpgsign", "false")
    return repo


def _git_failure(context: _Context, action: str, error, advice: str) -> str:
    """Build a one-line message from a GitCommandError: the action, git's last lines, the advice."""
    stderr = str(getattr(error, "stderr", "") or "")
    host_key = credentials.host_key_error(stderr, context.access.ssh_host)
    if host_key:
        return context.redact(f"{action} failed: {host_key}")
    detail = git_reason(stderr.replace("stderr: ", "").strip().strip("'")) or f"git exited with {error.status}"
    return context.redact(f"{action} failed: {detail}; {advice}")


# Lines git prints after every failed connection; they push the real reason out of a short message.
_BOILERPLATE = ("Please make sure you have the correct access rights", "and the repository exists.")


def git_reason(output: str) -> str:
    """Return the last lines of git's output that carry a reason, joined by ' | '."""
    lines = [line for line in output.splitlines() if line.strip() and line.strip() not in _BOILERPLATE]
    return last_lines("\n".join(lines))


def _plan_edit(context: _Context, manifests_path: str, image: ImageReference, container, key, path_setting: str):
    return _set_image(context, manifests_path, image, container, key, path_setting, dry_run=True)


def _apply_edit(context: _Context, manifests_path: str, image: ImageReference, container, key, path_setting: str):
    return _set_image(context, manifests_path, image, container, key, path_setting, dry_run=False)


def _set_image(context: _Context, manifests_path: str, image: ImageReference, container, key, path_setting: str, *,
               dry_run: bool):
    from pipeline.manifests import ManifestError, set_image

    root = Path(context.repo.working_tree_dir)
    target = (root / manifests_path).resolve()
    if not target.is_relative_to(root.resolve()):
        raise BumpError(f"{path_setting} {manifests_path!r} points outside the manifests repository; "
                        "give a path inside it")
    if not target.exists():
        raise BumpError(
            f"manifests path {manifests_path!r} not found in {context.redact(context.url)} "
            f"(branch {context.target_branch}); set {path_setting} to a file or folder of that repository"
        )
    # The temporary clone's path means nothing to the reader, but the path inside the repository does.
    try:
        edit = set_image([target], image, container=container, key=key, dry_run=dry_run)
    except ManifestError as error:
        raise ManifestError(str(error).replace(f"{root}/", "")) from None
    edit.diff = edit.diff.replace(f"--- {root}/", "--- a/").replace(f"+++ {root}/", "+++ b/")
    return edit


def _old_image(edit, image: ImageReference) -> str | None:
    """Return the replaced values as full references; a kustomization's ":tag" gets the repository prepended."""
    olds = sorted({_full_reference(str(change.old), image) for change in edit.changes if change.old})
    return ", ".join(olds) if olds else None


def _full_reference(old: str, image: ImageReference) -> str:
    return f"{image.repository}{old}" if old.startswith((":", "@")) else old


def _describe(old_image: str | None, image: ImageReference, source_commit: str, pipeline_url: str) -> str:
    """Return the merge request description: one line, because a push option cannot hold a newline."""
    parts = [f"Image {old_image or '(none)'} -> {image}."]
    if source_commit:
        parts.append(f"Source commit {source_commit}.")
    if pipeline_url:
        parts.append(f"Pipeline {pipeline_url}.")
    return " ".join(parts)


def _commit(context: _Context, manifests_path: str, subject: str, old_image, image, source_commit: str,
            pipeline_url: str, author_name: str, author_email: str) -> str:
    body = [f"Image: {image}", f"Previous: {old_image or '(none)'}"]
    trailers = []
    if source_commit:
        trailers.append(f"Source-Commit: {source_commit}")
    if pipeline_url:
        trailers.append(f"Pipeline: {pipeline_url}")
    message = "\n\n".join(part for part in (subject, "\n".join(body), "\n".join(trailers)) if part)
    identity = {
        "GIT_AUTHOR_NAME": author_name,
        "GIT_AUTHOR_EMAIL": author_email,
        "GIT_COMMITTER_NAME": author_name,
        "GIT_COMMITTER_EMAIL": author_email,
    }
    import git

    repo = context.repo
    try:
        repo.git.add("--update", "--", manifests_path)
        repo.git.commit("--quiet", "--no-verify", "-m", message, env=identity)
    except git.GitCommandError as error:
        raise BumpError(_git_failure(context, f"committing {manifests_path} in the clone of {context.url}", error,
                                     "check bump.author_name and bump.author_email")) from None
    return repo.head.commit.hexsha


def _push_arguments(mode: str, branch: str, target_branch: str, options: MergeRequestOptions, subject: str,
                    description: str) -> list[str]:
    arguments = ["--porcelain", "origin", f"HEAD:refs/heads/{branch}"]
    if mode != "merge-request" or not options.create:
        return arguments
    push_options = [
        "merge_request.create",
        f"merge_request.target={target_branch}",
        f"merge_request.title={options.title or subject}",
        f"merge_request.description={description}",
    ]
    if options.remove_source_branch:
        push_options.append("merge_request.remove_source_branch")
    if options.auto_merge:
        push_options.append(options.auto_merge_option)
    push_options += [f"merge_request.label={label}" for label in options.labels]
    for push_option in push_options:
        arguments += ["-o", push_option]
    return arguments


def _push_merge_request_branch(context: _Context, branch: str, commit: str, push_arguments: list[str], old_image,
                               image: ImageReference, diff: str, target_branch: str) -> BumpResult:
    """Push the merge request branch; a re-run updates the existing branch instead of adding another."""
    existing = _remote_branch_commit(context, branch)
    if existing:
        if _same_change(context, existing, commit):
            message = f"merge request branch {branch} already has this change on the current {target_branch}"
            return BumpResult("unchanged", branch, existing, old_image, str(image), "", message, "merge-request",
                              target_branch)
        # The branch belongs to the bot, so replace it, but only if no one else moved it since ls-remote.
        push_arguments = [f"--force-with-lease=refs/heads/{branch}:{existing}"] + push_arguments

    _push(context, push_arguments, branch)
    verb = "updated" if existing else "pushed"
    context.output(f"{verb} merge request branch {branch} ({commit[:12]}): {old_image} -> {image}")
    return BumpResult("changed", branch, commit, old_image, str(image), diff,
                      f"{verb} {branch}; GitLab opens or updates the merge request into {target_branch}",
                      "merge-request", target_branch)


def _remote_branch_commit(context: _Context, branch: str) -> str | None:
    import git

    try:
        listing = context.repo.git.ls_remote("--heads", "origin", f"refs/heads/{branch}")
    except git.GitCommandError as error:
        raise BumpError(_git_failure(context, f"listing branch {branch} of {context.url}", error,
                                     "check the network and the credentials")) from None
    return listing.split()[0] if listing.strip() else None


def _same_change(context: _Context, existing: str, commit: str) -> bool:
    """Return True when the existing branch tip has our tree on our parent, so pushing would change nothing."""
    import git

    repo = context.repo
    try:
        repo.git.fetch("--depth=1", "--no-tags", "origin", existing)
    except git.GitCommandError as error:
        raise BumpError(_git_failure(context, f"fetching {existing} from {context.url}", error,
                                     "check the network and the credentials")) from None
    ours = repo.commit(commit)
    theirs_raw = repo.git.cat_file("-p", existing)
    their_parents = [line.split()[1] for line in theirs_raw.splitlines() if line.startswith("parent ")]
    their_tree = theirs_raw.splitlines()[0].split()[1]
    return their_tree == ours.tree.hexsha and their_parents == [parent.hexsha for parent in ours.parents]


def _push(context: _Context, arguments: Sequence[str], branch: str) -> str:
    """Run git push, raise unless the server accepted refs/heads/<branch>, and return its --porcelain flag."""
    command = f"git push {shlex.join(arguments)}"
    context.output(f"$ {context.redact(command)}")
    status, stdout, stderr = context.repo.git.push(*arguments, with_extended_output=True, with_exceptions=False)
    return check_push(status, stdout, stderr, f"refs/heads/{branch}", secrets=context.secrets,
                      ssh_host=context.access.ssh_host)


def check_push(status: int, stdout: str, stderr: str, ref: str, *, secrets: Sequence[str] = (),
               ssh_host: str | None = None) -> str:
    """Return the flag `git push --porcelain` printed for ref; raise PushRejectedError unless it was accepted.

    Failure is any of: a non-zero status; no status line for ref (an empty
    result included); a "!" (rejected) flag; GitLab's push-option warning.
    """
    remote_lines = [line[len("remote:"):].strip() for line in stderr.splitlines() if line.startswith("remote:")]
    remote_text = " | ".join(line for line in remote_lines if line and not set(line) <= set("=-*"))
    entry = _porcelain_entry(stdout, ref)

    if entry and entry[0] == "!":
        summary = entry[2]
        retryable = any(reason in summary for reason in _RETRYABLE_REASONS)
        message = f"push to {ref} was rejected: {summary}"
        if remote_text:
            message += f"; server: {remote_text}"
        if not retryable:
            message += "; fix what the server reports (branch protection, hooks, permissions), then bump again"
        raise PushRejectedError(redact(message, secrets), retryable=retryable)

    host_key = credentials.host_key_error(stderr, ssh_host)
    if host_key:
        raise PushRejectedError(redact(f"push to {ref} failed: {host_key}", secrets))
    if _NO_PUSH_OPTIONS in stderr:
        raise PushRejectedError(redact(
            f"push to {ref} failed: the manifests repository does not accept push options, which merge-request "
            "mode sends to open the merge request (GitLab accepts them); use --mode direct (bump.mode: direct), "
            "or on a plain Git server run `git config receive.advertisePushOptions true` in the bare repository",
            secrets))
    if status != 0 or entry is None:
        detail = git_reason(stderr) or git_reason(stdout) or "no output"
        reason = f"git exited with status {status}" if status != 0 else "git printed no status for this ref"
        raise PushRejectedError(redact(f"push to {ref} failed: {reason}: {detail}; nothing confirms that it "
                                       "landed, so check the manifests repository and bump again", secrets))

    if _PUSH_OPTION_WARNING in stderr:
        warning_lines = remote_lines[next(i for i, line in enumerate(remote_lines) if _PUSH_OPTION_WARNING in line):]
        warning = " ".join(line for line in warning_lines if line and not set(line) <= set("=-*"))
        raise PushRejectedError(redact(
            f"push to {ref} landed, but GitLab did not act on the push options: {warning}; fix the bump.* "
            "merge request settings or open the merge request by hand", secrets))
    return entry[0]


def _porcelain_entry(stdout: str, ref: str) -> tuple[str, str, str] | None:
    """Return (flag, from:to, summary) of the porcelain line whose destination is ref, or None."""
    for line in stdout.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and len(parts[0]) == 1 and parts[1].rpartition(":")[2] == ref:
            return parts[0], parts[1], "\t".join(parts[2:])
    return None


def _refresh(context: _Context) -> None:
    """Fetch the target branch's new tip at depth 1 and reset the clone to it."""
    import git

    repo = context.repo
    branch = context.target_branch
    try:
        repo.git.fetch("--depth=1", "--no-tags", "origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}")
        repo.git.reset("--hard", f"refs/remotes/origin/{branch}")
    except git.GitCommandError as error:
        raise BumpError(_git_failure(context, f"fetching {branch} from {context.url}", error,
                                     "check the network and the credentials")) from None


def _backoff(attempt: int, base_seconds: float) -> float:
    """Return a random delay in [0, base * 2**(attempt-1)], capped, so racing jobs spread out."""
    ceiling = min(_MAX_BACKOFF_SECONDS, base_seconds * 2 ** (attempt - 1))
    return random.uniform(0, ceiling)


def read_image_env(path: Path | str) -> dict[str, str]:
    """Return the KEY=VALUE lines of the dotenv file that `inv push` writes, or {} when it is missing."""
    file = Path(path)
    if not file.is_file():
        return {}
    values = {}
    for line in file.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        values[name.strip()] = value.strip().strip("'\"")
    return values


def pin_digest(image: ImageReference, image_env: Mapping[str, str], source: str) -> ImageReference:
    """Return image with the digest recorded by `inv push`; raise BumpError when none matches its tag."""
    recorded_tag = image_env.get("IMAGE_TAG", "")
    digest = image_env.get("IMAGE_DIGEST", "")
    if recorded_tag != image.tag or not digest:
        found = f"tag {recorded_tag!r}" if image_env else "no such file"
        raise BumpError(
            f"bump.pin_digest is on but {source} has no digest for tag {image.tag} ({found}); run inv push "
            "for this commit first, or turn bump.pin_digest off"
        )
    recorded = image_env.get("IMAGE_REFERENCE", "")
    if recorded:
        recorded_repository = parse_image_reference(recorded).repository
        if recorded_repository != image.repository:
            raise BumpError(f"{source} records image {recorded_repository}, not {image.repository}; run inv push "
                            "with the same image settings, or turn bump.pin_digest off")
    return image.with_tag(image.tag, digest=digest)


def write_result(result: BumpResult | None, path: Path | str, *, failure: str | None = None,
                 new_image: str = "") -> Path:
    """Write the bump's outcome as JSON for the CI job, with secrets masked; return the path."""
    if result is not None:
        report = result.as_report()
    else:
        report = {"status": "failed", "message": failure or "", "new_image": new_image}
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(redact(json.dumps(report, indent=2, sort_keys=True)) + "\n")
    return file
