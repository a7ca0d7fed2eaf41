"""Start and stop the local endpoint from Python (tests, benchmarks) or the shell.

    python tests/local_iot/launcher.py start --port 5123 --pidfile .local_iot.pid
    python tests/local_iot/launcher.py stop --pidfile .local_iot.pid

Both wait: ``start`` returns once the endpoint answers its health check.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Iterator

SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "server.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(log_path: str | None, lines: int = 5) -> str:
    """The last lines of the endpoint's log (why it refused to start), for the error message."""
    if not log_path or not os.path.exists(log_path):
        return ""
    with open(log_path, errors="replace") as log:
        tail = log.read().splitlines()[-lines:]
    return ":\n" + "\n".join(tail) if tail else ""


def wait_healthy(
    url: str, timeout: float = 30.0, process: subprocess.Popen | None = None, log_path: str | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"local endpoint exited early with code {process.returncode}{_log_tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{url}/_local/health", timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"local endpoint at {url} did not answer within {timeout}s")


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def spawn(port: int, extra_args: list[str] | None = None, log_path: str | None = None) -> subprocess.Popen:
    # Another server on the port would answer the health check in our place.
    if port_in_use(port):
        raise RuntimeError(f"port {port} is already in use: stop what listens there or choose another port")
    with open(log_path or os.devnull, "ab") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, SERVER, "--port", str(port), *(extra_args or [])],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_healthy(f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    return process


@contextlib.contextmanager
def running_endpoint(
    port: int | None = None, extra_args: list[str] | None = None, log_path: str | None = None
) -> Iterator[str]:
    """Yield the URL of a fresh endpoint, stopped on exit."""
    port = port or free_port()
    process = spawn(port, extra_args, log_path)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--port", type=int, default=5123)
    parser.add_argument("--pidfile", default=".local_iot.pid")
    parser.add_argument("--log", default=".local_iot.log")
    args, extra = parser.parse_known_args()
    if args.action == "start":
        process = spawn(args.port, extra, args.log)
        with open(args.pidfile, "w") as handle:
            handle.write(str(process.pid))
        print(f"local AWS IoT endpoint: http://127.0.0.1:{args.port} (pid {process.pid}, log {args.log})")
        return
    try:
        with open(args.pidfile) as handle:
            pid = int(handle.read().strip())
    except FileNotFoundError:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    os.remove(args.pidfile)


if __name__ == "__main__":
    main()
