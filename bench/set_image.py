"""Benchmark `inv set-image` against the yq command the original pipeline used, process against process.

Both commands set the image of the first container in every document of one
generated file with 1,000 Deployments (about 27,000 lines). Runs interleave
the two commands, each on a fresh copy of the file, so that both see
the same machine load. Wall time is measured around the whole process. Peak
memory is the maximum resident set size that wait4 reports for the process
and the children it waited for. yq starts jq, so its figure is the larger of
the two, not their sum.

Usage: python bench/set_image.py [--documents 1000] [--rounds 5]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = "registry.example.com/shop/web"
OLD_TAG = "3f9c2ab"
NEW_TAG = "7d41e0c"

DOCUMENT = """\
---
# Deployment {number}: the image tag is bumped by CI.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web-{number}
  labels:
    app: web-{number}  # used by the Service selector
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web-{number}
  template:
    metadata:
      labels:
        app: web-{number}
    spec:
      containers:
        - name: web
          image: {repository}:{tag}  # bumped by pipeline
          ports:
            - containerPort: 8080
          env:
            - name: LOG_LEVEL
              value: "info"
          resources:
            limits: {{cpu: 500m, memory: 256Mi}}
"""


def generate(path: Path, documents: int) -> int:
    """Write the manifest and return its number of lines."""
    text = "".join(DOCUMENT.format(number=n, repository=REPOSITORY, tag=OLD_TAG) for n in range(documents))
    path.write_text(text)
    return text.count("\n")


def run_measured(argv: list[str], stdout_path: Path | None = None) -> tuple[float, int]:
    """Run argv to completion and return (wall seconds, max RSS in KiB); raise if it fails."""
    stdout = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    try:
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.PIPE, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
    finally:
        if stdout_path:
            stdout.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{argv[0]} failed with exit status {process.returncode}: {process.stderr.read().decode()[-500:]}")
    return elapsed, usage.ru_maxrss


def check_changed(name: str, output: Path, documents: int) -> None:
    """Exit when a command did not set the new image in every document."""
    changed = output.read_text().count(f"{REPOSITORY}:{NEW_TAG}")
    if changed != documents:
        raise SystemExit(f"{name} set {changed} images, expected {documents}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=1000, help="documents in the generated file (default: 1000)")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each command, interleaved (default: 5)")
    options = parser.parse_args()

    if shutil.which("yq") is None:
        raise SystemExit("yq not found; install Debian's yq package (the Python yq) to compare")

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        source = folder / "source.yaml"
        lines = generate(source, options.documents)
        work = folder / "manifest.yaml"
        yq_output = folder / "yq-output.yaml"

        ours_command = [
            sys.executable, "-m", "invoke", "-r", str(ROOT), "set-image",
            "--path", str(work), "--image", f"{REPOSITORY}:{NEW_TAG}",
        ]
        yq_command = ["yq", "-y", f'.spec.template.spec.containers[0].image |= "{REPOSITORY}:{NEW_TAG}"', str(work)]

        startup_command = [sys.executable, "-m", "invoke", "-r", str(ROOT), "--list"]
        results: dict[str, list[tuple[float, int]]] = {"inv set-image": [], "yq -y": [], "inv --list": []}
        for round_number in range(options.rounds):
            # Swap which command runs first every round, so neither always runs on a warmer cache.
            order = ["inv set-image", "yq -y"] if round_number % 2 == 0 else ["yq -y", "inv set-image"]
            for name in order:
                shutil.copyfile(source, work)
                if name == "inv set-image":
                    results[name].append(run_measured(ours_command))
                    check_changed(name, work, options.documents)
                else:
                    results[name].append(run_measured(yq_command, yq_output))
                    check_changed(name, yq_output, options.documents)
            results["inv --list"].append(run_measured(startup_command))

        print(f"file: {options.documents} documents, {lines} lines, {source.stat().st_size} bytes; {options.rounds} rounds")
        print(f"{'command':<16} {'median s':>9} {'min s':>7} {'max RSS MiB':>12}")
        medians = {}
        for name, runs in results.items():
            seconds = [elapsed for elapsed, _ in runs]
            medians[name] = statistics.median(seconds)
            peak = max(rss for _, rss in runs) / 1024
            print(f"{name:<16} {medians[name]:>9.3f} {min(seconds):>7.3f} {peak:>12.1f}")
        print(f"yq / inv set-image (medians): {medians['yq -y'] / medians['inv set-image']:.1f}x")
        print("inv --list is the start of Python, invoke and tasks.py alone, for reference")


if __name__ == "__main__":
    main()
