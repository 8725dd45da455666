"""Turn invoke's configuration and flags into one `bump_manifests` call, and record the result.

`inv bump` and `inv rollback` both come here, so they read the same settings
(`manifests.*` and `bump.*`, see `ns.configure` in tasks.py) and write the
same result file.
"""

import os
from collections.abc import Mapping
from pathlib import Path

from pipeline import config as project_config
from pipeline.config import environment_variable, seconds, whole_number
from pipeline.errors import ConfigError, PipelineError
from pipeline.gitops import (
    BumpResult,
    Credentials,
    MergeRequestOptions,
    bump_manifests,
    pin_digest,
    read_image_env,
    write_result,
)
from pipeline.reference import parse_image_reference
from pipeline.revision import SHORT_SHA_LENGTH, image_tag, open_repository, source_commit
from pipeline.yamledit import ManifestError

# Secrets come from the environment only, so they never sit in invoke.yaml.
# The value of a GitLab file-type variable is a path, and of a plain variable the content.
SSH_KEY_VARIABLE = "MANIFESTS_SSH_PRIVATE_KEY"
KNOWN_HOSTS_VARIABLE = "MANIFESTS_KNOWN_HOSTS"
TOKEN_VARIABLE = "MANIFESTS_TOKEN"

# The rollback check compares commit dates, so a bump needs the history, not only the CI_COMMIT_* variables.
_CLONE_ADVICE = "run inv bump inside a clone of the application repository, because its rollback check reads the history"


def run_bump(
    config,
    *,
    tag: str | None = None,
    rollback_to: str | None = None,
    mode: str | None = None,
    url: str | None = None,
    branch: str | None = None,
    path: str | None = None,
    env: str | None = None,
    container: str | None = None,
    allow_rollback: bool = False,
    dry_run: bool = False,
    pin: bool | None = None,
    attempts: int | None = None,
    result_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> BumpResult:
    """Run one bump with config (invoke's) and the flags given; write the result file, also on failure."""
    environ = os.environ if environ is None else environ
    manifests, bump = config.manifests, config.bump
    result_path = Path(result_file or bump.result_file)
    new_image = ""
    try:
        attempts_number = whole_number(attempts, bump.attempts, "--attempts", "bump.attempts", minimum=1)
        backoff = seconds(bump.backoff_seconds, "bump.backoff_seconds")
        repository = project_config.image_repository(config, environ)
        if rollback_to:
            commit = _resolve_commit(rollback_to)
            image_tag_text, commit_hash = commit[:SHORT_SHA_LENGTH], commit
            allow_rollback = True
        else:
            if not tag:
                open_repository(".", advice=_CLONE_ADVICE)
            image_tag_text = tag or image_tag(".", environ)
            commit_hash = source_commit(".", environ) if not tag else _commit_of_tag(tag)
        image = parse_image_reference(f"{repository}:{image_tag_text}")
        new_image = str(image)

        if bump.pin_digest if pin is None else pin:
            image = pin_digest(image, read_image_env(bump.image_env), bump.image_env)
            new_image = str(image)

        branch_prefix = bump.branch_prefix
        path_setting = "--path / manifests.path"
        if env and not path:
            from pipeline.kube import environment_path

            path = environment_path(config, env)
            path_setting = f"environments.path for --env {env}"
            # Bumps of different environments for the same commit must not share one branch.
            branch_prefix = f"{branch_prefix}{env}/"

        result = bump_manifests(
            url=_require(url or manifests.url, "--url", "manifests.url", "git@gitlab.com:group/manifests.git"),
            target_branch=_require(branch or manifests.branch, "--branch", "manifests.branch", "main"),
            manifests_path=_require(path or manifests.path, "--path", "manifests.path", "overlays/dev"),
            path_setting=path_setting,
            image=image,
            mode=mode or bump.mode,
            branch_prefix=branch_prefix,
            container=container or bump.container or None,
            source_commit=commit_hash,
            pipeline_url=project_config.pipeline_url(environ),
            author_name=bump.author_name,
            author_email=bump.author_email,
            merge_request=MergeRequestOptions(
                create=bool(bump.create_merge_request),
                remove_source_branch=bool(bump.remove_source_branch),
                auto_merge=bool(bump.auto_merge),
                auto_merge_option=bump.auto_merge_option,
                labels=tuple(bump.labels or ()),
            ),
            credentials_=Credentials(
                ssh_key=manifests.ssh_key or environ.get(SSH_KEY_VARIABLE, ""),
                known_hosts=manifests.known_hosts or environ.get(KNOWN_HOSTS_VARIABLE, ""),
                token=environ.get(TOKEN_VARIABLE, ""),
                token_username=manifests.token_username,
            ),
            allow_rollback=allow_rollback,
            dry_run=dry_run,
            attempts=attempts_number,
            backoff_seconds=backoff,
        )
    except ManifestError as error:
        error = _with_repository_source(error, new_image, config, environ)
        write_result(None, result_path, failure=str(error), new_image=new_image)
        raise error from None
    except PipelineError as error:
        write_result(None, result_path, failure=str(error), new_image=new_image)
        raise
    write_result(result, result_path)
    return result




def _require(value, flag: str, setting: str, example: str) -> str:
    """Return value as a stripped string, or raise ConfigError naming the flag and the setting when it is empty."""
    text = str(value or "").strip()
    if not text:
        raise ConfigError(f"{setting} is not set; pass {flag}, or set {setting} in invoke.yaml or "
                          f"{environment_variable(setting)} (for example {example})")
    return text



def _with_repository_source(error: ManifestError, new_image: str, config, environ: Mapping[str, str]):
    """Return error, extended with where the image repository came from when no manifest uses that repository."""
    repository = parse_image_reference(new_image).repository if new_image else ""
    # The wording is that of pipeline.manifests' no-match message for an image (not a --container) search.
    if not repository or not str(error).startswith(f"no image {repository} in "):
        return error
    if str(config.image.repository or "").strip():
        source = "image.repository (invoke.yaml or INVOKE_IMAGE_REPOSITORY)"
    elif environ.get("CI_REGISTRY_IMAGE", "").strip():
        source = "the CI variable CI_REGISTRY_IMAGE"
    else:
        source = "image.registry and image.name (INVOKE_IMAGE_REGISTRY, INVOKE_IMAGE_NAME)"
    return ManifestError(
        f"{error}; the bump looks for {repository}, which comes from {source}; set image.repository in "
        "invoke.yaml or INVOKE_IMAGE_REPOSITORY to the repository that the manifests use"
    )


def _commit_of_tag(tag: str) -> str:
    """Return the full hash of the commit a --tag names, or "" when it names none (no Source-Commit trailer)."""
    try:
        return _resolve_commit(tag)
    except PipelineError:
        return ""


def _resolve_commit(revision: str) -> str:
    """Return the full hash of revision in the application repository, or raise PipelineError."""
    import git

    repo = open_repository(".")
    try:
        return repo.git.rev_parse("--verify", "--quiet", f"{revision}^{{commit}}")
    except git.GitCommandError:
        raise PipelineError(
            f"rollback target {revision!r} is not a commit of the application repository at {repo.working_tree_dir}; "
            "give a commit hash from `git log`, and fetch first if the clone is shallow"
        ) from None
