"""The endpoint checks at start that its fixes still hold on the moto it runs on, and refuses to serve otherwise.

Each fix already refuses to install when the moto method it wraps is gone (``PatchShapeError`` from ``_wrap``)
and fails a request when moto's answer is not the shape it reads. A new moto can still change behaviour
without changing shape (moto 5.2.6 started paging list answers again after our paging, dropping the token),
so before the endpoint reports healthy it sends a few requests whose AWS answers are known and compares.
A failed probe names the fix, what AWS answers and what came back; the server then exits non-zero.

The probes run in their own region and remove what they create; the server forgets their calls afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any, Callable

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import serialization

PROBE_REGION = "sa-east-1"  # no test or demo uses it
PROBE_PREFIX = "selfcheck-"


class SelfCheckFailed(RuntimeError):
    """A fix no longer gives AWS's answer on this moto."""


def _client(url: str) -> Any:
    return boto3.client(
        "iot",
        endpoint_url=url,
        region_name=PROBE_REGION,
        aws_access_key_id="selfcheck",
        aws_secret_access_key="selfcheck",
        config=Config(retries={"total_max_attempts": 1}),
    )


def _expect(fix: str, condition: bool, aws_answers: str, got: Any) -> None:
    if not condition:
        if isinstance(got, dict):
            got = {key: value for key, value in got.items() if key != "ResponseMetadata"}
        raise SelfCheckFailed(f"fix '{fix}': AWS answers {aws_answers}; this moto answered {got!r}")


def _error_code(call: Callable[..., Any], **kwargs: Any) -> str | None:
    try:
        call(**kwargs)
    except ClientError as error:
        return str(error.response["Error"].get("Code"))
    return None


def _probe_paging(iot: Any) -> None:
    group = f"{PROBE_PREFIX}group"
    iot.create_thing_group(thingGroupName=group)
    for index in range(3):
        iot.create_thing(thingName=f"{PROBE_PREFIX}{index}")
        iot.add_thing_to_thing_group(thingGroupName=group, thingName=f"{PROBE_PREFIX}{index}")
    for operation, key, kwargs in (
        ("list_things", "things", {}),
        ("list_things_in_thing_group", "things", {"thingGroupName": group}),
    ):
        first = getattr(iot, operation)(maxResults=2, **kwargs)
        fix = f"paging of {operation}"
        _expect(fix, len(first[key]) == 2 and bool(first.get("nextToken")), "2 items and a nextToken", first)
        second = getattr(iot, operation)(maxResults=2, nextToken=first["nextToken"], **kwargs)
        _expect(fix, len(second[key]) == 1 and "nextToken" not in second, "the last item, no nextToken", second)


def _probe_things(iot: Any) -> None:
    name = f"{PROBE_PREFIX}0"
    code = _error_code(iot.create_thing, thingName=name, attributePayload={"attributes": {"a": "b"}})
    _expect("CreateThing with other attributes", code == "ResourceAlreadyExistsException", "a conflict", code)
    code = _error_code(iot.create_thing, thingName="not a thing name!")
    _expect("request validation", code == "InvalidRequestException", "InvalidRequestException", code)


def _probe_certificates(iot: Any) -> None:
    created = iot.create_keys_and_certificate(setAsActive=False)
    try:
        der = x509.load_pem_x509_certificate(created["certificatePem"].encode()).public_bytes(
            serialization.Encoding.DER
        )
        wanted = hashlib.sha256(der).hexdigest()
        _expect(
            "certificate ids", created["certificateId"] == wanted, "the SHA-256 of the DER", created["certificateId"]
        )
        name = f"{PROBE_PREFIX}0"
        iot.attach_thing_principal(thingName=name, principal=created["certificateArn"])
        listed = iot.list_thing_principals_v2(thingName=name).get("thingPrincipalObjects", [])
        _expect(
            "thing principal types",
            [item.get("thingPrincipalType") for item in listed] == ["NON_EXCLUSIVE_THING"],
            "one NON_EXCLUSIVE_THING principal",
            listed,
        )
        iot.detach_thing_principal(thingName=name, principal=created["certificateArn"])
    finally:
        iot.delete_certificate(certificateId=created["certificateId"])


def _cleanup(iot: Any) -> None:
    for index in range(3):
        with contextlib.suppress(ClientError):
            iot.delete_thing(thingName=f"{PROBE_PREFIX}{index}")
    with contextlib.suppress(ClientError):
        iot.delete_thing_group(thingGroupName=f"{PROBE_PREFIX}group")


PROBES: tuple[Callable[[Any], None], ...] = (_probe_paging, _probe_things, _probe_certificates)


def run(url: str) -> None:
    """Every probe against the endpoint at ``url``; SelfCheckFailed on the first answer AWS would not give."""
    iot = _client(url)
    try:
        for probe in PROBES:
            try:
                probe(iot)
            except ClientError as error:
                raise SelfCheckFailed(f"probe {probe.__name__[7:]}: unexpected error {error}") from error
    finally:
        _cleanup(iot)
