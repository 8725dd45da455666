"""Render the kustomize overlays of the manifests repository, one per environment.

The manifests repository contains `base/` and one overlay per environment at
`overlays/<env>` (the folder pattern is the setting `environments.path`).
Rendering runs `kubectl kustomize`, or the standalone `kustomize build` where
kubectl is missing, and returns what Argo CD would apply.
"""

import difflib
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from pipeline.errors import ConfigError, PipelineError

DEFAULT_PATH_PATTERN = "overlays/{env}"
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")

# Rendering a small overlay takes well under a second, so this limit only stops a hung process.
RENDER_TIMEOUT_SECONDS = 120

# An environment name becomes a folder name and part of a namespace, so it
# follows the rules of a Kubernetes label value without dots.
_ENVIRONMENT_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")

# kubectl logs a failed kustomize build through klog, for example
#   E1204 19:50:41.136798 18362 run.go:72] "command failed" err="accumulating resources: ..."
# with err=<...> spanning several lines when the message has line breaks.
_KLOG_PREFIX = re.compile(r'^[EWIF]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\] "command failed" err=')


class UnknownEnvironmentError(ConfigError):
    """An environment name is not one of `environments.names`."""


class RenderError(PipelineError):
    """kustomize failed to render an overlay, or no kustomize is installed."""


def environment_names(config) -> list[str]:
    """Return the environment names from the setting `environments.names`."""
    names = [str(name).strip() for name in (config.environments.names or [])]
    if not names:
        raise ConfigError("environments.names is empty; list the environments in invoke.yaml, for example [dev, prod]")
    return names


def environment_path(config, env: str) -> str:
    """Return the folder of environment env inside the manifests repository, such as "overlays/dev".

    Raises UnknownEnvironmentError unless env is listed in `environments.names`.
    """
    names = environment_names(config)
    if env not in names:
        raise UnknownEnvironmentError(
            f"unknown environment {env!r}; use one of {', '.join(names)} or add it to environments.names"
        )
    pattern = str(config.environments.path or DEFAULT_PATH_PATTERN)
    return overlay_path(env, pattern)


def overlay_path(env: str, pattern: str = DEFAULT_PATH_PATTERN) -> str:
    """Return the folder of environment env for a pattern such as "overlays/{env}"."""
    if not _ENVIRONMENT_NAME.fullmatch(env):
        raise UnknownEnvironmentError(
            f"invalid environment name {env!r}; use lowercase letters, digits and '-' (for example dev)"
        )
    if "{env}" not in pattern:
        raise ConfigError(f"environments.path {pattern!r} lacks {{env}}; set it to a pattern such as overlays/{{env}}")
    return pattern.format(env=env)


def kustomize_command() -> list[str] | None:
    """Return the command that renders a kustomization folder, or None when neither tool is installed."""
    kubectl = shutil.which("kubectl")
    if kubectl:
        return [kubectl, "kustomize"]
    kustomize = shutil.which("kustomize")
    if kustomize:
        return [kustomize, "build"]
    return None


def render_directory(directory: Path | str, *, shown_as: str | None = None) -> str:
    """Render the kustomization in directory and return the YAML stream, or raise RenderError.

    shown_as replaces the directory's path in error messages, for callers that
    render a temporary copy of the user's folder.
    """
    directory = Path(directory)
    label = shown_as or str(directory)
    command = kustomize_command()
    if command is None:
        raise RenderError(f"cannot render {label}: neither kubectl nor kustomize is on PATH; install kubectl")
    if not any((directory / name).is_file() for name in KUSTOMIZATION_FILES):
        raise RenderError(f"cannot render {label}: no kustomization.yaml in it; check the environment's folder")

    argv = [*command, str(directory)]
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=RENDER_TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        raise RenderError(f"{label} failed to render: {argv[1]} timed out after {RENDER_TIMEOUT_SECONDS} s") from None
    if completed.returncode != 0:
        reason = kustomize_error(completed.stderr or completed.stdout)
        if shown_as:
            reason = reason.replace(str(directory), shown_as)
        raise RenderError(f"{label} failed to render: {reason}")
    return completed.stdout


def render_overlay(directory: Path | str, env: str, *, pattern: str = DEFAULT_PATH_PATTERN) -> str:
    """Render environment env of the manifests repository checked out at directory, as Argo CD would."""
    return render_directory(Path(directory) / overlay_path(env, pattern))


def render_diff(before_dir: Path | str, after_dir: Path | str, env: str, *, pattern: str = DEFAULT_PATH_PATTERN) -> str:
    """Return a unified diff of environment env rendered from before_dir and from after_dir.

    The result is empty when both render to the same objects.
    """
    before = render_overlay(before_dir, env, pattern=pattern)
    after = render_overlay(after_dir, env, pattern=pattern)
    folder = overlay_path(env, pattern)
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"a/{folder} (rendered)",
        tofile=f"b/{folder} (rendered)",
    )
    return "".join(lines)


def kustomize_error(output: str) -> str:
    """Return kustomize's error message from its stderr as one line, without klog's prefix and quoting."""
    text = output.strip()
    match = _KLOG_PREFIX.search(text)
    if match:
        text = text[match.end():].strip()
        if text.startswith("<") and text.endswith(">"):
            text = text[1:-1]
        elif text.startswith('"') and text.endswith('"'):
            text = text[1:-1].replace('\\"', '"')
    if text.startswith("Error: "):
        text = text[len("Error: "):]
    return " ".join(part.strip() for part in text.splitlines() if part.strip()) or "no error message"


def kustomization_directories(root: Path | str, skip: Sequence[str] = (".git",)) -> list[Path]:
    """Return every folder under root that contains a kustomization file, sorted, root itself included."""
    root = Path(root)
    found = set()
    for name in KUSTOMIZATION_FILES:
        for path in root.rglob(name):
            if not any(part in skip for part in path.relative_to(root).parts):
                found.add(path.parent)
    return sorted(found)
