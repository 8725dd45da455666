"""Measure `inv bump --mode direct` against manifests repositories with short and long histories.

Three ways run side by side, interleaved round by round so that noise on a
shared machine hits them alike:

- ours on a bare repository with 10 commits on main;
- ours on a bare repository with 10,000 commits on main;
- the original pipeline's way on the 10,000-commit repository: a full
  `git clone`, a `yq -y -i` rewrite of the image, `git commit -a`, `git push`.

Every way clones through a file:// URL, so git copies objects as it would
over a network instead of hard-linking them. The figures are wall-clock
seconds per bump, including the `inv` process start. Run from the project root:

    python bench/bump_history.py --rounds 7
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
IMAGE_REPOSITORY = "registry.example.com/acme/hello-python"
MANIFEST_PATH = "apps/hello-python/deployment.yaml"
IDENTITY = {
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello-python
spec:
  template:
    spec:
      containers:
        - name: hello-python
          image: {image}
"""


def git(*args: str, cwd: Path | None = None) -> str:
    completed = subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **IDENTITY}, capture_output=True,
                               text=True, check=True)
    return completed.stdout.strip()


# The long history models a manifests repository whose commits are mostly
# image bumps: 20 other apps, each commit sets a new tag in one of them.
OTHER_APPS = 20


def other_app_files(app: int, tag: str) -> dict[str, str]:
    name = f"service-{app:02d}"
    deployment = DEPLOYMENT.replace("hello-python", name).format(image=f"registry.example.com/acme/{name}:{tag}")
    service = (f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector:\n    app: {name}\n"
               "  ports:\n    - port: 80\n      targetPort: 8080\n")
    return {f"apps/{name}/deployment.yaml": deployment, f"apps/{name}/service.yaml": service}


def make_manifests_repository(path: Path, commits: int, deployed_image: str) -> None:
    """Create a bare repository with `commits` commits on main, built in one git fast-import run.

    The first commit adds the other apps, every later one but the last sets
    one of their tags, and the last adds hello-python's Deployment.
    """
    git("init", "--quiet", "--bare", "--initial-branch=main", str(path))
    stream = []
    for number in range(1, commits + 1):
        if number == 1:
            files = {}
            for app in range(OTHER_APPS):
                files.update(other_app_files(app, f"{0:08x}"))
        elif number == commits:
            files = {MANIFEST_PATH: DEPLOYMENT.format(image=deployed_image)}
        else:
            app = number % OTHER_APPS
            files = {f"apps/service-{app:02d}/deployment.yaml":
                     other_app_files(app, f"{number * 2654435761 % 2**32:08x}")[f"apps/service-{app:02d}/deployment.yaml"]}
        message = f"Change {number}\n".encode()
        chunk = (
            b"commit refs/heads/main\n"
            + b"committer Bench <bench@example.invalid> %d +0000\n" % (1_700_000_000 + number)
            + b"data %d\n%s" % (len(message), message)
        )
        for file_path, text in files.items():
            content = text.encode()
            chunk += b"M 644 inline %s\ndata %d\n%s\n" % (file_path.encode(), len(content), content)
        stream.append(chunk)
    subprocess.run(["git", "fast-import", "--quiet"], cwd=path, input=b"".join(stream), check=True)
    git("gc", "--quiet", cwd=path)


def make_application_repository(path: Path, commits: int) -> list[str]:
    """Create an application repository with a line of commits and return their hashes, oldest first."""
    git("init", "--quiet", "--initial-branch=main", str(path))
    hashes = []
    for number in range(commits):
        (path / "version.txt").write_text(f"{number}\n")
        git("add", "version.txt", cwd=path)
        git("commit", "--quiet", "-m", f"Release {number}", cwd=path)
        hashes.append(git("rev-parse", "HEAD", cwd=path))
    return hashes


def timed(argv: list[str], cwd: Path, env: dict | None = None) -> float:
    start = time.perf_counter()
    completed = subprocess.run(argv, cwd=cwd, env={**os.environ, **IDENTITY, **(env or {})}, capture_output=True,
                               text=True, check=False)
    elapsed = time.perf_counter() - start
    if completed.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed: {completed.stderr.strip()}")
    return elapsed


def ours(app: Path, url: str, tag: str) -> float:
    env = {"INVOKE_IMAGE_REPOSITORY": IMAGE_REPOSITORY, "INVOKE_MANIFESTS_PATH": "apps"}
    return timed([sys.executable, "-m", "invoke", "--search-root", str(PROJECT_ROOT), "bump", "--mode", "direct",
                  "--url", url, "--tag", tag, "--result-file", str(app / "bump.json")], cwd=app, env=env)


def original(work: Path, url: str, tag: str) -> float:
    """Full clone, yq rewrite, commit, push: the steps the original pipeline's job ran, as one shell script."""
    script = (
        "set -e\n"
        f'rm -rf "{work}/clone"\n'
        f'git clone --quiet "{url}" "{work}/clone"\n'
        f'cd "{work}/clone"\n'
        f"yq -y -i '.spec.template.spec.containers[0].image = \"{IMAGE_REPOSITORY}:{tag}\"' {MANIFEST_PATH}\n"
        f'git commit --quiet -am "Set image to {tag}"\n'
        "git push --quiet origin HEAD:main\n"
    )
    return timed(["sh", "-c", script], cwd=work)


def clone_only(work: Path, url: str, shallow: bool) -> tuple[float, int]:
    """Time one clone of main, shallow or full, and return (seconds, bytes under .git)."""
    target = work / ("shallow" if shallow else "full")
    subprocess.run(["rm", "-rf", str(target)], check=True)
    options = ["--depth=1", "--single-branch", "--branch=main"] if shallow else []
    elapsed = timed(["git", "clone", "--quiet", *options, url, str(target)], cwd=work)
    size = sum(file.stat().st_size for file in (target / ".git").rglob("*") if file.is_file())
    return elapsed, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="bumps per way (default: 7)")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-bump-") as folder:
        root = Path(folder)
        commits = make_application_repository(root / "app", 3 * arguments.rounds + 2)
        deployed = f"{IMAGE_REPOSITORY}:{commits[0][:8]}"
        make_manifests_repository(root / "short.git", 10, deployed)
        make_manifests_repository(root / "long.git", 10_000, deployed)
        make_manifests_repository(root / "long-original.git", 10_000, deployed)
        (root / "original").mkdir()

        times = {"ours, 10 commits": [], "ours, 10,000 commits": [], "original, 10,000 commits": []}
        for round_number in range(arguments.rounds):
            tag = commits[round_number + 1][:8]
            ways = [
                ("ours, 10 commits", lambda: ours(root / "app", (root / "short.git").as_uri(), tag)),
                ("ours, 10,000 commits", lambda: ours(root / "app", (root / "long.git").as_uri(), tag)),
                ("original, 10,000 commits",
                 lambda: original(root / "original", (root / "long-original.git").as_uri(), tag)),
            ]
            # Rotate the order each round, so no way always runs first on a cold cache.
            shift = round_number % len(ways)
            for name, run in ways[shift:] + ways[:shift]:
                times[name].append(run())

        clones = {"depth 1": [], "full": []}
        for round_number in range(arguments.rounds):
            for shallow in (round_number % 2 == 0, round_number % 2 == 1):
                clones["depth 1" if shallow else "full"].append(
                    clone_only(root / "original", (root / "long.git").as_uri(), shallow))

    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"rounds: {arguments.rounds}; wall-clock seconds per bump (median, min, max)")
    for name, values in times.items():
        print(f"  {name:26} {medians[name]:.3f}  {min(values):.3f}  {max(values):.3f}")
    print(f"ours, 10,000 / 10 commits:        {medians['ours, 10,000 commits'] / medians['ours, 10 commits']:.2f}")
    print(f"original / ours, 10,000 commits: {medians['original, 10,000 commits'] / medians['ours, 10,000 commits']:.2f}")
    print("clone step alone on the 10,000-commit repository (median seconds, size of .git):")
    for name, values in clones.items():
        print(f"  {name:8} {statistics.median(v[0] for v in values):.3f}  {values[-1][1] / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
