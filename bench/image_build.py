"""Measure the runtime image's size overhead and the rebuild time after a change under app/.

Usage: python bench/image_build.py [--engine buildah] [--base-image IMAGE] [--storage-driver DRIVER]

To measure with overlay storage, point CONTAINERS_STORAGE_CONF at a
storage.conf whose graphroot is not the vfs one (containers/storage keeps one
driver per graphroot), with `mount_program = "/usr/bin/fuse-overlayfs"` where
the kernel's overlay cannot be mounted, and pass --storage-driver overlay.

Without --base-image the script builds on the Debian stand-in base. It copies
the build context into a temporary folder and changes pyproject.toml there by
a comment with a random value, so the first build misses the dependency layer
(a cold build of everything above the base image). Then it appends a comment
to app/main.py and builds again. Both builds run one after the other in the
same process, so their ratio compares like with like on a shared machine.

Targets: runtime image <= base image + installed dependencies + 5 MB;
rebuild after an app/ change <= 0.25 x the cold build.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))

from invoke import Context  # noqa: E402

from pipeline.engines import select_engine  # noqa: E402
from pipeline.standin import ensure_standin_base  # noqa: E402

CONTEXT_FILES = ("Dockerfile", ".dockerignore", "pyproject.toml", "app", "tests/__init__.py", "tests/app")
MAX_OVERHEAD_BYTES = 5 * 1000 * 1000
MAX_REBUILD_RATIO = 0.25


def copy_context(destination: Path) -> None:
    for name in CONTEXT_FILES:
        source = PROJECT_DIR / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def timed_build(engine, context: Path, image: str, base_image: str) -> float:
    started = time.perf_counter()
    engine.build(str(context), image, target="runtime",
                 build_args={"BASE_IMAGE": base_image, "GIT_COMMIT": uuid.uuid4().hex, "CREATED": "bench"})
    return time.perf_counter() - started


def venv_bytes(engine, image: str) -> int:
    """Return the bytes under /opt/venv in image: the installed dependencies and the venv's own files."""
    if engine.name != "buildah":
        raise SystemExit("this benchmark reads the venv size with buildah; run it with --engine buildah")
    container = subprocess.run(engine.command("from", "--pull-never", image),
                               capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    try:
        output = subprocess.run(engine.command("run", f"--isolation={engine.isolation}", container, "--",
                                               "du", "-s", "-B1", "/opt/venv"),
                                capture_output=True, text=True, check=True).stdout
    finally:
        subprocess.run(engine.command("rm", container), capture_output=True, check=False)
    return int(output.split()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="buildah", help="auto, docker, podman or buildah (default: buildah)")
    parser.add_argument("--base-image", default="", help="base image (default: the Debian stand-in base)")
    parser.add_argument("--storage-driver", default="",
                        help="buildah/podman storage driver (default: STORAGE_DRIVER, else vfs)")
    options = parser.parse_args()

    c = Context()
    engine = select_engine(c, options.engine, storage_driver=options.storage_driver)
    base_image = options.base_image or ensure_standin_base(c, engine)
    image = f"localhost/hello-python-bench:{uuid.uuid4().hex[:8]}"

    with tempfile.TemporaryDirectory(prefix="hello-python-bench-") as folder:
        context = Path(folder)
        copy_context(context)
        pyproject = context / "pyproject.toml"
        pyproject.write_text(pyproject.read_text() + f"\n# bench {uuid.uuid4().hex}\n")
        cold = timed_build(engine, context, image, base_image)

        main_py = context / "app" / "main.py"
        main_py.write_text(main_py.read_text() + f"\n# bench {uuid.uuid4().hex}\n")
        rebuild = timed_build(engine, context, image, base_image)

    runtime_size = engine.image_size(image)
    base_size = engine.image_size(base_image)
    dependencies = venv_bytes(engine, image)
    overhead = runtime_size - base_size - dependencies
    subprocess.run(engine.command("rmi", image), capture_output=True, check=False)

    ratio = rebuild / cold
    result = {
        "engine": engine.name,
        "storage_driver": getattr(engine, "storage_driver", ""),
        "base_image": base_image,
        "cold_build_s": round(cold, 1),
        "rebuild_after_app_change_s": round(rebuild, 1),
        "rebuild_ratio": round(ratio, 3),
        "base_image_bytes": base_size,
        "venv_bytes": dependencies,
        "runtime_image_bytes": runtime_size,
        "overhead_bytes": overhead,
    }
    print(json.dumps(result, indent=2))
    passed = overhead <= MAX_OVERHEAD_BYTES and ratio <= MAX_REBUILD_RATIO
    print(f"size overhead {overhead / 1e6:.2f} MB (target <= {MAX_OVERHEAD_BYTES / 1e6:g} MB); "
          f"rebuild ratio {ratio:.3f} (target <= {MAX_REBUILD_RATIO})")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
