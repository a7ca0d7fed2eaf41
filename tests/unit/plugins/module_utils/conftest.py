"""Shared fixtures of the module_utils tests: an in-process moto IoT with a recorder of the calls made."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import boto3
import pytest
from moto import mock_aws

# The calls that change nothing: what an idempotence or check-mode assertion may allow.
READ_PREFIXES = ("Describe", "List", "Get")


@dataclass
class RecordedIoT:
    """A real boto3 IoT client (botocore's paginators, parameter validation, error parsing) on moto."""

    client: Any
    calls: list = field(default_factory=list)

    def mutating(self) -> list:
        return [name for name in self.calls if not name.startswith(READ_PREFIXES)]

    def count(self, operation: str) -> int:
        return self.calls.count(operation)


@pytest.fixture
def moto_iot(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordedIoT]:
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("iot", region_name="us-east-1")
        recorded = RecordedIoT(client)
        # Every call is recorded, a test's own setup included: a test clears the list where its subject starts.
        client.meta.events.register("before-call.iot.*", lambda model, **_kwargs: recorded.calls.append(model.name))
        yield recorded
