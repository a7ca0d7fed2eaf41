"""Fidelity fixes: make moto refuse what AWS refuses.

Each fix wraps one moto backend method and raises the error AWS documents, with
AWS's error code, before moto's lenient implementation runs. The list of fixes,
with the AWS behaviour each one follows, is in README.md beside this file.
Nothing here imports from the collection's ``plugins/``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from moto.iot import exceptions as iot_exceptions
from moto.iot.models import IoTBackend
from moto.iot.responses import IoTResponse

_INSTALLED = False


def _wrap(cls: type, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: replace ``cls.name`` by a function that gets the original as its first argument."""

    def decorator(fix: Callable[..., Any]) -> Callable[..., Any]:
        original = getattr(cls, name)

        @functools.wraps(original)
        def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
            return fix(original, self, *args, **kwargs)

        setattr(cls, name, patched)
        return patched

    return decorator


def _install_call_recording(record: Callable[[str], None]) -> None:
    @_wrap(IoTResponse, "call_action")
    def call_action(original: Callable[..., Any], self: IoTResponse) -> Any:
        try:
            record(self._get_action())
        except Exception:  # recording must never break a call
            pass
        return original(self)


def _install_create_thing_conflict() -> None:
    # AWS: CreateThing for an existing name succeeds (and returns the same thing)
    # only when the configuration is identical; otherwise ResourceAlreadyExistsException.
    @_wrap(IoTBackend, "create_thing")
    def create_thing(
        original: Callable[..., Any],
        self: IoTBackend,
        thing_name: str,
        thing_type_name: str,
        attribute_payload: dict[str, Any] | None,
        billing_group_name: str | None = None,
    ) -> Any:
        existing = next((t for t in self.things.values() if t.thing_name == thing_name), None)
        if existing is not None:
            wanted_attributes = (attribute_payload or {}).get("attributes", {}) or {}
            existing_type = existing.thing_type.thing_type_name if existing.thing_type else None
            if existing.attributes != wanted_attributes or (existing_type or None) != (thing_type_name or None):
                raise iot_exceptions.ResourceAlreadyExistsException(
                    f"Thing {thing_name} already exists in account with different attributes",
                    thing_name,
                    existing.arn,
                )
            return existing
        return original(self, thing_name, thing_type_name, attribute_payload, billing_group_name)


def _install_stable_endpoints() -> None:
    # AWS: the endpoint address is fixed per account, region and type; moto makes
    # a new random one on every call.
    @_wrap(IoTBackend, "describe_endpoint")
    def describe_endpoint(original: Callable[..., Any], self: IoTBackend, endpoint_type: str) -> Any:
        cache = self.__dict__.setdefault("_local_endpoints", {})
        if endpoint_type not in cache:
            cache[endpoint_type] = original(self, endpoint_type)
        self.endpoint = cache[endpoint_type]
        return self.endpoint


def install(record: Callable[[str], None]) -> None:
    """Apply every fix once (idempotent, so a test process may call it again)."""
    global _INSTALLED
    if _INSTALLED:
        return
    _install_call_recording(record)
    _install_create_thing_conflict()
    _install_stable_endpoints()
    _INSTALLED = True
