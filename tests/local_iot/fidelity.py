"""Fidelity fixes: make moto refuse what AWS refuses.

Each fix wraps one moto method (backend or response) and raises the error AWS documents, with AWS's error
code and HTTP status, before or instead of moto's lenient behaviour. They are grouped by resource:

* ``fidelity_validation.py``: patterns, lengths, enums and ranges of every request, from the botocore model;
* ``fidelity_things.py``: things, thing types, thing groups;
* ``fidelity_security.py``: certificates, thing principals, policies and their attachments;
* ``fidelity_paging.py``: list calls answer pages, as AWS does;
* this file: call recording, the request pipeline and stable endpoints.

The list of fixes, with the AWS behaviour each one follows and its source, is in README.md beside this file.
Nothing here imports from the collection's ``plugins/``.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any, Callable

import fidelity_paging
import fidelity_security
import fidelity_things
import fidelity_validation
from fidelity_core import STATE_LOCK, LocalFixMismatch, Options, PatchShapeError, _wrap, configure
from moto.iot.models import IoTBackend
from moto.iot.responses import IoTResponse
from werkzeug.exceptions import HTTPException

__all__ = ["Options", "_wrap", "install"]

_INSTALLED = False


def _error_response(response: IoTResponse, error: HTTPException) -> Any:
    """The (status, headers, body) moto answers for ``error``, the same way it answers errors its methods raise."""
    headers: dict[str, Any] = dict(error.get_headers() or [])
    headers["status"] = error.code
    status, headers, body = response._transform_response(response.response_headers, (error.description, headers))
    headers, body = response._enrich_response(headers, body)
    return status, headers, body


def _install_request_pipeline(record: Callable[[str], None], effect: Callable[..., None] | None = None) -> None:
    # Every IoT request: record the operation (tests assert on calls), then validate it against the model
    # (AWS validates before doing anything), then hand it to moto.
    @_wrap(IoTResponse, "call_action")
    def call_action(original: Callable[..., Any], self: IoTResponse) -> Any:
        try:
            action = self._get_action()
        except Exception:  # an unroutable request: moto answers it
            return original(self)
        with contextlib.suppress(Exception):  # recording must never break a call
            record(action)
        error = fidelity_validation.check_request(self, action) if action else None
        if error is not None:
            return _error_response(self, error)
        try:
            with STATE_LOCK:  # moto's state is not thread-safe; latency and quotas were applied before this point
                answer = original(self)
                if effect is not None:  # in the order the state changed (CloudTrail's record of the call)
                    with contextlib.suppress(Exception):
                        effect(action, self, answer)
                return answer
        except PatchShapeError as mismatch:  # never moto's unfixed answer: an error that names the fix
            return _error_response(self, LocalFixMismatch(str(mismatch)))


def _install_stable_endpoints() -> None:
    # AWS: the endpoint address is fixed per account, region and type (iot:Data and iot:Data-ATS share the
    # prefix); moto made a new random one on every call. Here it is derived from account and region, so it
    # also survives a reset and a restart.
    @_wrap(IoTBackend, "describe_endpoint")
    def describe_endpoint(original: Callable[..., Any], self: IoTBackend, endpoint_type: str) -> Any:
        endpoint = original(self, endpoint_type)  # validates the type
        shared = endpoint_type in ("iot:Data", "iot:Data-ATS")
        seed = f"{self.account_id}:{self.region_name}" + ("" if shared else f":{endpoint_type}")
        prefix = hashlib.sha256(seed.encode()).hexdigest()[:14]
        region = self.region_name
        endpoint.endpoint = {
            "iot:Data": f"{prefix}.iot.{region}.amazonaws.com",
            "iot:Data-ATS": f"{prefix}-ats.iot.{region}.amazonaws.com",
            "iot:CredentialProvider": f"{prefix}.credentials.iot.{region}.amazonaws.com",
            "iot:Jobs": f"{prefix}.jobs.iot.{region}.amazonaws.com",
        }[endpoint_type]
        return endpoint


def install(
    record: Callable[[str], None], options: Options | None = None, effect: Callable[..., None] | None = None
) -> None:
    """Apply every fix once (idempotent, so a test process may call it again); ``options`` may change later."""
    global _INSTALLED
    configure(options or Options())
    if _INSTALLED:
        return
    _install_request_pipeline(record, effect)
    _install_stable_endpoints()
    fidelity_things.install()
    fidelity_security.install()
    fidelity_paging.install()  # last: it pages what the other fixes answer
    _INSTALLED = True
