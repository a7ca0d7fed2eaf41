"""Traffic switches of the local AWS IoT endpoint: AWS's default TPS quotas, per-call latency, injected faults.

All off by default. They are set on the command line (``server.py --quotas aws-default --latency-ms 20 ...``)
and at run time through the control path ``/_local/traffic`` (GET: settings and counters; POST a JSON object:
change some settings; DELETE: back to the command-line settings, counters cleared), so a benchmark can switch
them without a restart. TRAFFIC.md beside this file documents every switch, the quota table and its sources.

Only IoT operations are affected, identified the way the call recorder identifies them (the operation moto's
router finds for the request, in ``IoTResponse.call_action``); S3, IAM and the control paths pass through.
Per IoT call, in this order and before moto (or the fidelity checks) run it:

1. latency: the calling thread sleeps (the server is threaded, so calls are not serialised);
2. quota: the operation's token bucket must hold a token, else ThrottlingException (HTTP 400, "Rate exceeded");
3. fault: with probability ``fault_rate``, one of ``fault_kinds``: ``throttle`` (ThrottlingException),
   ``500`` (InternalFailureException), ``503`` (ServiceUnavailableException), ``drop`` (the connection is
   closed with no response), all before the call runs; or ``drop-after``: the call runs, then the connection
   is closed without its response (the change happened, the client cannot know).

Nothing here imports from the collection's ``plugins/``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import random
import socket
import threading
import time
import uuid
from typing import Any, Callable

from fidelity_core import _wrap
from moto.iot.responses import IoTResponse

QUOTA_PROFILES = ("off", "aws-default")
FAULT_KINDS = ("throttle", "500", "503", "drop", "drop-after")
DEFAULT_FAULT_KINDS = ("throttle", "500", "503", "drop")

# AWS IoT Core default TPS per account and region (AWS_IOT_FACTS.md, "Default TPS quotas", which reads the
# AWS IoT Core endpoints-and-quotas page; the live values are in Service Quotas, ServiceCode iotcore).
# Burst = rate: AWS does not publish burst sizes for these APIs.
AWS_DEFAULT_TPS: dict[str, float] = {
    "CreateThing": 100,
    "UpdateThing": 100,
    "DeleteThing": 100,
    "DescribeThing": 350,
    "ListThings": 10,
    "ListThingPrincipals": 20,
    "AttachThingPrincipal": 100,
    "DetachThingPrincipal": 100,
    "AddThingToThingGroup": 100,
    "RemoveThingFromThingGroup": 100,
    "ListThingGroupsForThing": 100,
    "CreateThingGroup": 25,
    "CreateThingType": 15,
    "DescribeThingGroup": 100,
    "DescribeThingType": 100,
    "CreateKeysAndCertificate": 10,
    "CreateCertificateFromCsr": 15,
    "RegisterCertificate": 10,
    "RegisterCertificateWithoutCA": 10,
    "RegisterCACertificate": 10,
    "UpdateCertificate": 10,
    "DeleteCertificate": 10,
    "DescribeCertificate": 10,
    "AttachPolicy": 15,
    "DetachPolicy": 15,
    "CreatePolicy": 10,
    "CreatePolicyVersion": 10,
    "SetDefaultPolicyVersion": 10,
    "GetPolicy": 10,
    "RegisterThing": 10,
    "StartThingRegistrationTask": 10,
    "DescribeThingRegistrationTask": 10,
    "ListThingRegistrationTasks": 10,
    "StopThingRegistrationTask": 10,
    "ListThingRegistrationTaskReports": 10,
    "CreateProvisioningClaim": 10,
}
# Any IoT operation not in the table: a conservative rate (the lowest default in the table).
UNLISTED_TPS = 10.0
# The bucket a thing registration task draws from for each input line (registration_tasks.py): its own
# bucket, at RegisterThing's rate, so a bulk task and a client's RegisterThing calls do not starve each other.
TASK_LINE_BUCKET = "RegisterThing (thing registration task line)"
TASK_LINE_TPS_OF = "RegisterThing"


@dataclasses.dataclass
class Settings:
    """Everything the switches can change; the command line sets the startup values."""

    quotas: str = "off"  # "off" or "aws-default"
    quota_scale: float = 1.0  # multiplies every quota
    latency_ms: float = 0.0  # added to every IoT call
    latency_jitter_ms: float = 0.0  # uniform +-jitter around latency_ms (never below 0)
    fault_rate: float = 0.0  # fraction of IoT calls that fail
    fault_kinds: tuple[str, ...] = DEFAULT_FAULT_KINDS
    fault_seed: int | None = None  # None: unseeded
    fault_operations: tuple[str, ...] = ()  # only these IoT operations get faults (empty: every one)

    def to_json(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["fault_kinds"] = list(self.fault_kinds)
        values["fault_operations"] = list(self.fault_operations)
        return values


class SettingsError(ValueError):
    """A setting that cannot be applied; the message names it and the rule."""


def _number(name: str, value: Any, minimum: float, maximum: float | None = None, exclusive_min: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SettingsError(f"{name}: must be a number, got {value!r}")
    low_ok = value > minimum if exclusive_min else value >= minimum
    if not low_ok or (maximum is not None and value > maximum):
        low = f"> {minimum}" if exclusive_min else f">= {minimum}"
        high = f" and <= {maximum}" if maximum is not None else ""
        raise SettingsError(f"{name}: must be {low}{high}, got {value!r}")
    return float(value)


def parse_fault_kinds(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise SettingsError(f"fault_kinds: a list or comma-separated string of {', '.join(FAULT_KINDS)}")
    kinds = tuple(str(item).strip() for item in items if str(item).strip())
    unknown = [kind for kind in kinds if kind not in FAULT_KINDS]
    if unknown or not kinds:
        raise SettingsError(f"fault_kinds: each must be one of {', '.join(FAULT_KINDS)}, got {list(kinds)!r}")
    return tuple(dict.fromkeys(kinds))


def updated(settings: Settings, changes: dict[str, Any]) -> Settings:
    """A copy of ``settings`` with ``changes`` (JSON names = Settings fields) applied and checked."""
    if not isinstance(changes, dict):
        raise SettingsError("the body must be a JSON object of settings")
    fields = {field.name for field in dataclasses.fields(Settings)}
    unknown = sorted(set(changes) - fields - {"reset_counters"})
    if unknown:
        raise SettingsError(f"unknown settings {unknown}; known: {sorted(fields)} and reset_counters")
    result = dataclasses.replace(settings)
    for name, value in changes.items():
        if name == "quotas":
            value = "off" if value in (None, False) else value
            if value not in QUOTA_PROFILES:
                raise SettingsError(f"quotas: must be one of {', '.join(QUOTA_PROFILES)}, got {value!r}")
        elif name == "quota_scale":
            value = _number(name, value, 0.0, exclusive_min=True)
        elif name in ("latency_ms", "latency_jitter_ms"):
            value = _number(name, value, 0.0, 600000.0)
        elif name == "fault_rate":
            value = _number(name, value, 0.0, 1.0)
        elif name == "fault_kinds":
            value = parse_fault_kinds(value)
        elif name == "fault_operations":
            if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) and item for item in value):
                raise SettingsError(f"fault_operations: must be a list of IoT operation names, got {value!r}")
            value = tuple(value)
        elif name == "fault_seed":
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise SettingsError(f"fault_seed: must be an integer or null, got {value!r}")
        else:  # reset_counters: not a setting
            continue
        setattr(result, name, value)
    return result


class TokenBucket:
    """``rate`` tokens per second, refilled continuously, holding at most ``capacity``; starts full."""

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def try_take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def wait_time(self, now: float) -> float:
        """Seconds until a token is there (0 if one is)."""
        self._refill(now)
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate


def quota_tps(operation: str, settings: Settings) -> float | None:
    """The operation's TPS under ``settings`` (None when quotas are off)."""
    if settings.quotas != "aws-default":
        return None
    return AWS_DEFAULT_TPS.get(operation, UNLISTED_TPS) * settings.quota_scale


@dataclasses.dataclass
class Decision:
    """What happens to one call before its quota and fault checks."""

    delay: float = 0.0  # seconds to sleep first (the latency switch)


class Traffic:
    """Settings, token buckets, the fault dice and the counters, behind one lock."""

    def __init__(self, settings: Settings | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.startup = settings or Settings()
        self.settings = dataclasses.replace(self.startup)
        self._buckets: dict[str, TokenBucket] = {}
        self._random = random.Random(self.settings.fault_seed)  # the fault dice
        self._jitter = random.Random()  # latency jitter (kept apart so it does not shift the dice)
        self._counters: dict[str, dict[str, int]] = {}
        self._fault_kinds: dict[str, int] = {}

    # ----------------------------------------------------------------- configuration

    def configure(self, changes: dict[str, Any]) -> None:
        """Apply ``changes`` (raises SettingsError, leaving everything as it was)."""
        new = updated(self.settings, changes)
        with self._lock:
            old, self.settings = self.settings, new
            if (old.quotas, old.quota_scale) != (new.quotas, new.quota_scale):
                self._buckets.clear()  # new quotas start with full buckets
            if "fault_seed" in changes:
                self._random = random.Random(new.fault_seed)
            if changes.get("reset_counters"):
                self._counters.clear()
                self._fault_kinds.clear()

    def reset(self) -> None:
        """Back to the startup settings; buckets full, counters cleared, dice re-seeded."""
        with self._lock:
            self.settings = dataclasses.replace(self.startup)
            self._buckets.clear()
            self._random = random.Random(self.settings.fault_seed)
            self._counters.clear()
            self._fault_kinds.clear()

    def report(self) -> dict[str, Any]:
        with self._lock:
            settings = self.settings
            table = None
            if settings.quotas == "aws-default":
                table = {op: tps * settings.quota_scale for op, tps in sorted(AWS_DEFAULT_TPS.items())}
            return {
                "settings": settings.to_json(),
                "quota_tps": table,
                "unlisted_tps": UNLISTED_TPS * settings.quota_scale if table is not None else None,
                "counters": {op: dict(values) for op, values in sorted(self._counters.items())},
                "fault_kinds": dict(self._fault_kinds),
            }

    # ----------------------------------------------------------------- per call

    def _bucket(self, name: str, rate: float, now: float) -> TokenBucket:
        bucket = self._buckets.get(name)
        if bucket is None:
            # A scaled quota below 1 TPS still lets one call through now and then.
            bucket = self._buckets[name] = TokenBucket(rate, max(rate, 1.0), now)
        return bucket

    def _count(self, operation: str, key: str) -> None:
        counters = self._counters.setdefault(operation, {"calls": 0, "throttles": 0, "faults": 0})
        counters[key] += 1

    def decide(self, operation: str) -> Decision:
        """Count the call and draw its latency (the caller sleeps it, outside the lock)."""
        with self._lock:
            settings = self.settings
            self._count(operation, "calls")
            decision = Decision()
            if settings.latency_ms or settings.latency_jitter_ms:
                jitter = self._jitter.uniform(-settings.latency_jitter_ms, settings.latency_jitter_ms)
                decision.delay = max(0.0, settings.latency_ms + jitter) / 1000.0
        return decision

    def admit(self, operation: str) -> str:
        """After the delay: "pass", "quota" (throttled by the bucket) or the fault kind to inject."""
        with self._lock:
            settings = self.settings
            rate = quota_tps(operation, settings)
            if rate is not None and not self._bucket(operation, rate, self._clock()).try_take(self._clock()):
                self._count(operation, "throttles")
                return "quota"
            targeted = not settings.fault_operations or operation in settings.fault_operations
            if targeted and settings.fault_rate > 0 and self._random.random() < settings.fault_rate:
                kind = self._random.choice(settings.fault_kinds)
                self._count(operation, "faults")
                self._fault_kinds[kind] = self._fault_kinds.get(kind, 0) + 1
                return kind
            return "pass"

    def wait_for_token(self, bucket_name: str, rate_of: str, should_stop: Callable[[], bool]) -> bool:
        """Block until the named bucket (at ``rate_of``'s quota) gives a token; False if ``should_stop`` first.

        For work the endpoint does on its own (thing registration task lines). With quotas off: at once.
        """
        while True:
            with self._lock:
                rate = quota_tps(rate_of, self.settings)
                if rate is None:
                    return True
                bucket = self._bucket(bucket_name, rate, self._clock())
                if bucket.try_take(self._clock()):
                    return True
                wait = bucket.wait_time(self._clock())
            if should_stop():
                return False
            time.sleep(min(max(wait, 0.001), 0.05))


TRAFFIC = Traffic()

# --------------------------------------------------------------------------- the request hook

_ERRORS = {
    "quota": ("ThrottlingException", "Rate exceeded"),
    "throttle": ("ThrottlingException", "Rate exceeded"),
    "500": ("InternalFailureException", "An unexpected error has occurred. Please try again."),
    "503": ("ServiceUnavailableException", "The service is temporarily unavailable. Please try again."),
}
_STATUS = {"ThrottlingException": 400, "InternalFailureException": 500, "ServiceUnavailableException": 503}


def error_response(response: IoTResponse, outcome: str) -> Any:
    """(status, headers, body) of the AWS error for ``outcome``, shaped as AWS answers restJson errors.

    The code goes in the ``x-amzn-ErrorType`` header, the body is ``{"message": ...}``, the status is the one the
    botocore model gives the error shape (ThrottlingException 400, InternalFailureException 500,
    ServiceUnavailableException 503).
    """
    code, message = _ERRORS[outcome]
    status = _STATUS[code]
    headers = dict(response.response_headers)
    headers.update(
        {
            "status": str(status),
            "Content-Type": "application/json",
            "x-amzn-ErrorType": code,
            "x-amzn-RequestId": str(uuid.uuid4()),
            "x-local-iot-traffic": outcome,  # which switch answered (AWS sends no such header)
        }
    )
    return status, headers, json.dumps({"message": message})


def drop_connection(response: IoTResponse) -> None:
    """Close the client's connection so that no response reaches it (the server's write then fails quietly)."""
    sock = response.normalized_request.environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _dropped() -> Any:
    """What moto is handed for a call dropped before it ran; it never reaches the client."""
    return 500, {"status": "500"}, ""


_INSTALLED = False


def install(settings: Settings | None = None, record: Callable[[str], None] | None = None) -> None:
    """Hook every IoT call (idempotent; ``settings`` become the startup settings).

    Install after ``fidelity.install`` so this hook runs first: a throttled or faulted call never reaches
    validation or moto. ``record`` is the call recorder: calls answered here are recorded too (they were made).
    """
    global _INSTALLED
    if settings is not None:
        TRAFFIC.startup = dataclasses.replace(settings)
        TRAFFIC.reset()
    if _INSTALLED:
        return

    @_wrap(IoTResponse, "call_action")
    def call_action(original: Callable[..., Any], self: IoTResponse) -> Any:
        try:
            operation = self._get_action()
        except Exception:  # unroutable: moto answers it
            operation = None
        if not operation:
            return original(self)
        decision = TRAFFIC.decide(operation)
        if decision.delay:
            time.sleep(decision.delay)
        outcome = TRAFFIC.admit(operation)
        if outcome == "pass":
            return original(self)
        if outcome == "drop-after":
            result = original(self)  # the change is made; the answer is lost
            drop_connection(self)
            return result
        if record is not None:
            with contextlib.suppress(Exception):
                record(operation)
        if outcome == "drop":
            drop_connection(self)
            return _dropped()
        return error_response(self, outcome)

    _INSTALLED = True


# --------------------------------------------------------------------------- command line and control path


def add_argument_group(parser: argparse.ArgumentParser) -> None:
    defaults = Settings()
    group = parser.add_argument_group(
        "traffic", "AWS quotas, latency and faults for IoT calls (all off by default; see TRAFFIC.md)"
    )
    group.add_argument(
        "--quotas",
        choices=QUOTA_PROFILES,
        default=defaults.quotas,
        help="aws-default: per-operation token buckets at AWS IoT's default TPS; beyond them ThrottlingException",
    )
    group.add_argument(
        "--quota-scale",
        type=float,
        default=defaults.quota_scale,
        metavar="F",
        help="multiply every quota by F (e.g. 0.1 for fast throttling tests; default: %(default)s)",
    )
    group.add_argument(
        "--latency-ms", type=float, default=defaults.latency_ms, metavar="N", help="sleep N ms before every IoT call"
    )
    group.add_argument(
        "--latency-jitter-ms",
        type=float,
        default=defaults.latency_jitter_ms,
        metavar="N",
        help="add a uniform random -N..+N ms to the latency",
    )
    group.add_argument(
        "--fault-rate",
        type=float,
        default=defaults.fault_rate,
        metavar="P",
        help="fraction 0..1 of IoT calls answered with a fault instead (default: %(default)s)",
    )
    group.add_argument(
        "--fault-kinds",
        default=",".join(defaults.fault_kinds),
        metavar="KINDS",
        help=f"comma-separated, chosen at random per fault: {', '.join(FAULT_KINDS)} (default: %(default)s)",
    )
    group.add_argument("--fault-seed", type=int, default=None, metavar="N", help="seed of the fault dice")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The startup settings from the parsed command line (SystemExit with a message on a bad value)."""
    try:
        return updated(
            Settings(),
            {
                "quotas": args.quotas,
                "quota_scale": args.quota_scale,
                "latency_ms": args.latency_ms,
                "latency_jitter_ms": args.latency_jitter_ms,
                "fault_rate": args.fault_rate,
                "fault_kinds": args.fault_kinds,
                "fault_seed": args.fault_seed,
            },
        )
    except SettingsError as error:
        raise SystemExit(f"server.py: {error}") from error


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""


def traffic_route(method: str, environ: dict[str, Any]) -> tuple[str, Any]:
    """``/_local/traffic``: GET the settings and counters, POST changes (JSON), DELETE back to startup."""
    if method == "GET":
        return "200 OK", TRAFFIC.report()
    if method == "DELETE":
        TRAFFIC.reset()
        return "200 OK", TRAFFIC.report()
    if method != "POST":
        return "405 Method Not Allowed", {"error": "GET, POST (a JSON object of settings) or DELETE"}
    try:
        changes = json.loads(_read_body(environ) or b"{}")
        TRAFFIC.configure(changes)
    except ValueError as error:  # SettingsError or bad JSON
        return "400 Bad Request", {"error": str(error)}
    return "200 OK", TRAFFIC.report()


traffic_route.takes_environ = True  # type: ignore[attr-defined]

CONTROL_ROUTES: dict[str, Callable[[str, dict[str, Any]], tuple[str, Any]]] = {"/_local/traffic": traffic_route}
