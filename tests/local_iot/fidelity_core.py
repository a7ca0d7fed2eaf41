"""Shared pieces of the fidelity fixes: the wrap helper, the options, AWS errors moto lacks, local state.

The fixes themselves live in ``fidelity_things.py``, ``fidelity_security.py``, ``fidelity_validation.py``
and ``fidelity_paging.py``; ``fidelity.py`` installs them. Nothing here imports from ``plugins/``.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from typing import Any, Callable

from moto.iot import exceptions as iot_exceptions

# The AWS error codes the fixes raise. moto's own classes where it has them, ours (below) where it does not;
# each HTTP status is the one the botocore IoT model gives the error shape.
InvalidRequestException = iot_exceptions.InvalidRequestException  # 400
ResourceNotFoundException = iot_exceptions.ResourceNotFoundException  # 404
ResourceAlreadyExistsException = iot_exceptions.ResourceAlreadyExistsException  # 409
VersionConflictException = iot_exceptions.VersionConflictException  # 409
CertificateStateException = iot_exceptions.CertificateStateException  # 406
DeleteConflictException = iot_exceptions.DeleteConflictException  # 409


class LimitExceededException(iot_exceptions.IoTClientError):
    """A hard limit, e.g. an 11th policy on one certificate (HTTP 410 in the model)."""

    def __init__(self, msg: str) -> None:
        self.code = 410
        super().__init__("LimitExceededException", msg)


class MalformedPolicyException(iot_exceptions.IoTClientError):
    """A policy document AWS cannot accept (HTTP 400 in the model)."""

    def __init__(self, msg: str) -> None:
        self.code = 400
        super().__init__("MalformedPolicyException", msg)


class CertificateValidationException(iot_exceptions.IoTClientError):
    """A certificate that cannot be parsed or does not chain to the CA given (HTTP 400 in the model)."""

    def __init__(self, msg: str) -> None:
        self.code = 400
        super().__init__("CertificateValidationException", msg)


class PatchShapeError(RuntimeError):
    """moto no longer has the shape a fix patches: the endpoint must refuse to run rather than pass moto through."""

    def __init__(self, patch: str, detail: str) -> None:
        self.patch = patch
        super().__init__(f"local endpoint fix '{patch}' does not fit this moto: {detail}")


# moto's backends are plain dicts and lists, not safe for the threaded server: every IoT request is handled under
# this lock (after its latency and quota checks), and so is every change made outside a request (RegisterThing
# engine, registration task threads, JITP connections). Reentrant: handlers call each other.
STATE_LOCK = threading.RLock()


class LocalFixMismatch(iot_exceptions.IoTClientError):
    """The answer to a request a fix could not handle (PatchShapeError): a 500 that names the fix."""

    def __init__(self, msg: str) -> None:
        self.code = 500
        super().__init__("LocalEndpointFixMismatch", msg)


@dataclasses.dataclass
class Options:
    """What the command line can change about the fixes (see server.py)."""

    # Seconds after DetachThingPrincipal during which DeleteThing still sees the principal (AWS is eventually
    # consistent here); 0 makes the detach visible at once.
    detach_consistency_delay: float = 0.0
    # Seconds a thing type must have been deprecated before DeleteThingType accepts it (AWS: 5 minutes).
    thing_type_delete_wait: float = 300.0
    # Page size of list calls when the client sends no maxResults/pageSize (AWS does not document its own).
    default_page_size: int = 25


OPTIONS = Options()


def configure(options: Options) -> None:
    """Replace the active options (the server calls this once, tests may call it again)."""
    for field in dataclasses.fields(Options):
        setattr(OPTIONS, field.name, getattr(options, field.name))


def now() -> float:
    """The clock the time-based fixes use (monotonic seconds)."""
    return time.monotonic()


def local_state(backend: Any) -> dict[str, Any]:
    """Our bookkeeping for one moto backend. moto's reset replaces the backend's ``__dict__``, so it resets too."""
    return backend.__dict__.setdefault("_local_fidelity", {})


def response_body(result: Any, patch: str, required_key: str | None = None) -> dict[str, Any]:
    """The dict a moto response method answered, which a fix reads or changes; PatchShapeError if it is not one.

    A fix that cannot find what it patches must not hand moto's answer back unchanged: that is how a paging
    fix once let list calls lose their tokens without a word.
    """
    body = getattr(result, "_result", None)
    if not isinstance(body, dict) or (required_key is not None and required_key not in body):
        wanted = f"a dict with '{required_key}'" if required_key else "a dict"
        raise PatchShapeError(
            patch, f"moto answered {type(result).__name__} holding {type(body).__name__}, not {wanted}"
        )
    return body


def _wrap(cls: type, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: replace ``cls.name`` by a function that gets the original as its first argument."""

    def decorator(fix: Callable[..., Any]) -> Callable[..., Any]:
        original = getattr(cls, name, None)
        if not callable(original):
            raise PatchShapeError(
                f"{fix.__module__}.{fix.__name__}", f"{cls.__module__}.{cls.__name__} has no {name}()"
            )

        @functools.wraps(original)
        def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
            return fix(original, self, *args, **kwargs)

        setattr(cls, name, patched)
        return patched

    return decorator
