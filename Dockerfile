# Image of the hello-python service, in three stages:
#   build    installs the runtime dependencies from pyproject.toml into /opt/venv
#   runtime  the service: the venv and app/ on the base, run by a non-root user
#   test     runtime plus the `test` extra and tests/app; `inv test --in-image` runs it
# BASE_IMAGE must provide python3 with the venv module: python:3.12-slim, or the
# Debian stand-in that `inv build --standin-base` builds (python3 3.11).
# RUN --mount needs BuildKit (Docker 23 and later use it by default) or buildah/podman.
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Only pyproject.toml comes in before the install, so a change under app/
# reuses the dependency layer that the next step installs.
COPY pyproject.toml ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > requirements.txt \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/python -m pip install --no-compile -r requirements.txt \
 && /opt/venv/bin/python -m pip uninstall --yes pip setuptools \
 && find /opt/venv -name __pycache__ -type d -prune -exec rm -rf {} +

FROM ${BASE_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --gid 10001 app \
 && useradd --uid 10001 --gid app --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
USER 10001:10001
EXPOSE 8080
# Exec form: uvicorn is PID 1 and receives SIGTERM, then finishes open requests
# for up to 20 s (Kubernetes waits 30 s by default before SIGKILL).
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8080", "--timeout-graceful-shutdown", "20"]
# The code and what changes on every commit come last, so that a change under
# app/ rebuilds only the steps from here on. COPY writes root-owned files, so
# the app cannot modify its own code.
COPY app/ ./app/
# A RUN step sees the build arguments in its environment, so it is rebuilt
# when they change. That makes the LABEL and ENV steps below it rebuilt too,
# because buildah 1.28 reuses a cached LABEL or ENV step whose text is
# unchanged even when the argument values differ. Each ARG gets its own line,
# because buildah 1.28 counts only the first name of an ARG line as used and
# warns that the build arguments after it "were not consumed".
ARG GIT_COMMIT=unknown
ARG SOURCE_URL=""
ARG CREATED=""
RUN test -n "${GIT_COMMIT}${CREATED}"
LABEL org.opencontainers.image.title="hello-python" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.created="${CREATED}"
ENV APP_GIT_COMMIT=${GIT_COMMIT}

FROM runtime AS test
USER root
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    COVERAGE_FILE=/tmp/.coverage
COPY pyproject.toml ./
# The runtime venv has no pip, so the base image's own python3 and pip (found
# through the base's PATH, without /opt/venv/bin) install into it.
RUN --mount=type=cache,target=/root/.cache/pip \
    export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
 && python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["test"]))' \
        > /tmp/requirements-test.txt \
 && python3 -m pip --python /opt/venv/bin/python install --no-compile -r /tmp/requirements-test.txt \
 && rm /tmp/requirements-test.txt
COPY tests/__init__.py ./tests/
COPY tests/app/ ./tests/app/
USER 10001:10001
# Coverage of app/ and the gate (fail_under) come from pyproject.toml.
CMD ["python", "-m", "pytest", "-p", "no:cacheprovider", "tests/app", "--cov", "--cov-report=term-missing"]
