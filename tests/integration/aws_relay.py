"""A recording relay in front of AWS, for `make test-aws` (scripts/test_aws.py).

The integration targets talk to one URL (``local_iot_endpoint``) with dummy credentials, and read back the IoT
operations they caused (``GET /_local/calls``) to prove that a second run makes no mutating call. Against AWS the
relay stands at that URL: it records each IoT operation, signs the request again with the user's own credentials
(SigV4, for the run's region) and forwards it to the service's real endpoint, so the very same targets run
unchanged. Everything else under ``/_local/`` or ``/moto-api/`` (fault injection, simulated device connections, a
reset of the whole account) only the local endpoint can do: the relay answers 501 and the runner skips the
targets that need it (scripts/test_aws.py names them and why).

Only the signature is changed; the request's method, path, query and body go to AWS as the client sent them.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import botocore.session
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.httpsession import URLLib3Session

# Headers botocore computes again when it signs, or that belong to the hop between client and relay.
_DROPPED_REQUEST_HEADERS = {
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
    "host",
    "content-length",
    "expect",
    "connection",
    "accept-encoding",
}
_DROPPED_RESPONSE_HEADERS = {"transfer-encoding", "connection", "content-length", "keep-alive"}
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")


@lru_cache(maxsize=None)
def _iot_routes() -> tuple[tuple[str, re.Pattern[str], dict[str, str], str], ...]:
    """(method, path pattern, literal query items, operation) for every IoT operation, most specific first."""
    model = botocore.session.get_session().get_service_model("iot")
    routes = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        path, query = http["requestUri"].split("?", 1) if "?" in http["requestUri"] else (http["requestUri"], "")
        pattern = ""
        for part in re.split(r"(\{[^}]+\})", path):
            if part.startswith("{"):
                pattern += "(.+)" if part.endswith("+}") else "([^/]+)"
            else:
                pattern += re.escape(part)
        literals = dict(item.split("=", 1) for item in query.split("&") if "=" in item and "{" not in item)
        specificity = (len(re.sub(r"\{[^}]+\}", "", path)), len(literals))
        routes.append((specificity, (http["method"], re.compile(f"^{pattern}/?$"), literals, name)))
    # More literal text first: "/things/x/principals" is ListThingPrincipals, not a thing named "x/principals".
    routes.sort(key=lambda route: route[0], reverse=True)
    return tuple(route for specificity, route in routes)


def iot_operation(method: str, path: str, query: str) -> str:
    """The IoT operation a REST request is, by the service model's request URIs ("" when none matches)."""
    params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    path = urllib.parse.unquote(path)
    for route_method, pattern, literals, name in _iot_routes():
        if route_method == method and pattern.match(path) and all(params.get(k) == v for k, v in literals.items()):
            return name
    return ""


class CallLog:
    """The IoT operations relayed since the last reset, in order (the local endpoint's /_local/calls)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[str] = []

    def record(self, operation: str) -> None:
        with self._lock:
            self._calls.append(operation)

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self._calls)

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()


class Relay:
    """Re-signs and forwards requests; ``upstream(service, region)`` gives the base URL to forward to."""

    def __init__(
        self,
        region: str,
        upstream: Callable[[str, str], str] | None = None,
        session: botocore.session.Session | None = None,
    ) -> None:
        self.region = region
        self.session = session or botocore.session.get_session()
        self.upstream = upstream or self._aws_endpoint
        self.calls = CallLog()
        self.http = URLLib3Session(verify=True, max_pool_connections=50)
        self._endpoints: dict[str, str] = {}

    def _aws_endpoint(self, service: str, region: str) -> str:
        """The service's regional endpoint, as botocore resolves it for the user's configuration."""
        if service not in self._endpoints:
            self._endpoints[service] = self.session.create_client(service, region_name=region).meta.endpoint_url
        return self._endpoints[service]

    def forward(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, list, bytes]:
        scope = _CREDENTIAL_SCOPE.search(headers.get("authorization", ""))
        if not scope:
            return _error(400, "MissingAuthenticationToken", "the relay forwards SigV4-signed AWS requests only")
        service = scope.group(2)
        # Every client of the run goes to the run's region, whatever region it signed for (IAM is global).
        region = "us-east-1" if service == "iam" else self.region
        path, query = raw_path.split("?", 1) if "?" in raw_path else (raw_path, "")
        if service == "iot":
            self.calls.record(iot_operation(method, path, query))
        url = self.upstream(service, region).rstrip("/") + raw_path
        request = AWSRequest(
            method=method,
            url=url,
            data=body,
            headers={k: v for k, v in headers.items() if k.lower() not in _DROPPED_REQUEST_HEADERS},
        )
        credentials = self.session.get_credentials()
        if credentials is None:
            return _error(403, "NoCredentials", "no AWS credentials found for the relay to sign with")
        signer = S3SigV4Auth if service == "s3" else SigV4Auth
        signer(credentials.get_frozen_credentials(), service, region).add_auth(request)
        response = self.http.send(request.prepare())
        out_headers = [(k, v) for k, v in response.headers.items() if k.lower() not in _DROPPED_RESPONSE_HEADERS]
        return response.status_code, out_headers, response.content


def _error(status: int, code: str, message: str) -> tuple[int, list, bytes]:
    body = json.dumps({"__type": code, "message": message}).encode()
    return status, [("Content-Type", "application/json"), ("x-amzn-ErrorType", code)], body


def control(relay: Relay, method: str, path: str) -> tuple[int, list, bytes] | None:
    """The control paths: /_local/calls and /_local/health as the local endpoint serves them, the rest 501."""
    if path == "/_local/calls":
        if method == "DELETE":
            relay.calls.reset()
        payload = {"calls": relay.calls.snapshot()}
    elif path == "/_local/health":
        payload = {"status": "ok", "relay": True}
    elif path.startswith(("/_local/", "/moto-api/")):
        payload = {"error": "NotOnAWS", "message": f"{path} is served by the local endpoint only, not by AWS"}
        body = json.dumps(payload).encode()
        return 501, [("Content-Type", "application/json")], body
    else:
        return None
    return 200, [("Content-Type", "application/json")], json.dumps(payload).encode()


def _handler(relay: Relay) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.partition("?")[0]
            answer = control(relay, self.command, path)
            if answer is None:
                try:
                    answer = relay.forward(
                        self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                    )
                except Exception as error:  # pylint: disable=broad-exception-caught  # a 502 naming it
                    answer = _error(502, "RelayError", f"{type(error).__name__}: {error}")
            status, headers, payload = answer
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _any

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


class RunningRelay:
    """The relay served on 127.0.0.1 in a thread: ``with RunningRelay(region) as url: ...``."""

    def __init__(self, region: str, upstream_url: str | None = None, port: int = 0) -> None:
        if upstream_url:
            # A stand-in for AWS (tests): every service at one URL, signed with the stand-in's dummy keys.
            session = botocore.session.get_session()
            session.set_credentials("testing", "testing")
            self.relay = Relay(region, lambda service, region: upstream_url, session)
        else:
            self.relay = Relay(region)
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self.relay))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> str:
        self.thread.start()
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
