"""Measure `inv bump --mode direct` against manifests repositories with short and long histories.

Three ways run side by side, interleaved round by round so that noise on a
shared machine hits them alike:

- ours on a bare repository with 10 commits on main;
- ours on a bare repository with 10,000 commits on main;
- the original pipeline's way on the 10,000-commit repository: a full
  `git clone`, a `yq -y -i` rewrite of the image, `git commit -a`, `git push`.

By default every way clones through a file:// URL, so git copies objects as
it would over a network instead of hard-linking them. With --network the
repositories are served by `git daemon` (git://, pushes enabled) in one
network namespace, and every client runs in a second one, joined by a veth
pair whose two ends each send through a `tbf` qdisc at --rate. The link adds
no delay, because this kernel has no netem qdisc, so the round-trip time
stays that of a veth pair. The figures are wall-clock seconds per bump, including the
`inv` process start. Run from the project root (--network needs root and
`ip`, `tc` and `git daemon`):

    python bench/bump_history.py --rounds 7
    python bench/bump_history.py --rounds 7 --network --rate 50mbit
"""

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
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


def timed(argv: list[str], cwd: Path, env: dict | None = None, client: Sequence[str] = ()) -> float:
    """Run `client + argv` and return its wall-clock seconds. Under --network `client` is `ip netns exec NAME`."""
    start = time.perf_counter()
    completed = subprocess.run([*client, *argv], cwd=cwd, env={**os.environ, **IDENTITY, **(env or {})},
                               capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if completed.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed: {completed.stderr.strip()}")
    return elapsed


def ours(app: Path, url: str, tag: str, client: Sequence[str]) -> float:
    env = {"INVOKE_IMAGE_REPOSITORY": IMAGE_REPOSITORY, "INVOKE_MANIFESTS_PATH": "apps"}
    return timed([sys.executable, "-m", "invoke", "--search-root", str(PROJECT_ROOT), "bump", "--mode", "direct",
                  "--url", url, "--tag", tag, "--result-file", str(app / "bump.json")], cwd=app, env=env,
                 client=client)


def original(work: Path, url: str, tag: str, client: Sequence[str]) -> float:
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
    return timed(["sh", "-c", script], cwd=work, client=client)


def clone_only(work: Path, url: str, shallow: bool, client: Sequence[str]) -> tuple[float, int]:
    """Time one clone of main, shallow or full, and return (seconds, bytes under .git)."""
    target = work / ("shallow" if shallow else "full")
    subprocess.run(["rm", "-rf", str(target)], check=True)
    options = ["--depth=1", "--single-branch", "--branch=main"] if shallow else []
    elapsed = timed(["git", "clone", "--quiet", *options, url, str(target)], cwd=work, client=client)
    size = sum(file.stat().st_size for file in (target / ".git").rglob("*") if file.is_file())
    return elapsed, size


# --network: a private /24 that exists only inside the two namespaces this
# script creates, so no packet of the benchmark leaves them.
SERVER_ADDRESS = "10.213.0.1"
CLIENT_ADDRESS = "10.213.0.2"
DAEMON_PORT = 9418
LINK_PROBE_BYTES = 8 * 1024 * 1024


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def wait_for_daemon(client: Sequence[str], timeout: float = 10.0) -> None:
    """Connect from the client namespace to git daemon's port until it accepts, or exit after `timeout` seconds."""
    probe = ("import socket, sys, time\n"
             f"deadline = time.monotonic() + {timeout}\n"
             "while True:\n"
             "    try:\n"
             f"        socket.create_connection(('{SERVER_ADDRESS}', {DAEMON_PORT}), timeout=1).close()\n"
             "        break\n"
             "    except OSError as error:\n"
             "        if time.monotonic() > deadline:\n"
             "            sys.exit(f'git daemon at {SERVER_ADDRESS}:{DAEMON_PORT} not reachable: {error}')\n"
             "        time.sleep(0.1)\n")
    completed = subprocess.run([*client, sys.executable, "-c", probe], capture_output=True, text=True)
    if completed.returncode != 0:
        sys.exit(completed.stderr.strip() or f"connection probe failed with status {completed.returncode}")


def measure_link(server: Sequence[str], client: Sequence[str]) -> float:
    """Send LINK_PROBE_BYTES from the server namespace to the client one over TCP and return megabits per second."""
    receiver = ("import socket, time\n"
                f"listener = socket.create_server(('{CLIENT_ADDRESS}', {DAEMON_PORT + 1}))\n"
                "listener.settimeout(30)\n"
                "print('ready', flush=True)\n"
                "connection, _ = listener.accept()\n"
                "connection.settimeout(30)\n"
                "received, start = 0, None\n"
                "while chunk := connection.recv(1 << 16):\n"
                "    start = start or time.perf_counter()\n"
                "    received += len(chunk)\n"
                "print(received, time.perf_counter() - start)\n")
    sender = ("import socket\n"
              f"with socket.create_connection(('{CLIENT_ADDRESS}', {DAEMON_PORT + 1}), timeout=30) as connection:\n"
              f"    connection.sendall(bytes({LINK_PROBE_BYTES}))\n")
    with subprocess.Popen([*client, sys.executable, "-c", receiver], stdout=subprocess.PIPE, text=True) as listening:
        try:
            if listening.stdout.readline().strip() != "ready":
                sys.exit("link probe: the receiver in the client namespace did not start")
            subprocess.run([*server, sys.executable, "-c", sender], check=True, timeout=60)
            received, seconds = listening.communicate(timeout=60)[0].split()
        finally:
            if listening.poll() is None:
                listening.kill()
    return int(received) * 8 / float(seconds) / 1e6


@contextlib.contextmanager
def served_over_veth(base_path: Path, rate: str, burst: str, latency: str) -> Iterator[tuple[list[str], str]]:
    """Serve `base_path` with git daemon across a rate-limited veth pair; yield (client prefix, base URL).

    Creates a server and a client network namespace, one veth pair between
    them with a tbf qdisc on each end, and git daemon in the server
    namespace. On exit, normal or not, it stops git daemon and deletes both
    namespaces, which also deletes the veth pair.
    """
    suffix = str(os.getpid())
    server_namespace, client_namespace = f"bench-bump-server-{suffix}", f"bench-bump-client-{suffix}"
    server_link, client_link = f"bbs{suffix}", f"bbc{suffix}"
    server = ["ip", "netns", "exec", server_namespace]
    client = ["ip", "netns", "exec", client_namespace]
    created = []
    daemon = None
    try:
        for namespace in (server_namespace, client_namespace):
            ip("netns", "add", namespace)
            created.append(namespace)
        ip("link", "add", server_link, "type", "veth", "peer", "name", client_link)
        ip("link", "set", server_link, "netns", server_namespace)
        ip("link", "set", client_link, "netns", client_namespace)
        for prefix, namespace, link, address in ((server, server_namespace, server_link, SERVER_ADDRESS),
                                                 (client, client_namespace, client_link, CLIENT_ADDRESS)):
            ip("-n", namespace, "addr", "add", f"{address}/24", "dev", link)
            ip("-n", namespace, "link", "set", link, "up")
            ip("-n", namespace, "link", "set", "lo", "up")
            # tbf shapes what leaves each end: server to client carries the
            # clone, client to server the push.
            subprocess.run([*prefix, "tc", "qdisc", "add", "dev", link, "root", "tbf", "rate", rate, "burst", burst,
                            "latency", latency], check=True, capture_output=True, text=True)
        daemon = subprocess.Popen(
            [*server, "git", "daemon", "--export-all", "--enable=receive-pack", "--reuseaddr", "--timeout=60",
             f"--base-path={base_path}", f"--listen={SERVER_ADDRESS}", f"--port={DAEMON_PORT}", str(base_path)],
            start_new_session=True, stderr=subprocess.DEVNULL)
        wait_for_daemon(client)
        print(f"link: tbf rate {rate} burst {burst} latency {latency} on both veth ends, no added delay; "
              f"measured {measure_link(server, client):.1f} Mbit/s server to client")
        yield client, f"git://{SERVER_ADDRESS}:{DAEMON_PORT}"
    finally:
        if daemon is not None:
            # `ip netns exec` replaces itself with git daemon, which leads its
            # own process group (start_new_session) with its per-connection children.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()
        for namespace in created:
            subprocess.run(["ip", "netns", "delete", namespace], check=False, capture_output=True)
        # Deleting the namespaces deletes the veth pair, unless a failure left
        # it in this namespace. Otherwise this command fails harmlessly.
        subprocess.run(["ip", "link", "delete", server_link], check=False, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="bumps per way (default: 7)")
    parser.add_argument("--network", action="store_true",
                        help="serve the repositories with git daemon over a rate-limited veth pair (default: file://)")
    parser.add_argument("--rate", default="50mbit", help="tbf rate on each veth end, in tc units (default: 50mbit)")
    parser.add_argument("--burst", default="32kbit", help="tbf bucket size, in tc units (default: 32kbit)")
    parser.add_argument("--latency", default="50ms",
                        help="maximum time a packet waits in the tbf queue before it is dropped, "
                             "not an added delay (default: 50ms)")
    arguments = parser.parse_args()
    # Turn SIGTERM into SystemExit, so that the finally blocks stop git
    # daemon and delete the namespaces as they do on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    with tempfile.TemporaryDirectory(prefix="bench-bump-") as folder, contextlib.ExitStack() as stack:
        root = Path(folder)
        commits = make_application_repository(root / "app", 3 * arguments.rounds + 2)
        deployed = f"{IMAGE_REPOSITORY}:{commits[0][:8]}"
        make_manifests_repository(root / "short.git", 10, deployed)
        make_manifests_repository(root / "long.git", 10_000, deployed)
        make_manifests_repository(root / "long-original.git", 10_000, deployed)
        (root / "original").mkdir()
        if arguments.network:
            client, base_url = stack.enter_context(
                served_over_veth(root, arguments.rate, arguments.burst, arguments.latency))
        else:
            client, base_url = [], root.as_uri()

        times = {"ours, 10 commits": [], "ours, 10,000 commits": [], "original, 10,000 commits": []}
        for round_number in range(arguments.rounds):
            tag = commits[round_number + 1][:8]
            ways = [
                ("ours, 10 commits", lambda: ours(root / "app", f"{base_url}/short.git", tag, client)),
                ("ours, 10,000 commits", lambda: ours(root / "app", f"{base_url}/long.git", tag, client)),
                ("original, 10,000 commits",
                 lambda: original(root / "original", f"{base_url}/long-original.git", tag, client)),
            ]
            # Rotate the order each round, so no way always runs first on a cold cache.
            shift = round_number % len(ways)
            for name, run in ways[shift:] + ways[:shift]:
                times[name].append(run())

        clones = {"depth 1": [], "full": []}
        for round_number in range(arguments.rounds):
            for shallow in (round_number % 2 == 0, round_number % 2 == 1):
                clones["depth 1" if shallow else "full"].append(
                    clone_only(root / "original", f"{base_url}/long.git", shallow, client))

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
