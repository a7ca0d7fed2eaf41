"""certificate_info's expiry facts (certificates.expiry) on the shared in-process moto IoT: validity dates, days
left, the public key, the expiring_within_days filter, and which queries spend a DescribeCertificate call."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates import CertificateQuery, expiry
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

NOW = datetime.datetime(2026, 12, 5, 12, 0, tzinfo=datetime.timezone.utc)


def certificate(key, not_after: datetime.datetime, cn: str = "device") -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    built = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=300))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return built.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def account(moto_iot):
    """Thing 'sensor' with two certificates (EC P-256 ending in 10 days 2 hours, RSA 3072 in 400 days), and one
    certificate of nobody (already expired)."""
    iot = moto_iot.client
    iot.create_thing(thingName="sensor")
    soon = certificate(ec.generate_private_key(ec.SECP256R1()), NOW + datetime.timedelta(days=10, hours=2), "soon")
    late_key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    late = certificate(late_key, NOW + datetime.timedelta(days=400), "late")
    gone = certificate(ec.generate_private_key(ec.SECP384R1()), NOW - datetime.timedelta(hours=1), "gone")
    ids = {}
    for label, pem in (("soon", soon), ("late", late), ("gone", gone)):
        answer = iot.register_certificate_without_ca(certificatePem=pem, status="ACTIVE")
        ids[label] = answer["certificateId"]
        if label != "gone":
            iot.attach_thing_principal(thingName="sensor", principal=answer["certificateArn"])
    moto_iot.calls.clear()
    return moto_iot, ids


def by_id(answer):
    return {c["certificate_id"]: c for c in answer["certificates"]}


def test_a_thing_query_returns_dates_days_left_and_keys_without_extra_calls(account):
    recorded, ids = account
    answer = expiry.query_with_expiry(recorded.client, CertificateQuery(thing="sensor"), now=NOW)
    certs = by_id(answer)
    assert set(certs) == {ids["soon"], ids["late"]}
    soon, late = certs[ids["soon"]], certs[ids["late"]]
    assert soon["validity"] == {
        "not_before": (NOW - datetime.timedelta(days=300)).isoformat(),
        "not_after": (NOW + datetime.timedelta(days=10, hours=2)).isoformat(),
    }
    assert soon["days_left"] == 10
    assert soon["public_key"] == {"type": "EC", "curve": "P-256", "size": 256}
    assert late["days_left"] == 400
    assert late["public_key"] == {"type": "RSA", "size": 3072}
    assert "certificate_pem" not in soon  # read for the dates, returned only when asked
    assert answer["validity_read"] is True
    # One description per attached certificate, as the query made before validity existed.
    assert recorded.count("DescribeCertificate") == 2
    assert recorded.mutating() == []


def test_a_listing_reads_no_validity_unless_asked(account):
    recorded, ids = account
    answer = expiry.query_with_expiry(recorded.client, CertificateQuery(), now=NOW)
    assert set(by_id(answer)) == set(ids.values())
    assert all("validity" not in c and "days_left" not in c for c in answer["certificates"])
    assert answer["validity_read"] is False
    assert recorded.count("DescribeCertificate") == 0


def test_expiring_within_days_keeps_those_ending_in_the_window_expired_included(account):
    recorded, ids = account
    answer = expiry.query_with_expiry(
        recorded.client, CertificateQuery(status="ACTIVE"), expiring_within_days=30, now=NOW
    )
    certs = by_id(answer)
    assert set(certs) == {ids["soon"], ids["gone"]}
    assert certs[ids["gone"]]["days_left"] == -1
    assert certs[ids["gone"]]["public_key"]["curve"] == "P-384"
    assert answer["validity_read"] is True
    assert recorded.count("DescribeCertificate") == 3  # one per listed certificate
    # The window's edge: 10 days 2 hours is outside a 10-day window, inside an 11-day one.
    assert (
        set(by_id(expiry.query_with_expiry(recorded.client, CertificateQuery(thing="sensor"), False, 10, NOW))) == set()
    )
    assert set(by_id(expiry.query_with_expiry(recorded.client, CertificateQuery(thing="sensor"), False, 11, NOW))) == {
        ids["soon"]
    }


def test_include_validity_on_a_listing_and_include_pem_still_returns_the_pem(account):
    recorded, ids = account
    answer = expiry.query_with_expiry(
        recorded.client, CertificateQuery(include_pem=True), include_validity=True, now=NOW
    )
    certs = by_id(answer)
    assert certs[ids["late"]]["days_left"] == 400
    assert certs[ids["late"]]["certificate_pem"].startswith("-----BEGIN CERTIFICATE-----")


@pytest.mark.parametrize("value", [-1, 36501, True, "30"])
def test_the_window_is_validated_naming_the_option(value):
    with pytest.raises(ValidationError) as caught:
        expiry.validate_window(value)
    assert "expiring_within_days" in str(caught.value) and "0 to 36500" in str(caught.value)


def test_days_left_rounds_down_and_goes_negative():
    assert expiry.days_left(NOW + datetime.timedelta(hours=23), NOW) == 0
    assert expiry.days_left(NOW + datetime.timedelta(days=1), NOW) == 1
    assert expiry.days_left(NOW - datetime.timedelta(seconds=1), NOW) == -1


def test_without_a_readable_pem_the_description_field_is_used_else_nulls():
    view = expiry.add_expiry({}, None, {"notBefore": NOW, "notAfter": datetime.datetime(2049, 12, 31, 23, 59, 59)}, NOW)
    assert view["validity"]["not_after"] == "2049-12-31T23:59:59+00:00"
    assert view["days_left"] == 8427  # 2026-12-05 12:00 to 2049-12-31 23:59:59
    assert view["public_key"] is None
    assert expiry.add_expiry({}, "not a pem", None, NOW) == {"validity": None, "days_left": None, "public_key": None}


def test_include_attachments_adds_things_and_policies_with_two_list_calls_each(account):
    recorded, ids = account
    iot = recorded.client
    iot.create_policy(policyName="p1", policyDocument='{"Version": "2012-10-17", "Statement": []}')
    arn = iot.describe_certificate(certificateId=ids["soon"])["certificateDescription"]["certificateArn"]
    iot.attach_policy(policyName="p1", target=arn)
    recorded.calls.clear()
    answer = expiry.query_with_expiry(iot, CertificateQuery(thing="sensor"), now=NOW, include_attachments=True)
    certs = by_id(answer)
    assert certs[ids["soon"]]["things"] == ["sensor"] and certs[ids["soon"]]["policies"] == ["p1"]
    assert certs[ids["late"]]["things"] == ["sensor"] and certs[ids["late"]]["policies"] == []
    assert recorded.count("ListPrincipalThings") == 2 and recorded.count("ListAttachedPolicies") == 2
    assert recorded.mutating() == []
    # Without the option: neither the keys nor the calls.
    recorded.calls.clear()
    plain = by_id(expiry.query_with_expiry(iot, CertificateQuery(thing="sensor"), now=NOW))
    assert "things" not in plain[ids["soon"]] and recorded.count("ListPrincipalThings") == 0
