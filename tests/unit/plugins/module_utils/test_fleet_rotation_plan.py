"""The fleet's expiry and rotation rules, planned from a snapshot (no AWS): stages from AWS alone, selection,
refusals, confirmations, the expiry warning and failure."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto, fleet
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet import expiry, rotation

ARN = "arn:aws:iot:us-east-1:123456789012:cert/"
NOW = datetime.datetime(2026, 12, 5, 9, 0, tzinfo=datetime.timezone.utc)


def certificate(days: int, key=None) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a")])
    built = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=300))
        .not_valid_after(NOW + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return built.public_bytes(serialization.Encoding.PEM).decode()


def spec_of(devices=None, **extra):
    params = {"devices": devices or [{"name": "a", "certificate": "csr", "policies": ["p"]}], "fleet_group": "fg"}
    params.update(output_dir="/x", **extra)
    return fleet.validate_fleet(params)


def snapshot(certificates, facts=None, local=None):
    """Device ``a`` exists with ``certificates`` (id -> (status, created)) attached; no files unless ``local``."""
    return fleet.Snapshot(
        groups={"fg": {"a"}},
        things={"a": {"thing_type": None, "attributes": {}, "version": 1}},
        principals={"a": [ARN + cert_id for cert_id in certificates]},
        certificates={
            cert_id: {"arn": ARN + cert_id, "status": status, "created": created}
            for cert_id, (status, created) in certificates.items()
        },
        policy_targets={"p": {ARN + c for c in certificates}},
        local={"a": local or fleet.LocalDevice()},
        facts=facts or {},
    )


def facts(days, key_type="EC", bits=256, source="DescribeCertificate"):
    return expiry.CertFacts(NOW + datetime.timedelta(days=days), key_type, bits, source)


def plan_of(spec, snap):
    return fleet.plan_fleet(spec, snap, now=NOW).devices[0]


def test_expiry_is_reported_and_not_read_is_said():
    device = plan_of(spec_of(), snapshot({"c1": ("ACTIVE", 1)}))
    assert device.expiry == {
        "certificate_id": "c1",
        "not_after": None,
        "days_left": None,
        "validity": "not read",
        "key": None,
    }
    device = plan_of(spec_of(), snapshot({"c1": ("ACTIVE", 1)}, {"c1": facts(40)}))
    assert (device.expiry["not_after"], device.expiry["days_left"]) == ("2027-01-14T09:00:00Z", 40)
    assert device.action == "unchanged"


def test_expiry_warns_and_fails_naming_device_certificate_and_date():
    snap = snapshot({"c1": ("ACTIVE", 1)}, {"c1": facts(20)})
    device = plan_of(spec_of(certificate_expiry={"warn_within_days": 30}), snap)
    assert device.action == "unchanged"
    assert device.warnings == ["a (c1, expires 2026-12-25T09:00:00Z, 20 days left)"]
    device = plan_of(spec_of(certificate_expiry={"warn_within_days": 30, "fail_within_days": 20}), snap)
    assert device.action == "failed"
    assert "certificate c1 of device a expires 2026-12-25T09:00:00Z (20 days left)" in device.error
    device = plan_of(spec_of(certificate_expiry={"warn_within_days": 10, "fail_within_days": 19}), snap)
    assert (device.action, device.warnings) == ("unchanged", [])


def test_a_device_being_rotated_is_warned_about_not_failed():
    snap = snapshot({"c1": ("ACTIVE", 1)}, {"c1": facts(5)})
    spec = spec_of(certificate_expiry={"fail_within_days": 10}, rotation={"expiring_within_days": 30})
    device = plan_of(spec, snap)
    assert (device.action, device.changes) == ("update", ["rotate: issue new certificate"])
    assert "rotation: rotate: issue new certificate" in device.warnings[0]


@pytest.mark.parametrize(
    "rule, cert_facts, selected",
    [
        ({"expiring_within_days": 30}, facts(30), True),
        ({"expiring_within_days": 30}, facts(31), False),
        ({"key_minimum": {"ec_bits": 384}}, facts(9000), True),
        ({"key_minimum": {"ec_bits": 256}}, facts(9000), False),
        ({"key_minimum": {"rsa_bits": 3072}}, facts(9000, "RSA", 2048), True),
        ({"key_minimum": {"rsa_bits": 3072}}, facts(9000), False),  # an EC key: no RSA rule applies
        ({"devices": ["a"], "requested_on": "2026-12-05"}, None, True),
        ({"devices": ["a"], "requested_on": "1970-01-01"}, None, False),  # made after the request
    ],
)
def test_selection(rule, cert_facts, selected):
    snap = snapshot({"c1": ("ACTIVE", 1000)}, {"c1": cert_facts} if cert_facts else {})
    device = plan_of(spec_of(rotation=rule), snap)
    assert (device.rotation_stage == rotation.ISSUE) is selected
    assert (device.changes == ["rotate: issue new certificate"]) is selected


def test_a_new_csr_key_meets_the_ec_minimum():
    device = plan_of(
        spec_of(rotation={"key_minimum": {"ec_bits": 384}}), snapshot({"c1": ("ACTIVE", 1)}, {"c1": facts(9000)})
    )
    assert device.rotation.key_spec == {"type": "EC", "curve": "P-384"}


def test_stage_from_aws_alone_on_a_fresh_controller():
    certificates = {"old": ("ACTIVE", 1), "new": ("ACTIVE", 2)}
    device = plan_of(spec_of(rotation={"expiring_within_days": 30}), snapshot(certificates, {"old": facts(5)}))
    assert device.action == "unchanged"  # waiting is no change
    assert device.rotation.texts() == ["rotate: waiting for confirmation of new"]
    assert device.certificate_id == "new"
    confirmed = spec_of(rotation={"confirmed": ["a" * 64]})
    assert plan_of(confirmed, snapshot(certificates)).rotation_stage == rotation.WAITING
    new = "b" * 64
    certificates = {"old": ("ACTIVE", 1), new: ("ACTIVE", 2)}
    device = plan_of(spec_of(rotation={"confirmed": [new]}), snapshot(certificates))
    assert (device.action, device.changes) == ("update", ["rotate: retire old"])
    assert device.rotation.old == [("old", ARN + "old", "ACTIVE")]


def test_a_stopped_retire_goes_on_from_aws_alone():
    new = "b" * 64
    # UpdateCertificate INACTIVE ran, the run stopped: the confirmed new certificate's older ones still go.
    device = plan_of(spec_of(rotation={"confirmed": [new]}), snapshot({"old": ("INACTIVE", 1), new: ("ACTIVE", 2)}))
    assert device.changes == ["rotate: retire old"]
    # Without the confirmation an INACTIVE certificate beside the ACTIVE one is left alone (as before).
    device = plan_of(spec_of(), snapshot({"old": ("INACTIVE", 1), new: ("ACTIVE", 2)}))
    assert (device.action, device.rotation_stage) == ("unchanged", None)


def test_confirmation_by_device_mapping_names_the_new_certificate():
    new = "c" * 64
    certificates = {"old": ("ACTIVE", 1), new: ("ACTIVE", 2)}
    rule = rotation.RotationRule(confirmed_by_device={"a": {new}})
    spec = spec_of()
    spec.rotation = rule
    assert plan_of(spec, snapshot(certificates)).rotation_stage == rotation.RETIRE
    rule.confirmed_by_device = {"b": {new}}
    assert plan_of(spec, snapshot(certificates)).rotation_stage == rotation.WAITING


def test_pem_devices_are_refused_naming_the_device():
    pem = certificate(10)
    devices = [{"name": "a", "certificate": "pem", "certificate_pem": pem}]
    with pytest.raises(ValidationError, match="device a uses certificate: pem"):
        spec_of(devices, rotation={"devices": ["a"], "requested_on": "2026-12-05"})
    cert_id = crypto.certificate_id(pem)
    snap = snapshot({cert_id: ("ACTIVE", 1)}, {cert_id: expiry.facts_of_pem(pem, "file")})
    device = plan_of(spec_of(devices, rotation={"expiring_within_days": 30}), snap)
    assert device.action == "failed"
    assert "device a uses certificate: pem" in device.error and "expires" in device.error


@pytest.mark.parametrize(
    "rule, field",
    [
        ({"devices": ["a"]}, "rotation.requested_on"),
        ({"devices": ["zz"], "requested_on": "2026-12-05"}, "rotation.devices[0]"),
        ({"expiring_within_days": -1}, "rotation.expiring_within_days"),
        ({"key_minimum": {"rsa_bits": 1024}}, "rotation.key_minimum.rsa_bits"),
        ({"requested_on": "yesterday"}, "rotation.requested_on"),
        ({"confirmed": ["a"]}, "rotation.confirmed[0]"),
        ({"confirmed_file": "/nonexistent/confirmed.txt"}, "rotation.confirmed_file"),
        ({"rotate": True}, "rotation.rotate"),
    ],
)
def test_rotation_rule_refusals_name_the_field(rule, field):
    with pytest.raises(ValidationError) as caught:
        spec_of(rotation=rule)
    assert caught.value.field == field


def test_aws_keys_devices_cannot_meet_an_rsa_minimum_above_2048():
    devices = [{"name": "a", "certificate": "aws_keys"}]
    with pytest.raises(ValidationError, match="2048-bit RSA keys AWS makes"):
        spec_of(devices, rotation={"key_minimum": {"rsa_bits": 3072}})


def test_confirmation_files_in_each_form(tmp_path):
    one, two = "1" * 64, "2" * 64
    forms = {
        "lines.txt": (f"# confirmed\n{one}\n\n{two.upper()}  # from the presence rule\n", {one, two}, {}),
        "list.yml": (f"- {one}\n- {two}\n", {one, two}, {}),
        "list.json": f'["{one}"]',
        "map.yml": (f"a: {one}\nb: '{two}'\n", set(), {"a": {one}, "b": {two}}),
        "map.json": (f'{{"a": "{one}"}}', set(), {"a": {one}}),
    }
    forms["list.json"] = (forms["list.json"], {one}, {})
    for name, (text, ids, by_device) in forms.items():
        path = tmp_path / name
        path.write_text(text)
        rule = spec_of(rotation={"confirmed_file": str(path)}).rotation
        assert (rule.confirmed_ids, rule.confirmed_by_device) == (ids, by_device), name
    (tmp_path / "names.txt").write_text("a\n")
    with pytest.raises(ValidationError, match="a device name alone is never a confirmation"):
        spec_of(rotation={"confirmed_file": str(tmp_path / "names.txt")})


def test_a_device_csr_with_the_current_key_is_refused(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a")]))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "a.csr"
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    devices = [{"name": "a", "certificate": "csr", "rotation_csr_path": str(path)}]
    spec = spec_of(devices, rotation={"expiring_within_days": 30})
    pem = certificate(5, key)
    cert_id = crypto.certificate_id(pem)
    local = fleet.LocalDevice(cert_id=cert_id, cert_public=crypto.certificate_public_key(pem))
    device = plan_of(spec, snapshot({cert_id: ("ACTIVE", 1)}, {cert_id: facts(5)}, local))
    assert device.action == "failed" and "a rotation needs a CSR from a new key" in device.error
    with pytest.raises(ValidationError, match="only used with certificate: csr"):
        spec_of([{"name": "a", "certificate": "aws_keys", "rotation_csr_path": str(path)}])
    weak = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a")]))
        .sign(weak, hashes.SHA256())
    )
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ValidationError, match="below key_minimum"):
        spec_of(devices, rotation={"key_minimum": {"rsa_bits": 3072}})


def test_an_inactive_newer_certificate_blocks_a_new_step_1():
    device = plan_of(
        spec_of(rotation={"expiring_within_days": 30}),
        snapshot({"old": ("ACTIVE", 1), "half": ("INACTIVE", 2)}, {"old": facts(5)}),
    )
    assert device.action == "failed"
    assert "a step 1 stopped on another controller" in device.error


def test_waiting_devices_are_listed_in_the_plan_and_the_diff():
    plan = fleet.plan_fleet(spec_of(), snapshot({"old": ("ACTIVE", 1), "new": ("ACTIVE", 2)}), now=NOW)
    result = fleet.plan_result(plan)
    assert result["counts"]["unchanged"] == 1
    assert result["rotation"]["counts"]["waiting"] == 1
    assert result["devices"] == [
        {"name": "a", "action": "unchanged", "changes": [], "rotation": "rotate: waiting for confirmation of new"}
    ]
    diff = fleet.plan_diff(plan)
    assert diff[0]["after"]["rotation"] == "rotate: waiting for confirmation of new"


def test_two_active_certificates_of_the_same_moment_are_refused():
    device = plan_of(spec_of(), snapshot({"c1": ("ACTIVE", 5), "c2": ("ACTIVE", 5)}))
    assert device.action == "failed" and "which one is new cannot be told" in device.error
