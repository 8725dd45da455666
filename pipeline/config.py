"""Read the project's settings from invoke's configuration and GitLab's predefined variables.

Precedence, lowest first: defaults in `tasks.py` (`ns.configure`), `invoke.yaml`,
`INVOKE_*` environment variables (for example INVOKE_MANIFESTS_URL), then task
flags. GitLab's predefined variables fill in what the configuration leaves empty.
"""

import os
from collections.abc import Mapping

from pipeline.errors import ConfigError

DEFAULT_LOCAL_REGISTRY = "localhost"


def image_repository(config, environ: Mapping[str, str] | None = None) -> str:
    """Return the image repository (registry host and path, no tag) that tasks build and push.

    `image.repository` wins when set. Otherwise GitLab's CI_REGISTRY_IMAGE is
    used in CI, and outside CI `image.registry` joined with `image.name`.
    """
    environ = os.environ if environ is None else environ
    repository = str(config.image.repository or "").strip()
    if repository:
        return repository
    ci_registry_image = environ.get("CI_REGISTRY_IMAGE", "").strip()
    if ci_registry_image:
        return ci_registry_image
    name = str(config.image.name or "").strip()
    if not name:
        raise ConfigError("image.name is empty; set it in invoke.yaml or INVOKE_IMAGE_NAME")
    registry = str(config.image.registry or "").strip().rstrip("/") or DEFAULT_LOCAL_REGISTRY
    return f"{registry}/{name}"


def pipeline_url(environ: Mapping[str, str] | None = None) -> str:
    """Return the CI pipeline's URL, or an empty string outside GitLab CI."""
    environ = os.environ if environ is None else environ
    return environ.get("CI_PIPELINE_URL", "").strip()


def require(value, setting: str, example: str) -> str:
    """Return value as a stripped string, or raise ConfigError naming the setting when it is empty."""
    text = str(value or "").strip()
    if not text:
        variable = environment_variable(setting)
        raise ConfigError(f"{setting} is not set; set it in invoke.yaml or {variable} (for example {example})")
    return text


def whole_number(flag_value, config_value, flag: str, setting: str, *, minimum: int) -> int:
    """Return the flag's value, else the setting's, as an int; raise ConfigError naming its source if it is not one."""
    if flag_value is None:
        value = config_value
        name = f"{setting} (invoke.yaml or {environment_variable(setting)})"
    else:
        value = flag_value
        name = f"{flag} / {setting}"
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}; give one such as 6") from None
    if number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {number}")
    return number


def seconds(value, name: str) -> float:
    """Return value as a number of seconds, at least 0; raise ConfigError naming name when it is not one."""
    try:
        seconds = float(str(value).strip())
    except ValueError:
        raise ConfigError(f"{name} ({environment_variable(name)}) must be a number of seconds, got {value!r}; "
                          "give one such as 0.5") from None
    if not seconds >= 0:  # also rejects nan
        raise ConfigError(f"{name} ({environment_variable(name)}) must be at least 0 seconds, got {value!r}")
    return seconds


def environment_variable(setting: str) -> str:
    """Return the environment variable that sets an invoke setting, such as INVOKE_BUMP_ATTEMPTS for bump.attempts."""
    return "INVOKE_" + setting.replace(".", "_").upper()
