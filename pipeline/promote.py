"""Promote the image one environment runs to another, through a merge request on the manifests repository.

`inv promote --from dev --to prod` reads the image reference (tag and digest)
that the source environment's folder sets on the target branch, then proposes
exactly that reference for the target environment through
`pipeline.gitops.bump_manifests`: the same edit engine, the same rollback
guard and the same push as `inv bump`.
"""

import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import yaml

from pipeline import config as project_config
from pipeline import credentials, kube
from pipeline.bump_task import KNOWN_HOSTS_VARIABLE, SSH_KEY_VARIABLE, TOKEN_VARIABLE
from pipeline.config import seconds, whole_number
from pipeline.errors import PipelineError
from pipeline.gitops import BumpResult, Credentials, MergeRequestOptions, bump_manifests
from pipeline.reference import ImageReference, InvalidReferenceError, parse_image_reference
from pipeline.redact import redact
from pipeline.shell import last_lines

KUSTOMIZATION_KINDS = ("Kustomization",)
CLONE_TIMEOUT_SECONDS = 300


class PromotionError(PipelineError):
    """The promotion cannot go ahead: unknown environment, no image to copy, or an older image."""


def run_promote(
    config,
    *,
    source_env: str,
    target_env: str,
    url: str | None = None,
    branch: str | None = None,
    mode: str | None = None,
    dry_run: bool = False,
    environ: Mapping[str, str] | None = None,
) -> BumpResult:
    """Propose the image that source_env runs for target_env, and return what bump_manifests did.

    Raises PromotionError when target_env already runs a newer image, so that
    nothing is pushed and the task exits non-zero.
    """
    environ = os.environ if environ is None else environ
    source_path = kube.environment_path(config, source_env)
    target_path = kube.environment_path(config, target_env)
    if source_env == target_env:
        raise PromotionError(f"cannot promote {source_env} to itself; give two different environments")

    manifests, bump = config.manifests, config.bump
    url = project_config.require(url or manifests.url, "manifests.url", "git@gitlab.com:group/manifests.git")
    target_branch = project_config.require(branch or manifests.branch, "manifests.branch", "main")
    repository = parse_image_reference(project_config.image_repository(config, environ))
    credentials_ = Credentials(
        ssh_key=manifests.ssh_key or environ.get(SSH_KEY_VARIABLE, ""),
        known_hosts=manifests.known_hosts or environ.get(KNOWN_HOSTS_VARIABLE, ""),
        token=environ.get(TOKEN_VARIABLE, ""),
        token_username=manifests.token_username,
    )

    image = read_deployed_image(url, target_branch, source_path, repository, credentials_)
    print(f"{source_env} runs {image}")
    result = bump_manifests(
        url=url,
        target_branch=target_branch,
        manifests_path=target_path,
        image=image,
        mode=mode or bump.mode,
        # A branch per target environment, so that it never collides with the bump branch of the same tag.
        branch_prefix=f"{bump.branch_prefix}{target_env}/",
        pipeline_url=project_config.pipeline_url(environ),
        author_name=bump.author_name,
        author_email=bump.author_email,
        # auto_merge stays off whatever bump.auto_merge is set to, because a promotion waits for a review.
        merge_request=MergeRequestOptions(
            create=bool(bump.create_merge_request),
            title=f"Promote {image} from {source_env} to {target_env}",
            remove_source_branch=bool(bump.remove_source_branch),
            labels=tuple(bump.labels or ()),
        ),
        credentials_=credentials_,
        dry_run=dry_run,
        attempts=whole_number(None, bump.attempts, "--attempts", "bump.attempts", minimum=1),
        backoff_seconds=seconds(bump.backoff_seconds, "bump.backoff_seconds"),
    )
    if result.status == "skipped":
        raise PromotionError(
            f"not promoting {source_env} to {target_env}: {result.message.removeprefix('skipped: ')}, "
            f"so {target_env} would roll back; bump {source_env} first"
        )
    return result


def read_deployed_image(
    url: str, branch: str, folder: str, repository: ImageReference, credentials_: Credentials
) -> ImageReference:
    """Return the reference of repository that folder sets on branch of the manifests repository at url."""
    with credentials.git_access(
        url,
        ssh_key=credentials_.ssh_key,
        known_hosts=credentials_.known_hosts,
        token=credentials_.token,
        token_username=credentials_.token_username,
    ) as access, tempfile.TemporaryDirectory(prefix="hello-python-promote-") as workdir:
        checkout = Path(workdir) / "manifests"
        _clone(access, branch, checkout)
        target = checkout / folder
        if not target.is_dir():
            raise PromotionError(
                f"folder {folder!r} not found in {redact(url, access.secrets)} (branch {branch}); "
                "create the environment's overlay or fix environments.path"
            )
        return image_in_folder(target, repository, shown_as=folder)


def _clone(access: credentials.GitAccess, branch: str, destination: Path) -> None:
    """Clone branch at depth 1; a local path becomes a file:// URL so that --depth applies."""
    source = access.url
    if "://" not in source and Path(source).exists():
        source = Path(source).resolve().as_uri()
    argv = ["git", "clone", "--quiet", "--depth", "1", "--single-branch", "--no-tags", "--branch", branch,
            source, str(destination)]
    try:
        completed = subprocess.run(argv, env={**os.environ, **access.env}, capture_output=True, text=True,
                                   timeout=CLONE_TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        raise PromotionError(
            f"cloning {redact(access.url, access.secrets)} timed out after {CLONE_TIMEOUT_SECONDS} s; "
            "check --url / manifests.url and the network"
        ) from None
    if completed.returncode != 0:
        reason = last_lines(completed.stderr) or f"git exited with {completed.returncode}"
        raise PromotionError(redact(
            f"cloning {access.url} (branch {branch}) failed: {reason}; "
            "check --url / manifests.url, manifests.branch and the credentials",
            access.secrets,
        ))


def image_in_folder(folder: Path, repository: ImageReference, *, shown_as: str) -> ImageReference:
    """Return the one reference of repository that the YAML files in folder set.

    Looks at kustomization `images:` entries (newName or name, newTag, digest)
    and at container images, as the edit engine does. Raises PromotionError
    when none or several different references are found, or when the
    reference has no tag, because the merge request branch is named after it.
    """
    found = set()
    for path in sorted(folder.rglob("*")):
        if path.suffix not in (".yaml", ".yml") or not path.is_file():
            continue
        try:
            # BaseLoader keeps every scalar as written, so a tag such as 0123456 stays a string with its zero.
            documents = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader))
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise PromotionError(f"{shown_as}/{path.relative_to(folder)} is not valid YAML ({error}); "
                                 "run inv lint and fix the file") from None
        for document in documents:
            if isinstance(document, dict):
                found.update(_references(document, path, repository))

    if not found:
        raise PromotionError(
            f"no image of {repository.repository} in {shown_as}; set it in the images: list of its "
            "kustomization.yaml, or check image.repository"
        )
    if len(found) > 1:
        listed = ", ".join(sorted(str(reference) for reference in found))
        raise PromotionError(f"{shown_as} sets {repository.repository} more than once ({listed}); keep one "
                             "images: entry per overlay")
    [reference] = found
    if not reference.tag:
        raise PromotionError(f"{shown_as} runs {reference} without a tag; set newTag next to the digest")
    return reference


def _references(document: dict, path: Path, repository: ImageReference):
    """Yield the references of repository in one YAML document: kustomization entries and containers."""
    is_kustomization = document.get("kind") in KUSTOMIZATION_KINDS or path.name in kube.KUSTOMIZATION_FILES
    if is_kustomization:
        for entry in document.get("images") or []:
            if not isinstance(entry, dict):
                continue
            name = _parse(entry.get("newName") or entry.get("name"))
            if name is None or name.normalized_repository != repository.normalized_repository:
                continue
            yield ImageReference(name.registry, name.path, entry.get("newTag") or None, entry.get("digest") or None)
        return
    for image in _container_images(document):
        reference = _parse(image)
        if reference is not None and reference.normalized_repository == repository.normalized_repository:
            yield reference


def _container_images(content):
    if isinstance(content, dict):
        for key, value in content.items():
            if key in ("containers", "initContainers", "ephemeralContainers") and isinstance(value, list):
                yield from (item["image"] for item in value if isinstance(item, dict) and "image" in item)
            else:
                yield from _container_images(value)
    elif isinstance(content, list):
        for item in content:
            yield from _container_images(item)


def _parse(text) -> ImageReference | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return parse_image_reference(text)
    except InvalidReferenceError:
        return None
