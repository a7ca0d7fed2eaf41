# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every retry of the collection: who retries what, and on which schedule.

Two different things are retried, by two different layers:

- throttling and transient failures (the request may not have run): by the *call layer*, once per call,
  before the caller sees the error;
- eventual consistency (the request ran and AWS answered, but with a view a few seconds old): by the
  *lifecycle step* that knows which answer means "not yet" (a delete refused because a detach just made is not
  visible yet), on a named schedule below. The call layer never retries these: it cannot tell them from a
  real refusal.

=====================================  ============================================  ==========================
Layer                                  Retries                                       Schedule
=====================================  ============================================  ==========================
single modules: botocore's adaptive    throttles, 5xx, connection errors; stops at   ``max_attempts`` option,
client (``aws.make_client``)           once on LimitExceededException                botocore's own backoff
create calls (``aws.call_once``)       only throttles and never-made connections     the same client's
fleet: paced ``fleet_rate.Caller``     throttles (halving that API's rate), 5xx,     ``backoff_delay``: full
(botocore's retries off)               dropped connections                           jitter, 0.1 s doubling to 5
certificate removal, single modules    DeleteCertificate refused while a detach is   ``CERTIFICATE_DELETE``
(``iot_access.remove_certificate``)    not visible yet
fleet certificate removal              the same, and CertificateStateException       ``FLEET_CERTIFICATE_DELETE``
                                       while INACTIVE is not visible yet
fleet thing deletion                   DeleteThing refused while a detach is not     ``FLEET_THING_DELETE``
                                       visible yet
policy removal (``policies``)          DeletePolicy: DeleteConflictException (AWS:   ``POLICY_DELETE`` (about 5
                                       up to 5 minutes after the detach)             minutes)
thing, thing type deletion             DeleteThing: principals still attached;       ``until_deadline``: the
(``things``)                           DeleteThingType: AWS deletes 5 minutes after  ``wait_timeout`` option, 2 s
                                       deprecation (both InvalidRequestException)    doubling to 30 s
=====================================  ============================================  ==========================

A ``Consistency`` schedule names the error codes that mean "not visible yet" and the waits between attempts:
``len(waits) + 1`` attempts in all. ``sleep`` and ``clock`` are injectable so the unit tests run without waiting.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import is_error

Sleep = Callable[[float], None]
Clock = Callable[[], float]


@dataclass(frozen=True)
class Consistency:
    """A consistency retry: the error codes that mean "not visible yet" and the waits between attempts."""

    codes: Tuple[str, ...]
    waits: Tuple[float, ...]

    def retryable(self, error: BaseException) -> bool:
        return is_error(error, *self.codes)


# DetachThingPrincipal is eventually consistent: DeleteCertificate right after it may still see the thing.
CERTIFICATE_DELETE = Consistency(("DeleteConflictException",), (1, 2, 4, 8))
# The fleet's removals: shorter first waits (a fleet removes many at once); a certificate whose INACTIVE is not
# visible yet answers CertificateStateException, a thing whose detach is not, InvalidRequestException.
FLEET_CERTIFICATE_DELETE = Consistency(("DeleteConflictException", "CertificateStateException"), (0.5, 1, 2, 4, 8))
FLEET_THING_DELETE = Consistency(("InvalidRequestException", "DeleteConflictException"), (0.5, 1, 2, 4, 8))
# AWS documents that a detached policy can take up to five minutes to become deletable.
POLICY_DELETE = Consistency(("DeleteConflictException",), (1.0, 2.0, 4.0, 8.0, 15.0) + (30.0,) * 9)
# ``until_deadline``: the first wait and the longest.
DEADLINE_FIRST_DELAY = 2.0
DEADLINE_MAX_DELAY = 30.0
# The fleet's Caller: full-jitter exponential backoff from 0.1 s, at most 5 s a wait.
FLEET_BACKOFF_BASE = 0.1
FLEET_BACKOFF_CAP = 5.0


def with_waits(func: Callable[[], Any], schedule: Consistency, sleep: Sleep) -> Any:
    """``func()``, again after each wait of ``schedule`` while it raises one of the schedule's codes."""
    for wait in (*schedule.waits, None):
        try:
            return func()
        except Exception as error:  # anything the schedule does not name propagates at once
            if wait is None or not schedule.retryable(error):
                raise
            sleep(wait)
    return None  # not reached: the last attempt returns or raises


def until_deadline(
    call: Callable[[], Any],
    retryable: Callable[[BaseException], bool],
    timeout: float,
    on_timeout: Callable[[BaseException], Exception],
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
    first_delay: float = DEADLINE_FIRST_DELAY,
    max_delay: float = DEADLINE_MAX_DELAY,
) -> Any:
    """Call until it succeeds, retrying errors `retryable` accepts with exponential backoff.

    After `timeout` seconds the last retryable error is turned into `on_timeout(error)` and raised; any other
    error propagates at once.
    """
    deadline = clock() + timeout
    delay = first_delay
    while True:
        try:
            return call()
        except Exception as error:  # anything retryable does not accept propagates at once
            if not retryable(error):
                raise
            remaining = deadline - clock()
            if remaining <= 0:
                raise on_timeout(error) from error
            sleep(min(delay, remaining))
            delay = min(delay * 2, max_delay)


def backoff_delay(
    attempt: int,
    base: float = FLEET_BACKOFF_BASE,
    cap: float = FLEET_BACKOFF_CAP,
    rng: Callable[[], float] = random.random,
) -> float:
    """Full-jitter exponential backoff for retry number ``attempt`` (1-based)."""
    return rng() * min(cap, base * (2 ** (attempt - 1)))


__all__ = [
    "CERTIFICATE_DELETE",
    "FLEET_CERTIFICATE_DELETE",
    "FLEET_THING_DELETE",
    "POLICY_DELETE",
    "Consistency",
    "backoff_delay",
    "until_deadline",
    "with_waits",
]
