"""Remove secrets from text before it is printed, raised or written to a file."""

import os
import re
from collections.abc import Iterable, Mapping

MASK = "[MASKED]"

# Environment variables whose values are secrets wherever they appear.
# GitLab's own names first, then the ones this project documents.
SECRET_VARIABLES = (
    "CI_JOB_TOKEN",
    "CI_REGISTRY_PASSWORD",
    "CI_DEPLOY_PASSWORD",
    "MANIFESTS_TOKEN",
    "REGISTRY_PASSWORD",
)
_SECRET_NAME = re.compile(r"(TOKEN|PASSWORD|SECRET|PRIVATE_KEY)$")

# The user-information part of an HTTP(S) URL: https://user:secret@host/ or https://token@host/.
# SSH URLs keep theirs, because "git@" names an account, not a secret.
_URL_USERINFO = re.compile(r"(?P<scheme>https?://)[^/@\s]+@", re.IGNORECASE)

# Values shorter than this are not masked one by one, because masking "1" or
# "ci" would garble every line. Values that short are not real secrets.
_MIN_SECRET_LENGTH = 6


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Return the secret values found in the environment, longest first."""
    environ = os.environ if environ is None else environ
    values = {
        value
        for name, value in environ.items()
        if (name in SECRET_VARIABLES or _SECRET_NAME.search(name)) and len(value) >= _MIN_SECRET_LENGTH
    }
    return sorted(values, key=len, reverse=True)


def redact(text: str, extra: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> str:
    """Return text with URL credentials and every known secret value replaced by [MASKED]."""
    text = _URL_USERINFO.sub(lambda match: f"{match['scheme']}{MASK}@", text)
    secrets = [value for value in extra if value and len(value) >= _MIN_SECRET_LENGTH]
    for value in sorted(set(secrets) | set(secret_values(environ)), key=len, reverse=True):
        text = text.replace(value, MASK)
    return text
