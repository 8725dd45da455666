"""Build a stand-in Python base image with debootstrap when no base image can be pulled.

The Dockerfile's default base is python:3.12-slim from Docker Hub. Where no
registry but Debian's mirror is reachable (an offline CI runner, this
project's tests), `ensure_standin_base` builds Debian bookworm with python3,
python3-venv and pip into the engine's storage, and `inv build --standin-base`
passes it as the BASE_IMAGE build argument. Bookworm's python3 is 3.11.
"""

import hashlib
import shlex

from pipeline.engines import Engine, EngineError

STANDIN_REPOSITORY = "localhost/hello-python-standin-base"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
# The host's CA bundle replaces the image's own, so that pip inside a build
# trusts the same authorities as the host (a TLS-inspecting proxy's CA included).
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
IMAGE_ENV = {
    "LANG": "C.UTF-8",
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "SSL_CERT_FILE": HOST_CA_BUNDLE,
    "PIP_CERT": HOST_CA_BUNDLE,
    "REQUESTS_CA_BUNDLE": HOST_CA_BUNDLE,
}
# Removed from the root file system before import: package caches and documentation, unused in a container.
PRUNED_PATHS = ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale",
                "usr/share/info")
# Bumped whenever the recipe below changes in a way the hash inputs do not show.
RECIPE_VERSION = "1"


def ensure_standin_base(c, engine: Engine, *, mirror: str = MIRROR) -> str:
    """Return the stand-in base image's name, building it first unless the engine's storage contains it.

    The tag is a hash of the recipe and of the host's CA bundle, so a changed
    bundle or package list builds a new image while an unchanged one is reused.
    Commands run through engine.c, so on a remote builder it is built there.
    """
    image = f"{STANDIN_REPOSITORY}:{recipe_hash(engine, mirror)}"
    if engine.image_exists(image):
        print(f"stand-in base image {image} is already built")
        return image

    workdir = engine.execute(["mktemp", "-d"], what="mktemp", hide=True).stdout.strip()
    rootfs = f"{workdir}/rootfs"
    tarball = f"{workdir}/rootfs.tar"
    try:
        engine.execute(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, rootfs, mirror],
            what="debootstrap",
            hide=True,
        )
        engine.execute(["cp", HOST_CA_BUNDLE, f"{rootfs}{HOST_CA_BUNDLE}"], what="cp")
        engine.execute(["rm", "-rf", *(f"{rootfs}/{path}" for path in PRUNED_PATHS)], what="rm")
        # Device nodes and mount points are left out; the container runtime provides them.
        engine.execute(
            ["tar", "-C", rootfs, "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*",
             "--numeric-owner", "-cf", tarball, "."],
            what="tar",
        )
        engine.import_rootfs(tarball, image, env=IMAGE_ENV, cmd=["python3"])
    finally:
        engine.c.run(shlex.join(["rm", "-rf", workdir]), warn=True, hide=True, in_stream=False)
    print(f"built stand-in base image {image}")
    return image


def recipe_hash(engine: Engine, mirror: str) -> str:
    """Return 12 hex characters of the SHA-256 of the recipe and the CA bundle on the engine's machine."""
    try:
        bundle = engine.execute(["sha256sum", HOST_CA_BUNDLE], what="sha256sum", hide=True).stdout.split()[0]
    except EngineError:
        raise EngineError(
            f"cannot read the CA bundle {HOST_CA_BUNDLE}; install ca-certificates (apt-get install ca-certificates)"
        ) from None
    recipe = "\n".join([RECIPE_VERSION, SUITE, mirror, *PACKAGES, *sorted(f"{k}={v}" for k, v in IMAGE_ENV.items()),
                        *PRUNED_PATHS, bundle])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]
