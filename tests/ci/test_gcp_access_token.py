"""The Artifact Registry login helper against stand-ins for Google's STS and IAM Credentials on 127.0.0.1."""

import json
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.ci.helpers import CI_JOB_FOLDER

SCRIPT = CI_JOB_FOLDER / "gcp_access_token.py"
PROVIDER = "projects/123456/locations/global/workloadIdentityPools/gitlab/providers/gitlab-com"
ID_TOKEN = "eyJ.id-token-from-gitlab.sig"
FEDERATED_TOKEN = "ya29.federated-token"
SERVICE_ACCOUNT_TOKEN = "ya29.service-account-token"
SERVICE_ACCOUNT = "image-pusher@demo-project.iam.gserviceaccount.com"
# Seconds the helper may take against the local stand-ins.
SCRIPT_TIMEOUT = 30


class GoogleStandIn(ThreadingHTTPServer):
    """Serves the token exchange and the impersonation call, and records each request."""

    def __init__(self, sts_status: int = 200):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.sts_status = sts_status
        self.requests: list[dict] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (the name http.server calls)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        self.server.requests.append(
            {"path": self.path, "body": body, "authorization": self.headers.get("Authorization", "")}
        )
        if self.path == "/sts/v1/token":
            if self.server.sts_status != 200:
                self._reply(self.server.sts_status, {
                    "error": "invalid_grant",
                    "error_description": f"The audience in ID Token [{ID_TOKEN}] does not match the expected audience.",
                })
                return
            self._reply(200, {"access_token": FEDERATED_TOKEN, "token_type": "Bearer", "expires_in": 3599})
        elif self.path.endswith(":generateAccessToken"):
            self._reply(200, {"accessToken": SERVICE_ACCOUNT_TOKEN, "expireTime": "2030-01-01T00:00:00Z"})
        else:
            self._reply(404, {"error": "not found"})

    def _reply(self, status: int, payload: dict):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # noqa: A002 (http.server's signature)
        pass


@pytest.fixture
def google():
    """Start a stand-in on a free port of 127.0.0.1 and stop it after the test."""
    servers = []

    def start(sts_status: int = 200) -> GoogleStandIn:
        server = GoogleStandIn(sts_status)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def run_helper(server: GoogleStandIn | None, **variables: str) -> subprocess.CompletedProcess:
    environment = {"PATH": "/usr/bin:/bin"}
    if server:
        environment["GCP_STS_URL"] = f"{server.url}/sts/v1/token"
        environment["GCP_IAM_CREDENTIALS_URL"] = f"{server.url}/iam/v1"
    environment.update(variables)
    return subprocess.run([sys.executable, str(SCRIPT)], env=environment, capture_output=True, text=True,
                          timeout=SCRIPT_TIMEOUT, check=False)


def test_helper_prints_federated_token(google):
    server = google()
    completed = run_helper(server, GCP_ID_TOKEN=ID_TOKEN, GCP_WORKLOAD_IDENTITY_PROVIDER=PROVIDER)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == FEDERATED_TOKEN + "\n"


def test_helper_sends_token_exchange_request(google):
    server = google()
    run_helper(server, GCP_ID_TOKEN=ID_TOKEN, GCP_WORKLOAD_IDENTITY_PROVIDER=PROVIDER)
    form = dict(urllib.parse.parse_qsl(server.requests[0]["body"]))
    assert form == {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "audience": f"//iam.googleapis.com/{PROVIDER}",
        "scope": "https://www.googleapis.com/auth/cloud-platform",
        "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "subject_token": ID_TOKEN,
    }


def test_helper_impersonates_service_account(google):
    server = google()
    completed = run_helper(server, GCP_ID_TOKEN=ID_TOKEN, GCP_WORKLOAD_IDENTITY_PROVIDER=PROVIDER,
                           GCP_SERVICE_ACCOUNT=SERVICE_ACCOUNT)
    assert completed.stdout == SERVICE_ACCOUNT_TOKEN + "\n"
    impersonation = server.requests[1]
    assert impersonation["path"] == f"/iam/v1/projects/-/serviceAccounts/{SERVICE_ACCOUNT}:generateAccessToken"
    assert impersonation["authorization"] == f"Bearer {FEDERATED_TOKEN}"
    assert json.loads(impersonation["body"]) == {"scope": ["https://www.googleapis.com/auth/cloud-platform"]}


def test_helper_reports_rejected_exchange_without_token(google):
    server = google(sts_status=400)
    completed = run_helper(server, GCP_ID_TOKEN=ID_TOKEN, GCP_WORKLOAD_IDENTITY_PROVIDER=PROVIDER)
    assert completed.returncode == 1
    assert completed.stdout == ""
    assert completed.stderr == (
        f"error: token exchange at {server.url}/sts/v1/token failed with HTTP 400: "
        "The audience in ID Token [[MASKED]] does not match the expected audience.\n"
    )


def test_helper_requires_id_token():
    completed = run_helper(None, GCP_WORKLOAD_IDENTITY_PROVIDER=PROVIDER)
    assert completed.returncode == 1
    assert completed.stderr == "error: GCP_ID_TOKEN is not set; add id_tokens: GCP_ID_TOKEN to the job\n"


def test_helper_rejects_provider_without_full_name():
    completed = run_helper(None, GCP_ID_TOKEN=ID_TOKEN, GCP_WORKLOAD_IDENTITY_PROVIDER="gitlab-com")
    assert completed.returncode == 1
    assert completed.stderr.startswith("error: GCP_WORKLOAD_IDENTITY_PROVIDER is invalid: 'gitlab-com';")


def test_helper_reports_unreachable_endpoint():
    completed = run_helper(None, GCP_ID_TOKEN=ID_TOKEN, GCP_WORKLOAD_IDENTITY_PROVIDER=PROVIDER,
                           GCP_STS_URL="http://127.0.0.1:9/v1/token")
    assert completed.returncode == 1
    assert completed.stderr.startswith("error: token exchange at http://127.0.0.1:9/v1/token failed: ")
    assert ID_TOKEN not in completed.stderr
