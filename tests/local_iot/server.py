"""The local AWS IoT endpoint: moto's server plus our fidelity fixes.

Run it with ``python tests/local_iot/server.py --port 5123`` (``--help`` lists the
options). Every test, the demo and the benchmarks use this one command. It imports nothing from ``plugins/``: the
fixes here are a reading of the AWS documentation independent of the collection's.

Besides the AWS APIs it serves a few control paths for tests:

* ``GET /_local/health``: 200 once the server is up and its self-check passed (503 before).
* ``GET /_local/calls``: the IoT operations called since the last reset, in order.
* ``DELETE /_local/calls``: forget the recorded calls.
* ``POST /moto-api/reset``: moto's own reset of all state.
* ``POST /_local/jitp/connect``, ``GET /_local/jitp/events``: a device's first connection (JITP/JITR), see JITP.md.
* ``GET|POST|DELETE /_local/traffic``: quotas, latency and faults, settings and counters, see TRAFFIC.md.
* ``GET|DELETE /_local/dataplane``: the MQTT/TLS listener's host, port, CA file and connection events, see README.md.
* ``POST /_local/registry/seed``: many things in one request (tests), see registry_index.py.
* ``GET|POST|DELETE /_local/provisioning-claims``: the lifetime of CreateProvisioningClaim's claims, and the claims.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import signal
import sys
import threading
import time
import urllib.parse
from typing import Any, Callable, Iterable, NoReturn

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import authorization_api
import dataplane
import fidelity
import iam_managed
import jitp
import provisioning_api
import provisioning_claims
import registration_tasks
import registry_index
import selfcheck
import tagging_api
import traffic
from fidelity_core import PatchShapeError
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server


class CallRecorder:
    """Remembers which IoT operations were called, so tests can assert on them; and, like CloudTrail's management
    events, each call that may change state with its time, request parameters and status, in the order the state
    changed (``effects``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[str] = []
        self._effects: list[dict[str, Any]] = []

    def record(self, operation: str) -> None:
        with self._lock:
            self._calls.append(operation)

    def effect(self, operation: str, response: Any, answer: Any) -> None:
        if operation.startswith(("List", "Describe", "Get")):
            return
        status = answer[0] if isinstance(answer, tuple) else 200
        body = answer[2] if isinstance(answer, tuple) and len(answer) > 2 else answer
        entry: dict[str, Any] = {"operation": operation, "time": time.time(), "status": int(status or 0)}
        url = urllib.parse.urlparse(response.uri)
        entry["path"] = urllib.parse.unquote(url.path)
        entry["query"] = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items() if v}
        principal = response.headers.get("x-amzn-principal") or response.headers.get("x-amzn-iot-principal")
        if principal:
            entry["principal"] = principal
        with contextlib.suppress(Exception):
            request = json.loads(response.body or "{}")
            entry["request"] = {
                k: v for k, v in request.items() if isinstance(v, (str, bool, int)) and len(str(v)) < 300
            }
        with contextlib.suppress(Exception):
            answered = json.loads(body) if isinstance(body, (str, bytes)) else {}
            entry["answer"] = {k: answered[k] for k in ("certificateId", "certificateArn") if k in answered}
        with self._lock:
            self._effects.append(entry)

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self._calls)

    def effects(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._effects)

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._effects.clear()


RECORDER = CallRecorder()
READY = threading.Event()  # set once the self-check passed: until then the health check answers 503


def _json_response(start_response: Callable[..., Any], status: str, payload: Any) -> Iterable[bytes]:
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _health(_method: str) -> tuple[str, Any]:
    if not READY.is_set():
        return "503 Service Unavailable", {"status": "starting"}
    return "200 OK", {"status": "ok"}


def _calls(method: str) -> tuple[str, Any]:
    if method == "DELETE":
        RECORDER.reset()
        return "200 OK", {"calls": []}
    return "200 OK", {"calls": RECORDER.snapshot(), "effects": RECORDER.effects()}


# Control paths: path -> handler(method) -> (status, JSON payload). New features register theirs here.
# A handler with ``takes_environ = True`` is called as handler(method, environ) (to read a body or a query).
CONTROL_ROUTES: dict[str, Callable[..., tuple[str, Any]]] = {
    "/_local/health": _health,
    "/_local/calls": _calls,
    **jitp.CONTROL_ROUTES,  # /_local/jitp/connect, /_local/jitp/events
    **traffic.CONTROL_ROUTES,  # /_local/traffic
    **dataplane.CONTROL_ROUTES,  # /_local/dataplane
    **registry_index.CONTROL_ROUTES,  # /_local/registry/seed
    **provisioning_claims.CONTROL_ROUTES,  # /_local/provisioning-claims
}


class LocalIoTApp:
    """WSGI wrapper: control paths first, everything else to moto."""

    def __init__(self, moto_app: Any) -> None:
        self.moto_app = moto_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        handler = CONTROL_ROUTES.get(environ.get("PATH_INFO", ""))
        if handler is not None:
            method = environ.get("REQUEST_METHOD", "GET")
            if getattr(handler, "takes_environ", False):
                status, payload = handler(method, environ)
            else:
                status, payload = handler(method)
            return _json_response(start_response, status, payload)
        return self.moto_app(environ, start_response)


def build_parser() -> argparse.ArgumentParser:
    """The command line; each feature adds its own argument group (fidelity now; quotas, latency, faults later)."""
    parser = argparse.ArgumentParser(description="Local AWS IoT endpoint (moto plus fidelity fixes)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("LOCAL_IOT_PORT", "5123")))
    defaults = fidelity.Options()
    group = parser.add_argument_group("fidelity", "AWS behaviours that depend on time or on undocumented defaults")
    group.add_argument(
        "--detach-consistency-delay",
        type=float,
        default=defaults.detach_consistency_delay,
        metavar="SECONDS",
        help="after DetachThingPrincipal, DeleteThing still sees the principal for this long (default: %(default)s)",
    )
    group.add_argument(
        "--thing-type-delete-wait",
        type=float,
        default=defaults.thing_type_delete_wait,
        metavar="SECONDS",
        help="a thing type can be deleted this long after its deprecation (default: %(default)s, as AWS)",
    )
    group.add_argument(
        "--default-page-size",
        type=int,
        default=defaults.default_page_size,
        metavar="N",
        help="items per page of a list call that sends no maxResults/pageSize (default: %(default)s)",
    )
    traffic.add_argument_group(parser)  # --quotas, --quota-scale, --latency-ms, --fault-rate, ...
    dataplane.add_argument_group(parser)  # --mqtt-port, --no-mqtt
    provisioning_claims.add_argument_group(parser)  # --provisioning-claim-lifetime
    return parser


def fidelity_options(args: argparse.Namespace) -> fidelity.Options:
    return fidelity.Options(
        detach_consistency_delay=args.detach_consistency_delay,
        thing_type_delete_wait=args.thing_type_delete_wait,
        default_page_size=args.default_page_size,
    )


def build_app(args: argparse.Namespace | None = None) -> LocalIoTApp:
    args = args or build_parser().parse_args([])
    fidelity.install(RECORDER.record, fidelity_options(args), RECORDER.effect)
    iam_managed.install()  # AWS managed IAM policies built once, not after every reset
    provisioning_api.install()
    provisioning_claims.install(args)  # CreateProvisioningClaim
    jitp.install()
    tagging_api.install()  # after jitp: its RegisterCACertificate wrapper goes around jitp's
    registration_tasks.install()
    registry_index.install()  # after tagging_api: fleet indexing, SearchIndex, dynamic and billing groups
    authorization_api.install()  # TestAuthorization, by the data plane's policy evaluator
    traffic.install(traffic.settings_from_args(args), RECORDER.record)  # after fidelity: its hook runs first
    return LocalIoTApp(DomainDispatcherApplication(create_backend_app))


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)

    # moto builds ARNs and URLs from these; keep them deterministic.
    os.environ.setdefault("MOTO_PORT", str(args.port))
    # AWS has its managed policies (AWSIoTThingsRegistration, ...); attaching one must work as there.
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    try:
        app = build_app(args)
    except PatchShapeError as error:
        refuse(str(error))
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)

    def _stop(_signum: int, _frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    serving = threading.Thread(target=server.serve_forever, name="serve", daemon=True)
    serving.start()
    try:
        self_check(f"http://{args.host}:{args.port}", args)
    except selfcheck.SelfCheckFailed as error:
        server.shutdown()
        refuse(str(error))
    try:
        listener = dataplane.start(args)
    except (RuntimeError, OSError) as error:
        server.shutdown()
        refuse(str(error))
    # What start-up built (moto's models, the managed policies' prototypes) lives until exit: keep the garbage
    # collector from walking it again after every reset.
    gc.freeze()
    READY.set()
    print(f"local AWS IoT endpoint listening on http://{args.host}:{args.port}", flush=True)
    if listener is not None:
        print(f"MQTT over mutual TLS on {args.host}:{listener.port} (CA file {listener.ca_file})", flush=True)
    serving.join()
    if listener is not None:
        listener.stop()


def refuse(reason: str) -> NoReturn:
    """Exit 3 with the reason: a fix does not fit the installed moto (see selfcheck.py)."""
    print(f"local AWS IoT endpoint refuses to start: {reason}", file=sys.stderr, flush=True)
    sys.exit(3)


def self_check(url: str, args: argparse.Namespace) -> None:
    """selfcheck.run with AWS's behaviour unaltered (no delays, quotas or faults), then forget its calls."""
    fidelity.configure(fidelity.Options())
    startup = traffic.TRAFFIC.startup
    traffic.TRAFFIC.startup = traffic.Settings()
    traffic.TRAFFIC.reset()
    try:
        selfcheck.run(url)
    finally:
        fidelity.configure(fidelity_options(args))
        traffic.TRAFFIC.startup = startup
        traffic.TRAFFIC.reset()
        RECORDER.reset()


if __name__ == "__main__":
    main()
