"""Unit tests for CA registration (ca.py): validation, registration with verification, updates, tags, removal.

AWS is replaced by ``FakeIoT``, an in-memory stand-in with the AWS rules that matter here: the registration code
is stable, a DEFAULT-mode registration needs a verification certificate whose CN is that code and which the CA
signed, SNI_ONLY refuses one, a registered CA cannot be registered again, an ACTIVE CA cannot be deleted, and
ListCertificatesByCA answers in pages.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json

import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.iotfleet.provisioning.plugins.module_utils import ca
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/jitp"
MUTATING = {
    "register_ca_certificate",
    "update_ca_certificate",
    "delete_ca_certificate",
    "tag_resource",
    "untag_resource",
    "update_certificate",
    "detach_thing_principal",
    "detach_policy",
    "delete_certificate",
}
JITP_BODY = {
    "Parameters": {
        "AWS::IoT::Certificate::CommonName": {"Type": "String"},
        "AWS::IoT::Certificate::Id": {"Type": "String"},
    },
    "Resources": {
        "thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"}}},
        "certificate": {
            "Type": "AWS::IoT::Certificate",
            "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
        },
    },
}


# --- PKI helpers --------------------------------------------------------------------------------------------


def new_key():
    return ec.generate_private_key(ec.SECP256R1())


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def build(subject, issuer, public_key, signer, ca=False, days=30, start=None):
    start = start or datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    return builder.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def der_id(pem):
    return hashlib.sha256(
        x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    ).hexdigest()


def key_file(tmp_path, key, filename="ca.key"):
    path = tmp_path / filename
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(path)


@pytest.fixture
def pki(tmp_path):
    key = new_key()
    pem = build("Factory CA", "Factory CA", key.public_key(), key, ca=True)
    return {"key": key, "pem": pem, "id": der_id(pem), "key_path": key_file(tmp_path, key)}


# --- the fake AWS IoT ---------------------------------------------------------------------------------------


def client_error(code, operation, message="refused"):
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"RequestId": "r-1"}}, operation
    )


class FakeIoT:
    PAGE = 2
    CODE = "f" * 64

    def __init__(self):
        self.cas = {}
        self.tags = {}
        self.devices = {}  # id -> {certificateId, certificateArn, status, ca}
        self.things = {}  # device arn -> [thing names]
        self.policies = {}  # device arn -> [policy names]
        self.calls = []

    def mutating(self):
        return [op for op, _kwargs in self.calls if op in MUTATING]

    def can_paginate(self, _operation):
        return False

    def _ca(self, certificate_id, operation):
        if certificate_id not in self.cas:
            raise client_error("ResourceNotFoundException", operation)
        return self.cas[certificate_id]

    def _page(self, items, key, token_in, token_out, params):
        size = min(params.get("pageSize") or params.get("maxResults") or 25, self.PAGE)
        start = int(params.get(token_in) or 0)
        page = {key: items[start : start + size]}
        if start + size < len(items):
            page[token_out] = str(start + size)
        return page

    # CA calls
    def get_registration_code(self):
        self.calls.append(("get_registration_code", {}))
        return {"registrationCode": self.CODE}

    def register_ca_certificate(self, caCertificate, **kwargs):
        self.calls.append(("register_ca_certificate", dict(kwargs, caCertificate=caCertificate)))
        cert = x509.load_pem_x509_certificate(caCertificate.encode())
        mode = kwargs.get("certificateMode", "DEFAULT")
        verification = kwargs.get("verificationCertificate")
        if mode == "SNI_ONLY" and verification:
            raise client_error("InvalidRequestException", "RegisterCACertificate")
        if mode == "DEFAULT":
            if not verification:
                raise client_error("InvalidRequestException", "RegisterCACertificate")
            proof = x509.load_pem_x509_certificate(verification.encode())
            if proof.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value != self.CODE:
                raise client_error("RegistrationCodeValidationException", "RegisterCACertificate")
            cert.public_key().verify(proof.signature, proof.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
        cert_id = der_id(caCertificate)
        if cert_id in self.cas:
            raise client_error("ResourceAlreadyExistsException", "RegisterCACertificate")
        arn = f"arn:aws:iot:us-east-1:{ACCOUNT}:cacert/{cert_id}"
        self.cas[cert_id] = {
            "certificateDescription": {
                "certificateArn": arn,
                "certificateId": cert_id,
                "status": "ACTIVE" if kwargs.get("setAsActive") else "INACTIVE",
                "certificatePem": caCertificate,
                "ownedBy": ACCOUNT,
                "creationDate": datetime.datetime(2024, 5, 1, tzinfo=datetime.timezone.utc),
                "autoRegistrationStatus": "ENABLE" if kwargs.get("allowAutoRegistration") else "DISABLE",
                "certificateMode": mode,
                "customerVersion": 1,
                "generationId": "g-1",
            },
            "registrationConfig": dict(kwargs.get("registrationConfig") or {}),
        }
        self.tags[arn] = {t["Key"]: t["Value"] for t in kwargs.get("tags") or []}
        return {"certificateArn": arn, "certificateId": cert_id}

    def describe_ca_certificate(self, certificateId):
        self.calls.append(("describe_ca_certificate", {"certificateId": certificateId}))
        found = self._ca(certificateId, "DescribeCACertificate")
        return copy.deepcopy(found)

    def update_ca_certificate(self, certificateId, **kwargs):
        self.calls.append(("update_ca_certificate", dict(kwargs, certificateId=certificateId)))
        found = self._ca(certificateId, "UpdateCACertificate")
        description = found["certificateDescription"]
        if "newStatus" in kwargs:
            description["status"] = kwargs["newStatus"]
        if "newAutoRegistrationStatus" in kwargs:
            description["autoRegistrationStatus"] = kwargs["newAutoRegistrationStatus"]
        if "registrationConfig" in kwargs:
            found["registrationConfig"] = dict(kwargs["registrationConfig"])

    def delete_ca_certificate(self, certificateId):
        self.calls.append(("delete_ca_certificate", {"certificateId": certificateId}))
        found = self._ca(certificateId, "DeleteCACertificate")
        if found["certificateDescription"]["status"] == "ACTIVE":
            raise client_error("CertificateStateException", "DeleteCACertificate")
        del self.cas[certificateId]

    def list_certificates_by_ca(self, caCertificateId, **params):
        self.calls.append(("list_certificates_by_ca", dict(params, caCertificateId=caCertificateId)))
        items = [
            {k: d[k] for k in ("certificateId", "certificateArn", "status")}
            for d in self.devices.values()
            if d["ca"] == caCertificateId
        ]
        return self._page(items, "certificates", "marker", "nextMarker", params)

    # tags
    def list_tags_for_resource(self, resourceArn, **params):
        self.calls.append(("list_tags_for_resource", {"resourceArn": resourceArn}))
        items = [{"Key": k, "Value": v} for k, v in self.tags.get(resourceArn, {}).items()]
        return self._page(items, "tags", "nextToken", "nextToken", params)

    def tag_resource(self, resourceArn, tags):
        self.calls.append(("tag_resource", {"resourceArn": resourceArn, "tags": tags}))
        self.tags.setdefault(resourceArn, {}).update({t["Key"]: t["Value"] for t in tags})

    def untag_resource(self, resourceArn, tagKeys):
        self.calls.append(("untag_resource", {"resourceArn": resourceArn, "tagKeys": tagKeys}))
        for key in tagKeys:
            self.tags.get(resourceArn, {}).pop(key, None)

    # device certificates (what certificates.remove_certificate uses)
    def add_device(self, ca_id, index, things=(), policies=(), status="ACTIVE"):
        cert_id = hashlib.sha256(f"{ca_id}-{index}".encode()).hexdigest()
        arn = f"arn:aws:iot:us-east-1:{ACCOUNT}:cert/{cert_id}"
        self.devices[cert_id] = {"certificateId": cert_id, "certificateArn": arn, "status": status, "ca": ca_id}
        self.things[arn] = list(things)
        self.policies[arn] = list(policies)
        return cert_id

    def _device(self, cert_id, operation):
        if cert_id not in self.devices:
            raise client_error("ResourceNotFoundException", operation)
        return self.devices[cert_id]

    def update_certificate(self, certificateId, newStatus):
        self.calls.append(("update_certificate", {"certificateId": certificateId, "newStatus": newStatus}))
        self._device(certificateId, "UpdateCertificate")["status"] = newStatus

    def list_principal_things(self, principal, **params):
        self.calls.append(("list_principal_things", {"principal": principal}))
        return self._page(list(self.things.get(principal, [])), "things", "nextToken", "nextToken", params)

    def detach_thing_principal(self, thingName, principal):
        self.calls.append(("detach_thing_principal", {"thingName": thingName, "principal": principal}))
        self.things[principal].remove(thingName)

    def list_attached_policies(self, target, **params):
        self.calls.append(("list_attached_policies", {"target": target}))
        items = [{"policyName": p, "policyArn": f"arn:policy/{p}"} for p in self.policies.get(target, [])]
        return self._page(items, "policies", "marker", "nextMarker", params)

    def detach_policy(self, policyName, target):
        self.calls.append(("detach_policy", {"policyName": policyName, "target": target}))
        self.policies[target].remove(policyName)

    def delete_certificate(self, certificateId, forceDelete=False):
        self.calls.append(("delete_certificate", {"certificateId": certificateId}))
        device = self._device(certificateId, "DeleteCertificate")
        if device["status"] == "ACTIVE":
            raise client_error("CertificateStateException", "DeleteCertificate")
        if self.things[device["certificateArn"]] or self.policies[device["certificateArn"]]:
            raise client_error("DeleteConflictException", "DeleteCertificate")
        del self.devices[certificateId]


def params(**overrides):
    base = {
        "state": "present",
        "ca_certificate_pem": None,
        "ca_certificate_path": None,
        "certificate_id": None,
        "verification_certificate_pem": None,
        "ca_private_key_path": None,
        "certificate_mode": None,
        "status": None,
        "auto_registration": None,
        "registration_config": None,
        "tags": None,
        "purge_tags": True,
        "force": False,
    }
    base.update(overrides)
    return base


def present(iot, check_mode=False, **overrides):
    return ca.ensure_present(iot, ca.validate_ca_certificate(params(**overrides)), check_mode)


def absent(iot, check_mode=False, **overrides):
    return ca.ensure_absent(iot, ca.validate_ca_certificate(params(state="absent", **overrides)), check_mode)


# --- validation ---------------------------------------------------------------------------------------------


def test_the_ca_id_is_computed_locally_from_the_der(pki):
    desired = ca.validate_ca_certificate(params(ca_certificate_pem=pki["pem"]))
    assert desired.certificate_id == pki["id"]


def test_the_ca_can_be_read_from_a_file(pki, tmp_path):
    path = tmp_path / "ca.pem"
    path.write_text(pki["pem"])
    desired = ca.validate_ca_certificate(params(ca_certificate_path=str(path), ca_private_key_path=pki["key_path"]))
    assert desired.certificate_id == pki["id"] and desired.ca_private_key is not None


def invalid(**overrides):
    with pytest.raises(ValidationError) as error:
        ca.validate_ca_certificate(params(**overrides))
    return error.value


def test_exactly_one_ca_source(pki):
    error = invalid()
    assert error.field == "ca_certificate_pem, ca_certificate_path, certificate_id"
    error = invalid(ca_certificate_pem=pki["pem"], certificate_id=pki["id"])
    assert error.field == "ca_certificate_pem, certificate_id" and "exactly one" in error.rule


def test_a_certificate_that_is_not_a_ca_is_refused():
    key = new_key()
    leaf = build("device", "device", key.public_key(), key, ca=False)
    error = invalid(ca_certificate_pem=leaf)
    assert error.field == "ca_certificate_pem" and "is not a CA certificate" in error.rule


def test_garbage_instead_of_a_certificate_is_refused():
    error = invalid(ca_certificate_pem="hello")
    assert error.field == "ca_certificate_pem" and "PEM-encoded X.509 certificate" in error.rule


def test_a_missing_ca_file_is_refused(tmp_path):
    error = invalid(ca_certificate_path=str(tmp_path / "nope.pem"))
    assert error.field == "ca_certificate_path" and "does not exist" in error.rule


def test_a_malformed_certificate_id_is_refused():
    error = invalid(certificate_id="abc")
    assert error.field == "certificate_id" and "64 hexadecimal characters" in error.rule


def test_sni_only_takes_no_verification(pki):
    error = invalid(ca_certificate_pem=pki["pem"], certificate_mode="SNI_ONLY", ca_private_key_path=pki["key_path"])
    assert error.field == "ca_private_key_path" and "SNI_ONLY" in error.rule
    proof = build(FakeIoT.CODE, "Factory CA", new_key().public_key(), pki["key"])
    error = invalid(ca_certificate_pem=pki["pem"], certificate_mode="SNI_ONLY", verification_certificate_pem=proof)
    assert (
        error.field == "verification_certificate_pem"
        and "must not be given with certificate_mode SNI_ONLY" in error.rule
    )


def test_verification_certificate_and_ca_key_are_mutually_exclusive(pki):
    proof = build(FakeIoT.CODE, "Factory CA", new_key().public_key(), pki["key"])
    error = invalid(
        ca_certificate_pem=pki["pem"], verification_certificate_pem=proof, ca_private_key_path=pki["key_path"]
    )
    assert error.field == "verification_certificate_pem, ca_private_key_path" and "mutually exclusive" in error.rule


def test_a_ca_key_that_does_not_match_the_ca_is_refused(pki, tmp_path):
    other = key_file(tmp_path, new_key(), "other.key")
    error = invalid(ca_certificate_pem=pki["pem"], ca_private_key_path=other)
    assert error.field == "ca_private_key_path" and "does not match the public key of the CA certificate" in error.rule


def test_a_verification_certificate_not_issued_by_the_ca_is_refused(pki):
    impostor = new_key()
    forged = build(FakeIoT.CODE, "Factory CA", new_key().public_key(), impostor)
    error = invalid(ca_certificate_pem=pki["pem"], verification_certificate_pem=forged)
    assert error.field == "verification_certificate_pem" and "is not issued by the CA certificate" in error.rule


def test_verification_needs_the_ca_pem(pki):
    error = invalid(certificate_id=pki["id"], ca_private_key_path=pki["key_path"])
    assert error.field == "ca_private_key_path" and "only used with ca_certificate_pem" in error.rule


@pytest.mark.parametrize(
    "config, field, rule",
    [
        (
            {"template_body": JITP_BODY},
            "registration_config.role_arn",
            "is required with registration_config.template_body",
        ),
        (
            {"template_name": "t", "template_body": JITP_BODY, "role_arn": ROLE},
            "registration_config.template_name, registration_config.template_body",
            "mutually exclusive",
        ),
        ({"template_name": "t", "role_arn": ROLE}, "registration_config.role_arn", "only used with template_body"),
        ({"template_name": "bad name"}, "registration_config.template_name", "1-36 characters"),
        (
            {"template_body": JITP_BODY, "role_arn": "arn:aws:iam::1:user/x"},
            "registration_config.role_arn",
            "IAM role ARN",
        ),
        ({}, "registration_config", "needs template_name"),
        (
            {"template_body": dict(JITP_BODY, Parameters={"Serial": {"Type": "String"}}), "role_arn": ROLE},
            "registration_config.template_body.Parameters.Serial",
            "a JITP template can only use the parameters AWS takes from the device certificate",
        ),
        ({"template_body": "{not json", "role_arn": ROLE}, "registration_config.template_body", "not valid JSON"),
    ],
)
def test_registration_config_rules(pki, config, field, rule):
    full = {"template_name": None, "template_body": None, "role_arn": None}
    full.update(config)
    error = invalid(ca_certificate_pem=pki["pem"], registration_config=full if config else {})
    assert error.field == field
    assert rule in error.rule


def test_reserved_tags_are_refused(pki):
    error = invalid(ca_certificate_pem=pki["pem"], tags={"aws:owner": "x"})
    assert error.field == "tags" and "reserved" in error.rule


# --- registration -------------------------------------------------------------------------------------------


def test_register_default_mode_with_a_verification_certificate_made_from_the_ca_key(pki):
    iot = FakeIoT()
    done = present(iot, ca_certificate_pem=pki["pem"], ca_private_key_path=pki["key_path"])
    changed, before, after = done.changed, done.before, done.after
    assert changed and before is None
    assert [op for op, _kwargs in iot.calls if op != "describe_ca_certificate"] == [
        "get_registration_code",
        "register_ca_certificate",
    ]
    request = dict(iot.calls)["register_ca_certificate"]
    proof = x509.load_pem_x509_certificate(request["verificationCertificate"].encode())
    assert proof.subject.rfc4514_string() == f"CN={FakeIoT.CODE}"
    assert request["setAsActive"] is True and request["certificateMode"] == "DEFAULT"
    assert "allowAutoRegistration" not in request and "registrationConfig" not in request
    assert after == {
        "certificate_id": pki["id"],
        "arn": f"arn:aws:iot:us-east-1:{ACCOUNT}:cacert/{pki['id']}",
        "status": "ACTIVE",
        "auto_registration_status": "DISABLE",
        "registration_config": None,
        "certificate_mode": "DEFAULT",
        "creation_date": "2024-05-01T00:00:00+00:00",
    }


def test_check_mode_predicts_the_registration_without_any_mutating_call(pki):
    iot = FakeIoT()
    done = present(
        iot,
        check_mode=True,
        ca_certificate_pem=pki["pem"],
        ca_private_key_path=pki["key_path"],
        auto_registration=True,
        registration_config={"template_name": "factory", "template_body": None, "role_arn": None},
        tags={"team": "fleet"},
    )
    changed, before, after = done.changed, done.before, done.after
    assert changed and before is None
    assert iot.mutating() == [] and iot.cas == {}
    assert after == {
        "certificate_id": pki["id"],
        "arn": None,
        "status": "ACTIVE",
        "auto_registration_status": "ENABLE",
        "registration_config": {"template_name": "factory"},
        "certificate_mode": "DEFAULT",
        "creation_date": None,
        "tags": {"team": "fleet"},
    }


def test_a_second_run_changes_nothing_and_makes_no_mutating_call(pki):
    iot = FakeIoT()
    options = dict(
        ca_certificate_pem=pki["pem"],
        ca_private_key_path=pki["key_path"],
        auto_registration=True,
        status="ACTIVE",
        registration_config={"template_name": None, "template_body": JITP_BODY, "role_arn": ROLE},
        tags={"team": "fleet"},
    )
    first = present(iot, **options)
    iot.calls.clear()
    for check_mode in (True, False):
        done = present(iot, check_mode=check_mode, **options)
        changed, before, after = done.changed, done.before, done.after
        assert not changed and before == after == first.after
    assert iot.mutating() == []
    assert "get_registration_code" not in [op for op, _kwargs in iot.calls]


def test_a_template_body_with_other_formatting_is_no_change(pki):
    iot = FakeIoT()
    body = {"template_name": None, "template_body": JITP_BODY, "role_arn": ROLE}
    present(iot, ca_certificate_pem=pki["pem"], ca_private_key_path=pki["key_path"], registration_config=body)
    reformatted = dict(body, template_body=json.dumps(JITP_BODY, indent=4, sort_keys=True))
    done = present(iot, ca_certificate_pem=pki["pem"], registration_config=reformatted)
    changed, after = done.changed, done.after
    assert not changed
    assert after["registration_config"] == {"template_body": JITP_BODY, "role_arn": ROLE}


def test_register_with_a_given_verification_certificate(pki):
    iot = FakeIoT()
    proof = build(FakeIoT.CODE, "Factory CA", new_key().public_key(), pki["key"])
    done = present(iot, ca_certificate_pem=pki["pem"], verification_certificate_pem=proof)
    changed, after = done.changed, done.after
    assert changed and after["status"] == "ACTIVE"
    assert dict(iot.calls)["register_ca_certificate"]["verificationCertificate"] == proof
    assert "get_registration_code" not in [op for op, _kwargs in iot.calls]


def test_register_sni_only_sends_no_verification(pki):
    iot = FakeIoT()
    done = present(iot, ca_certificate_pem=pki["pem"], certificate_mode="SNI_ONLY", status="INACTIVE")
    changed, after = done.changed, done.after
    request = dict(iot.calls)["register_ca_certificate"]
    assert changed and "verificationCertificate" not in request
    assert request["certificateMode"] == "SNI_ONLY" and request["setAsActive"] is False
    assert after["certificate_mode"] == "SNI_ONLY" and after["status"] == "INACTIVE"
    assert not present(iot, ca_certificate_pem=pki["pem"], certificate_mode="SNI_ONLY").changed


def test_default_mode_registration_needs_a_verification_source(pki):
    iot = FakeIoT()
    with pytest.raises(ValidationError) as error:
        present(iot, ca_certificate_pem=pki["pem"])
    assert error.value.field == "verification_certificate_pem, ca_private_key_path"
    assert "one is required to register a CA in DEFAULT mode" in error.value.rule
    assert iot.mutating() == []


def test_a_registered_ca_needs_no_verification_source(pki):
    iot = FakeIoT()
    present(iot, ca_certificate_pem=pki["pem"], ca_private_key_path=pki["key_path"])
    done = present(iot, ca_certificate_pem=pki["pem"], status="INACTIVE")
    changed, after = done.changed, done.after
    assert changed and after["status"] == "INACTIVE"


def test_an_expired_ca_is_not_registered(pki, tmp_path):
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=10)
    expired = build("Old CA", "Old CA", pki["key"].public_key(), pki["key"], ca=True, days=1, start=start)
    iot = FakeIoT()
    with pytest.raises(ValidationError) as error:
        present(iot, ca_certificate_pem=expired, ca_private_key_path=pki["key_path"])
    assert error.value.field == "ca_certificate_pem" and "expired" in error.value.rule
    assert iot.mutating() == []


def test_a_certificate_id_cannot_register(pki):
    iot = FakeIoT()
    with pytest.raises(ValidationError) as error:
        present(iot, certificate_id=pki["id"])
    assert (
        error.value.field == "certificate_id" and "give ca_certificate_pem or ca_certificate_path" in error.value.rule
    )


# --- updates ------------------------------------------------------------------------------------------------


def registered(pki, **options):
    iot = FakeIoT()
    present(iot, ca_certificate_pem=pki["pem"], ca_private_key_path=pki["key_path"], **options)
    iot.calls.clear()
    return iot


def test_status_and_auto_registration_change_in_place_in_one_call(pki):
    iot = registered(pki)
    done = present(iot, check_mode=True, certificate_id=pki["id"], status="INACTIVE", auto_registration=True)
    changed, before, after = done.changed, done.before, done.after
    assert changed and iot.mutating() == []
    assert (before["status"], before["auto_registration_status"]) == ("ACTIVE", "DISABLE")
    assert (after["status"], after["auto_registration_status"]) == ("INACTIVE", "ENABLE")
    done = present(iot, certificate_id=pki["id"], status="INACTIVE", auto_registration=True)
    changed, real_after = done.changed, done.after
    assert changed and real_after == after
    assert [c for c in iot.calls if c[0] in MUTATING] == [
        (
            "update_ca_certificate",
            {"certificateId": pki["id"], "newStatus": "INACTIVE", "newAutoRegistrationStatus": "ENABLE"},
        )
    ]


def test_unset_options_leave_the_remote_values_alone(pki):
    iot = registered(
        pki,
        auto_registration=True,
        registration_config={"template_name": "factory", "template_body": None, "role_arn": None},
    )
    done = present(iot, ca_certificate_pem=pki["pem"])
    changed, after = done.changed, done.after
    assert not changed and iot.mutating() == []
    assert after["registration_config"] == {"template_name": "factory"}
    assert after["auto_registration_status"] == "ENABLE"


def test_registration_config_is_replaced_when_different(pki):
    iot = registered(pki, registration_config={"template_name": "factory", "template_body": None, "role_arn": None})
    body = {"template_name": None, "template_body": JITP_BODY, "role_arn": ROLE}
    done = present(iot, certificate_id=pki["id"], registration_config=body)
    changed, before, after = done.changed, done.before, done.after
    assert changed
    assert before["registration_config"] == {"template_name": "factory"}
    assert after["registration_config"] == {"template_body": JITP_BODY, "role_arn": ROLE}
    request = dict(iot.calls)["update_ca_certificate"]
    assert set(request) == {"certificateId", "registrationConfig"}
    assert json.loads(request["registrationConfig"]["templateBody"]) == JITP_BODY
    back = {"template_name": "factory", "template_body": None, "role_arn": None}
    assert present(iot, certificate_id=pki["id"], registration_config=back).after["registration_config"] == {
        "template_name": "factory"
    }


def test_a_different_certificate_mode_is_refused_without_a_call(pki):
    iot = registered(pki)
    with pytest.raises(ValidationError) as error:
        present(iot, ca_certificate_pem=pki["pem"], certificate_mode="SNI_ONLY")
    assert error.value.field == "certificate_mode"
    assert "registered in DEFAULT mode" in error.value.rule and "state=absent" in error.value.rule
    assert iot.mutating() == []


def test_tags_replace_merge_and_keep_aws_tags(pki):
    iot = registered(pki, tags={"team": "fleet", "env": "dev"})
    arn = iot.cas[pki["id"]]["certificateDescription"]["certificateArn"]
    assert iot.tags[arn] == {"team": "fleet", "env": "dev"}
    iot.tags[arn]["aws:cloudformation:stack"] = "s"

    done = present(iot, certificate_id=pki["id"], tags={"owner": "ops"}, purge_tags=False)
    changed, after = done.changed, done.after
    assert changed and after["tags"] == {"team": "fleet", "env": "dev", "aws:cloudformation:stack": "s", "owner": "ops"}
    assert iot.mutating() == ["tag_resource"]

    iot.calls.clear()
    done = present(iot, certificate_id=pki["id"], tags={"owner": "ops"})
    changed, after = done.changed, done.after
    assert changed and after["tags"] == {"aws:cloudformation:stack": "s", "owner": "ops"}
    assert dict(iot.calls)["untag_resource"]["tagKeys"] == ["team", "env"]
    assert "tag_resource" not in iot.mutating()

    iot.calls.clear()
    assert not present(iot, certificate_id=pki["id"], tags={"owner": "ops"}).changed
    assert iot.mutating() == []


def test_tags_are_not_read_when_not_managed(pki):
    iot = registered(pki)
    done = present(iot, certificate_id=pki["id"], status="ACTIVE")
    after = done.after
    assert "tags" not in after
    assert "list_tags_for_resource" not in [op for op, _kwargs in iot.calls]


# --- removal ------------------------------------------------------------------------------------------------


def test_remove_sets_inactive_then_deletes(pki):
    iot = registered(pki)
    done = absent(iot, check_mode=True, ca_certificate_pem=pki["pem"])
    changed, before, after, removed = done.changed, done.before, done.after, done.extra["removed_device_certificates"]
    assert changed and before["status"] == "ACTIVE" and after is None and removed == []
    assert iot.mutating() == [] and pki["id"] in iot.cas
    done = absent(iot, ca_certificate_pem=pki["pem"])
    changed, removed = done.changed, done.extra["removed_device_certificates"]
    assert changed and removed == [] and iot.cas == {}
    assert iot.mutating() == ["update_ca_certificate", "delete_ca_certificate"]
    iot.calls.clear()
    done = absent(iot, ca_certificate_pem=pki["pem"])
    assert (done.changed, done.before, done.after, done.extra["removed_device_certificates"]) == (False, None, None, [])
    assert iot.mutating() == []


def test_removal_is_refused_while_device_certificates_are_registered(pki):
    iot = registered(pki)
    for index in range(3):
        iot.add_device(pki["id"], index)
    for check_mode in (True, False):
        with pytest.raises(ValidationError) as error:
            absent(iot, check_mode=check_mode, certificate_id=pki["id"])
        assert error.value.field == "force"
        assert "3 device certificates are still registered" in error.value.rule
    assert iot.mutating() == [] and pki["id"] in iot.cas
    # Every page was read (the fake answers two per page).
    pages = [kwargs for op, kwargs in iot.calls if op == "list_certificates_by_ca"]
    assert pages[1]["marker"] == "2"


def test_force_removes_device_certificates_in_the_safe_order_first(pki):
    iot = registered(pki)
    first = iot.add_device(pki["id"], 0, things=["sensor-1"], policies=["p1", "p2"])
    second = iot.add_device(pki["id"], 1, status="INACTIVE")
    third = iot.add_device(pki["id"], 2)
    other_ca = iot.add_device("0" * 64, 3)
    done = absent(iot, check_mode=True, ca_certificate_pem=pki["pem"], force=True)
    changed, removed = done.changed, done.extra["removed_device_certificates"]
    assert changed and removed == sorted([first, second, third]) and iot.mutating() == []

    done = absent(iot, ca_certificate_pem=pki["pem"], force=True)
    changed, removed = done.changed, done.extra["removed_device_certificates"]
    assert changed and removed == sorted([first, second, third])
    assert list(iot.devices) == [other_ca] and iot.cas == {}
    first_steps = [
        op
        for op, kwargs in iot.calls
        if op in MUTATING and first in json.dumps(kwargs) and op != "list_principal_things"
    ]
    assert first_steps == [
        "update_certificate",
        "detach_thing_principal",
        "detach_policy",
        "detach_policy",
        "delete_certificate",
    ]
    ops = iot.mutating()
    assert ops[-2:] == ["update_ca_certificate", "delete_ca_certificate"]
    # The INACTIVE device certificate is not updated again.
    assert ("update_certificate", {"certificateId": second, "newStatus": "INACTIVE"}) not in iot.calls


@pytest.mark.parametrize(
    "config, field",
    [
        ({"template_name": "jitp-template\n"}, "registration_config.template_name"),
        (
            {"template_body": "{}", "role_arn": "arn:aws:iam::123456789012:role/provisioning\n"},
            "registration_config.role_arn",
        ),
    ],
)
def test_registration_config_names_are_matched_whole(config, field):
    # Python's '$' also matches before a final line break: a name ending in one must not pass.
    with pytest.raises(ValidationError) as caught:
        ca.validate_registration_config(config)
    assert caught.value.field == field
