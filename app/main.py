"""HTTP routes of the hello-python service."""

import os

from fastapi import FastAPI

SERVICE_NAME = "hello-python"
# Set by the Dockerfile from the build argument GIT_COMMIT; absent when run from source.
COMMIT_VARIABLE = "APP_GIT_COMMIT"
UNKNOWN_COMMIT = "unknown"

app = FastAPI(title=SERVICE_NAME, description="Sample service deployed by the hello-python GitOps pipeline.")


@app.get("/")
def read_root(name: str = "world") -> dict[str, str]:
    """Return a greeting."""
    return {"message": f"Hello, {name}!", "service": SERVICE_NAME}


@app.get("/healthz")
def read_health() -> dict[str, str]:
    """Report that the process serves requests; used by the liveness and readiness probes."""
    return {"status": "ok"}


@app.get("/version")
def read_version() -> dict[str, str]:
    """Return the commit the image was built from, or "unknown" when run from source."""
    commit = os.environ.get(COMMIT_VARIABLE, "").strip() or UNKNOWN_COMMIT
    return {"service": SERVICE_NAME, "commit": commit}
