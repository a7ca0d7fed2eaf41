# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Client-side pacing for the fleet engine: per-API rate budgets and a retrying caller.

AWS IoT bounds each API by a TPS quota per account and region. Sending faster than
the quota only buys ThrottlingExceptions and retries, so every operation has a token
bucket that starts at AWS's default quota (``DEFAULT_TPS``) and adapts (AIMD): it
halves on a throttle and grows back slowly (at most to where it started) on success.
Its burst is half a second of quota so that AWS's own bucket keeps a reserve for jitter.

``Caller`` makes every call of the engine: it waits for a token, calls without
botocore's own retries, and retries throttles, 5xx answers and dropped connections
with jittered exponential backoff. It counts calls per operation and throttles for the
run summary. Clock and sleep are injectable so the unit tests run on a fake clock.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any, Callable, Dict, Optional

from ansible_collections.iotfleet.provisioning.plugins.module_utils import retry
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import (
    ValidationError,
    error_code,
    is_client_error,
)

try:
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    RETRYABLE_TRANSPORT_ERRORS: tuple = (HTTPClientError, BotoConnectionError)
except ImportError:  # pragma: no cover - ansible-test's import test runs without botocore
    RETRYABLE_TRANSPORT_ERRORS = ()

# AWS IoT default TPS per operation (AWS_IOT_FACTS.md, "Default TPS quotas").
DEFAULT_TPS: Dict[str, float] = {
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
    "UpdateCertificate": 10,
    "DeleteCertificate": 10,
    "DescribeCertificate": 10,
    "AttachPolicy": 15,
    "DetachPolicy": 15,
    "CreatePolicy": 10,
    "GetPolicy": 10,
}
# Operations without a published default: the lowest value of the table.
UNLISTED_TPS = 10.0
# Every operation the fleet engine calls: the keys api_rates may name.
ENGINE_OPERATIONS = frozenset(DEFAULT_TPS) | {
    "ListThingsInThingGroup",
    "ListTargetsForPolicy",
    "ListCertificates",
    "ListAttachedPolicies",
    "ListPrincipalThings",
    "ListThingsInBillingGroup",
    "AddThingToBillingGroup",
    "RemoveThingFromBillingGroup",
}
MAX_TPS = 10000.0
MIN_TPS = 0.5
# The client bursts at most this fraction of a second's quota. AWS's bucket (its burst size is not
# published; take it as one second) then always keeps about half a second of tokens in reserve, which
# absorbs the jitter between when a call leaves here and when it reaches AWS. Pacing with no reserve at
# exactly the quota meets a throttle at the first late call, and each throttle halves the budget.
BURST_FRACTION = 0.5

THROTTLE_CODES = frozenset({"ThrottlingException", "TooManyRequestsException", "Throttling", "RequestLimitExceeded"})
TRANSIENT_CODES = frozenset(
    {
        "InternalFailureException",
        "InternalException",
        "ServiceUnavailableException",
        "ConflictingResourceUpdateException",
    }
)

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class OperationBudget:
    """A token bucket for one operation whose rate adapts: halve on throttle, grow slowly on success."""

    def __init__(self, rate: float, clock: Clock):
        self.initial = float(rate)
        self.rate = float(rate)
        self.clock = clock
        self.updated = clock()
        self.tokens = self.capacity
        self.throttles = 0

    @property
    def capacity(self) -> float:
        return max(1.0, self.rate * BURST_FRACTION)

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def reserve(self) -> float:
        """Take a token (possibly one not yet refilled); return how long to wait before using it."""
        now = self.clock()
        self._refill(now)
        self.tokens -= 1.0
        if self.tokens >= 0:
            return 0.0
        return -self.tokens / self.rate

    def throttled(self) -> None:
        self.throttles += 1
        self.rate = max(MIN_TPS, self.rate / 2.0)
        self.tokens = min(self.tokens, self.capacity)

    def succeeded(self) -> None:
        # Additive increase: about +1 TPS per second of full-rate success, never above the starting quota.
        if self.rate < self.initial:
            self.rate = min(self.initial, self.rate + 1.0 / self.rate)


class RateBudget:
    """One OperationBudget per AWS operation, created on first use at the operation's default TPS."""

    def __init__(
        self,
        rates: Optional[Dict[str, float]] = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        unlisted: float = UNLISTED_TPS,
    ):
        self.rates = dict(DEFAULT_TPS if rates is None else rates)
        self.unlisted = unlisted
        self.clock = clock
        self.sleep = sleep
        self.lock = threading.Lock()
        self.budgets: Dict[str, OperationBudget] = {}

    def budget(self, operation: str) -> OperationBudget:
        if operation not in self.budgets:
            self.budgets[operation] = OperationBudget(self.rates.get(operation, self.unlisted), self.clock)
        return self.budgets[operation]

    def acquire(self, operation: str) -> float:
        with self.lock:
            wait = self.budget(operation).reserve()
        if wait > 0:
            self.sleep(wait)
        return wait

    def throttled(self, operation: str) -> None:
        with self.lock:
            self.budget(operation).throttled()

    def succeeded(self, operation: str) -> None:
        with self.lock:
            self.budget(operation).succeeded()

    def rate(self, operation: str) -> float:
        with self.lock:
            return self.budget(operation).rate


def validate_api_rates(value: Any) -> Dict[str, float]:
    """``api_rates``: TPS per operation the engine calls, each above 0 (a raised or a shared quota)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError("api_rates", f"must be a dictionary of operation name to TPS, got {type(value).__name__}")
    rates: Dict[str, float] = {}
    for operation, rate in value.items():
        if operation not in ENGINE_OPERATIONS:
            raise ValidationError(
                f"api_rates.{operation}",
                "is not an operation the fleet engine calls; use one of " + ", ".join(sorted(ENGINE_OPERATIONS)),
            )
        try:
            number = float(rate)
        except (TypeError, ValueError):
            number = float("nan")
        if isinstance(rate, bool) or not 0 < number <= MAX_TPS:
            raise ValidationError(
                f"api_rates.{operation}",
                f"must be a number of calls per second above 0 and at most {MAX_TPS:g}, got {rate!r}",
            )
        rates[operation] = number
    return rates


def is_throttle(error: BaseException) -> bool:
    return error_code(error) in THROTTLE_CODES


def is_transient(error: BaseException) -> bool:
    """A 5xx answer or a dropped connection: the call may be retried (it may or may not have run)."""
    if RETRYABLE_TRANSPORT_ERRORS and isinstance(error, RETRYABLE_TRANSPORT_ERRORS):
        return True
    if is_client_error(error):
        if error_code(error) in TRANSIENT_CODES:
            return True
        status = getattr(error, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status >= 500
    return False


class Caller:
    """Makes every AWS call of a fleet run: paced, retried, counted. Thread-safe."""

    def __init__(
        self,
        client: Any,
        budget: RateBudget,
        max_attempts: int = 10,
        sleep: Sleep = time.sleep,
        rng: Callable[[], float] = random.random,
    ):
        self.client = client
        self.budget = budget
        self.max_attempts = max(1, max_attempts)
        self.sleep = sleep
        self.rng = rng
        self.lock = threading.Lock()
        self.calls: Dict[str, int] = {}
        self.throttles = 0
        self.retries = 0
        self.mutating: Dict[str, int] = {}

    def _operation(self, method: str) -> str:
        mapping = getattr(getattr(self.client, "meta", None), "method_to_api_mapping", None) or {}
        if method in mapping:
            return mapping[method]
        return "".join(part.capitalize() for part in method.split("_"))

    def _count(self, operation: str) -> None:
        with self.lock:
            self.calls[operation] = self.calls.get(operation, 0) + 1

    def __call__(self, method: str, **params: Any) -> Dict[str, Any]:
        operation = self._operation(method)
        attempt = 0
        while True:
            attempt += 1
            self.budget.acquire(operation)
            self._count(operation)
            try:
                response = getattr(self.client, method)(**params)
            except Exception as error:  # classified below; anything else propagates
                throttle = is_throttle(error)
                if not (throttle or is_transient(error)) or attempt >= self.max_attempts:
                    raise
                with self.lock:
                    self.retries += 1
                    if throttle:
                        self.throttles += 1
                if throttle:
                    self.budget.throttled(operation)
                self.sleep(retry.backoff_delay(attempt, rng=self.rng))
                continue
            self.budget.succeeded(operation)
            return response

    def pages(self, method: str, result_key: str, **params: Any) -> list:
        """Every item of a paged list call, each page paced and retried on its own."""
        items: list = []
        params = {k: v for k, v in params.items() if v is not None}
        while True:
            page = self(method, **params)
            items.extend(page.get(result_key, []))
            token = page.get("nextToken") or page.get("nextMarker")
            if not token:
                return items
            if "nextMarker" in page and "nextToken" not in page:
                params["marker"] = token
            else:
                params["nextToken"] = token

    def summary(self) -> Dict[str, Any]:
        with self.lock:
            return {
                "api_calls": dict(sorted(self.calls.items())),
                "api_calls_total": sum(self.calls.values()),
                "throttles": self.throttles,
                "retries": self.retries,
            }
