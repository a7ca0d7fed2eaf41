"""Several CAs for one JITP template on the local endpoint: what a CA rotation meets on AWS.

One endpoint for the module, reset before every test; plain boto3 and the ``/_local/jitp/connect`` control path,
every outcome read back through the IoT APIs. The certificate helpers are test_jitp.py's.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Iterator

import boto3
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from endpoint_testing import client, error_of, module_endpoint, reset
from test_jitp import (
    ca_ids,
    connect,
    der_id,
    device,
    jitp_world,
    make_ca,
    register_ca,
    status_of,
    thing_names,
    verification,
)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with module_endpoint("jitp_cas") as url:
        yield url


@pytest.fixture
def iot(endpoint: str) -> Any:
    reset(endpoint)
    return client(endpoint)


def in_account(iot: Any, account: str) -> Any:
    """The same client, its requests made in another account (moto's x-moto-account-id header)."""

    def add_header(request: Any, **_kwargs: Any) -> None:
        request.headers["x-moto-account-id"] = account

    iot.meta.events.register("before-sign.iot.*", add_header)
    return iot


def regional(endpoint: str, region: str) -> Any:
    return boto3.client(
        "iot",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def by_ca(iot: Any, ca_id: str) -> dict[str, str]:
    listed = iot.list_certificates_by_ca(caCertificateId=ca_id, pageSize=250)["certificates"]
    return {item["certificateId"]: item["status"] for item in listed}


def test_two_cas_for_one_template_each_provision_the_devices_they_signed(iot: Any, endpoint: str) -> None:
    jitp_world(iot)
    old, new = make_ca("Fleet CA"), make_ca("Fleet CA")  # same subject, another key: what a rotation makes
    old_id = register_ca(iot, old, registrationConfig={"templateName": "jitp"})
    new_id = register_ca(iot, new, registrationConfig={"templateName": "jitp"})
    listed = iot.list_ca_certificates(templateName="jitp")["certificates"]
    assert sorted(ca["certificateId"] for ca in listed) == sorted([old_id, new_id])

    old_device, new_device = device(old, CN="dev-old", C="DE"), device(new, CN="dev-new", C="DE")
    for pem, ca_id, thing in ((old_device, old_id, "dev-old"), (new_device, new_id, "dev-new")):
        status, answer = connect(endpoint, pem)
        assert status == 200 and answer["provisioned"] and answer["caCertificateId"] == ca_id, answer
        assert by_ca(iot, ca_id) == {der_id(pem): "ACTIVE"}
        assert iot.list_thing_principals(thingName=thing)["principals"][0].endswith(der_id(pem))
    assert sorted(thing_names(iot)) == ["dev-new", "dev-old"]


def test_retiring_then_retired_then_deleted_ca(iot: Any, endpoint: str) -> None:
    jitp_world(iot)
    old, new = make_ca("Fleet CA"), make_ca("Fleet CA")
    old_id = register_ca(iot, old, registrationConfig={"templateName": "jitp"})
    register_ca(iot, new, registrationConfig={"templateName": "jitp"})
    known = device(old, CN="known", C="DE")
    assert connect(endpoint, known)[0] == 200
    known_id = der_id(known)

    # Retiring: auto-registration off. A registered device still connects; a new one of the old CA is refused.
    iot.update_ca_certificate(certificateId=old_id, newAutoRegistrationStatus="DISABLE")
    status, answer = connect(endpoint, known)
    assert status == 200 and answer["provisioned"] is False
    late = device(old, CN="late", C="DE")
    assert connect(endpoint, late)[1]["code"] == "AUTO_REGISTRATION_DISABLED"
    # The new CA still provisions.
    assert connect(endpoint, device(new, CN="fresh", C="DE"))[0] == 200

    # INACTIVE: registered device certificates keep working (developer guide, "Deactivate a CA certificate");
    # no new device of that CA is registered.
    iot.update_ca_certificate(certificateId=old_id, newStatus="INACTIVE")
    assert connect(endpoint, known)[0] == 200
    assert connect(endpoint, late)[1]["code"] == "CA_INACTIVE"
    assert "late" not in thing_names(iot)

    # Deleting it is refused while a device certificate it signed is ACTIVE (our strict reading, JITP.md).
    code, message, http = error_of(iot.delete_ca_certificate, certificateId=old_id)
    assert (code, http) == ("CertificateStateException", 406) and "1 device certificate" in message
    assert old_id in ca_ids(iot)

    iot.update_certificate(certificateId=known_id, newStatus="INACTIVE")
    iot.delete_ca_certificate(certificateId=old_id)
    assert old_id not in ca_ids(iot)
    assert error_of(iot.describe_ca_certificate, certificateId=old_id)[0] == "ResourceNotFoundException"
    # After deletion: a device of the old CA is refused, registered or not.
    assert connect(endpoint, late)[1]["code"] == "CA_NOT_REGISTERED"
    assert connect(endpoint, known)[1]["code"] == "CERTIFICATE_NOT_ACTIVE"
    assert status_of(iot, known_id) == "INACTIVE"


def test_an_active_ca_is_never_deleted_even_without_devices(iot: Any) -> None:
    ca_id = register_ca(iot, make_ca("Fleet CA"))
    assert error_of(iot.delete_ca_certificate, certificateId=ca_id)[::2] == ("CertificateStateException", 406)


def test_an_eleventh_default_mode_ca_with_the_same_subject_is_refused(iot: Any) -> None:
    for _unused in range(10):
        register_ca(iot, make_ca("Fleet CA"))
    extra = make_ca("Fleet CA")
    code, message, status = error_of(
        iot.register_ca_certificate,
        caCertificate=extra.pem,
        verificationCertificate=verification(iot, extra),
        setAsActive=True,
    )
    assert (code, status) == ("LimitExceededException", 410) and "10" in message
    assert len(ca_ids(iot)) == 10
    # INACTIVE ones count too: the limit is on registered CAs with that subject.
    iot.update_ca_certificate(certificateId=ca_ids(iot)[0], newStatus="INACTIVE")
    assert error_of(iot.register_ca_certificate, caCertificate=extra.pem, certificateMode="SNI_ONLY")[0] == (
        "LimitExceededException"
    )


def test_a_default_mode_ca_belongs_to_one_account_per_region(iot: Any, endpoint: str) -> None:
    authority = make_ca("Shared CA")
    ca_id = register_ca(iot, authority)
    other = in_account(client(endpoint), "210987654321")
    code, _unused, status = error_of(
        other.register_ca_certificate,
        caCertificate=authority.pem,
        verificationCertificate=verification(other, authority),
    )
    assert (code, status) == ("ResourceAlreadyExistsException", 409)
    assert other.list_ca_certificates()["certificates"] == []
    # SNI_ONLY: several accounts may register it.
    other.register_ca_certificate(caCertificate=authority.pem, certificateMode="SNI_ONLY")
    assert [ca["certificateId"] for ca in other.list_ca_certificates()["certificates"]] == [ca_id]
    # Another region is another registry.
    elsewhere = in_account(regional(endpoint, "us-west-2"), "210987654321")
    elsewhere.register_ca_certificate(
        caCertificate=authority.pem, verificationCertificate=verification(elsewhere, authority)
    )
    assert len(elsewhere.list_ca_certificates()["certificates"]) == 1
