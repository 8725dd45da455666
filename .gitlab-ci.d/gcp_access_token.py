"""Exchange a GitLab ID token for a Google Cloud access token and print it on stdout.

Workload Identity Federation, without a service account key: Google's Security
Token Service (STS) exchanges the job's ID token for a federated access token.
When GCP_SERVICE_ACCOUNT is set, the IAM Credentials API then turns that into
a short-lived access token of the service account (impersonation). Without
it, the federated token is printed, so the pool's principal needs the
registry role itself.

Input, all from the environment:
  GCP_ID_TOKEN                    the job's ID token (`id_tokens` in the job)
  GCP_WORKLOAD_IDENTITY_PROVIDER  projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER
  GCP_SERVICE_ACCOUNT             optional: e-mail of the service account to impersonate
  GCP_STS_URL, GCP_IAM_CREDENTIALS_URL
                                  optional: endpoint overrides, for tests only

Output: the access token and a newline on stdout, meant for a pipe into
`buildah login --password-stdin` or `docker login --password-stdin`. Errors
are one line on stderr with exit status 1; no token is ever written there.
Uses only the standard library, so it runs in any image with python3.
"""

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

STS_URL = "https://sts.googleapis.com/v1/token"
IAM_CREDENTIALS_URL = "https://iamcredentials.googleapis.com/v1"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# Seconds to wait for each HTTP request.
REQUEST_TIMEOUT = 30


class ExchangeError(Exception):
    """A token exchange failed; the message is one line without any token."""


def main(environ=os.environ) -> int:
    """Print the access token; return the exit status."""
    try:
        token = access_token(environ)
    except ExchangeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(token + "\n")
    return 0


def access_token(environ) -> str:
    """Return a Google Cloud access token for the job's ID token, following the steps in the module docstring."""
    id_token = _required(environ, "GCP_ID_TOKEN", "add id_tokens: GCP_ID_TOKEN to the job")
    provider = _required(
        environ,
        "GCP_WORKLOAD_IDENTITY_PROVIDER",
        "set it to projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER",
    ).strip("/")
    if not provider.startswith("projects/") or "/providers/" not in provider:
        raise ExchangeError(
            f"GCP_WORKLOAD_IDENTITY_PROVIDER is invalid: {provider!r}; expected "
            "projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER"
        )

    federated = exchange_id_token(id_token, provider, environ.get("GCP_STS_URL") or STS_URL)

    service_account = environ.get("GCP_SERVICE_ACCOUNT", "").strip()
    if not service_account:
        return federated
    base_url = (environ.get("GCP_IAM_CREDENTIALS_URL") or IAM_CREDENTIALS_URL).rstrip("/")
    return impersonate(federated, service_account, base_url)


def exchange_id_token(id_token: str, provider: str, sts_url: str) -> str:
    """Exchange the ID token at STS for a federated access token (RFC 8693 token exchange)."""
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        # STS names the provider by its full resource name, without the https: scheme.
        "audience": f"//iam.googleapis.com/{provider}",
        "scope": CLOUD_PLATFORM_SCOPE,
        "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "subject_token": id_token,
    }
    request = urllib.request.Request(
        sts_url,
        data=urllib.parse.urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    return _token_from(request, "access_token", f"token exchange at {sts_url}", secrets=[id_token])


def impersonate(federated_token: str, service_account: str, base_url: str) -> str:
    """Return a short-lived access token of service_account, requested with the federated token."""
    quoted = urllib.parse.quote(service_account, safe="@")
    url = f"{base_url}/projects/-/serviceAccounts/{quoted}:generateAccessToken"
    request = urllib.request.Request(
        url,
        data=json.dumps({"scope": [CLOUD_PLATFORM_SCOPE]}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {federated_token}"},
        method="POST",
    )
    return _token_from(request, "accessToken", f"impersonation of {service_account}", secrets=[federated_token])


def _token_from(request: urllib.request.Request, field: str, operation: str, *, secrets: list[str]) -> str:
    """Send request and return the token in the JSON response's field; errors never quote a secret."""
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
            body = json.load(response)
    except urllib.error.HTTPError as error:
        detail = _error_detail(error)
        for secret in secrets:
            detail = detail.replace(secret, "[MASKED]")
        raise ExchangeError(f"{operation} failed with HTTP {error.code}: {detail}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise ExchangeError(f"{operation} failed: {getattr(error, 'reason', error)}") from None
    except json.JSONDecodeError:
        raise ExchangeError(f"{operation} returned a response that is not JSON") from None

    token = body.get(field) if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise ExchangeError(f"{operation} returned no {field}")
    return token


def _error_detail(error: urllib.error.HTTPError) -> str:
    """Return Google's error description from an error response, on one line."""
    try:
        body = json.loads(error.read() or b"{}")
    except (json.JSONDecodeError, OSError):
        return error.reason or "no detail"
    detail = body.get("error_description") or body.get("error") or error.reason
    if isinstance(detail, dict):
        detail = detail.get("message") or detail.get("status")
    return " ".join(str(detail or "no detail").split())


def _required(environ, name: str, advice: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise ExchangeError(f"{name} is not set; {advice}")
    return value


if __name__ == "__main__":
    sys.exit(main())
