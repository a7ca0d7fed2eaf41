"""Unit tests for the certificate family: validation, location, planning, create/remove order, info, principals.

AWS is replaced by ``FakeIoT``, a small in-memory stand-in that behaves as the AWS documentation says where it
matters here: certificate ids are the SHA-256 of the DER, CreateCertificateFromCsr signs the CSR's own key, an ACTIVE
or attached certificate cannot be deleted, list calls come in pages.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import stat

import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.iotfleet.provisioning.plugins.module_utils import certificates as certs
from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import AwsCallError, ValidationError

ACCOUNT = "123456789012"
MUTATING = (
    "create_keys_and_certificate",
    "create_certificate_from_csr",
    "register_certificate",
    "register_certificate_without_ca",
    "update_certificate",
    "delete_certificate",
    "attach_thing_principal",
    "detach_thing_principal",
    "attach_policy",
    "detach_policy",
)

# --- PKI helpers --------------------------------------------------------------------------------------------


def new_key():
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def issue(public_key, signer, subject: str = "device", issuer: str = "device") -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(signer, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def self_signed(key, cn: str = "device") -> str:
    return issue(key.public_key(), key, cn, cn)


def csr_pem(key, cn: str = "device") -> str:
    csr = x509.CertificateSigningRequestBuilder().subject_name(name(cn)).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def der_id(pem: str) -> str:
    return hashlib.sha256(
        x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    ).hexdigest()


# --- the fake AWS IoT ---------------------------------------------------------------------------------------


def client_error(code: str, message: str, operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"RequestId": "req-123"}}, operation
    )


class FakeIoT:
    """Just enough of AWS IoT for the certificate family, with AWS's rules and two-item pages."""

    PAGE = 2

    def __init__(self):
        self.certificates = {}
        self.things = set()
        self.policies = set()
        self.thing_principals = {}  # (arn, thing) -> type
        self.attached = set()  # (arn, policy)
        self.calls = []
        self.fail = {}  # operation -> ClientError raised on its next call
        self._ca_key = new_key()
        self._clock = 0

    # helpers
    def _record(self, op, **kwargs):
        self.calls.append((op, kwargs))
        if op in self.fail:
            raise self.fail.pop(op)

    def mutating_calls(self):
        return [op for op, _unused in self.calls if op in MUTATING]

    def _add(self, pem, status, ca_id=None):
        cert_id = der_id(pem)
        if cert_id in self.certificates:
            raise client_error("ResourceAlreadyExistsException", "exists", "RegisterCertificate")
        self._clock += 1
        self.certificates[cert_id] = {
            "certificateId": cert_id,
            "certificateArn": f"arn:aws:iot:us-east-1:{ACCOUNT}:cert/{cert_id}",
            "status": status,
            "certificatePem": pem,
            "creationDate": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
            + datetime.timedelta(seconds=self._clock),
            **({"caCertificateId": ca_id} if ca_id else {}),
        }
        return self.certificates[cert_id]

    def _cert(self, cert_id, op):
        if cert_id not in self.certificates:
            raise client_error("ResourceNotFoundException", f"certificate {cert_id} not found", op)
        return self.certificates[cert_id]

    def _by_arn(self, arn, op):
        for cert in self.certificates.values():
            if cert["certificateArn"] == arn:
                return cert
        raise client_error("ResourceNotFoundException", "principal not found", op)

    def _page(self, items, key, token_in, token_out, params):
        start = int(params.get(token_in) or 0)
        chunk = items[start : start + self.PAGE]
        page = {key: chunk}
        if start + self.PAGE < len(items):
            page[token_out] = str(start + self.PAGE)
        return page

    def can_paginate(self, _operation):
        return False

    # certificates
    def create_keys_and_certificate(self, setAsActive=False):
        self._record("create_keys_and_certificate", setAsActive=setAsActive)
        key = new_key()
        cert = self._add(self_signed(key, "AWS IoT Certificate"), "ACTIVE" if setAsActive else "INACTIVE")
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {
            "certificateArn": cert["certificateArn"],
            "certificateId": cert["certificateId"],
            "certificatePem": cert["certificatePem"],
            "keyPair": {"PublicKey": public.decode(), "PrivateKey": key_pem(key)},
        }

    def create_certificate_from_csr(self, certificateSigningRequest, setAsActive=False):
        self._record("create_certificate_from_csr", setAsActive=setAsActive)
        csr = x509.load_pem_x509_csr(certificateSigningRequest.encode())
        pem = issue(csr.public_key(), self._ca_key, "device", "Amazon Web Services")
        cert = self._add(pem, "ACTIVE" if setAsActive else "INACTIVE")
        return {k: cert[k] for k in ("certificateArn", "certificateId", "certificatePem")}

    def register_certificate(self, certificatePem, caCertificatePem=None, status=None, setAsActive=None):
        self._record("register_certificate", status=status)
        cert = self._add(certificatePem, status or "INACTIVE", der_id(caCertificatePem) if caCertificatePem else None)
        return {k: cert[k] for k in ("certificateArn", "certificateId")}

    def register_certificate_without_ca(self, certificatePem, status=None):
        self._record("register_certificate_without_ca", status=status)
        cert = self._add(certificatePem, status or "INACTIVE")
        return {k: cert[k] for k in ("certificateArn", "certificateId")}

    def describe_certificate(self, certificateId):
        self._record("describe_certificate", certificateId=certificateId)
        return {"certificateDescription": dict(self._cert(certificateId, "DescribeCertificate"))}

    def update_certificate(self, certificateId, newStatus):
        self._record("update_certificate", certificateId=certificateId, newStatus=newStatus)
        self._cert(certificateId, "UpdateCertificate")["status"] = newStatus

    def delete_certificate(self, certificateId, forceDelete=False):
        self._record("delete_certificate", certificateId=certificateId)
        cert = self._cert(certificateId, "DeleteCertificate")
        if cert["status"] == "ACTIVE":
            raise client_error("CertificateStateException", "deactivate first", "DeleteCertificate")
        arn = cert["certificateArn"]
        if any(a == arn for a, _unused in self.thing_principals):
            raise client_error("DeleteConflictException", "things attached", "DeleteCertificate")
        if any(a == arn for a, _unused in self.attached) and not forceDelete:
            raise client_error("DeleteConflictException", "policies attached", "DeleteCertificate")
        del self.certificates[certificateId]

    def list_certificates(self, **params):
        self._record("list_certificates", **params)
        items = [
            {k: c[k] for k in ("certificateId", "certificateArn", "status", "creationDate")}
            for c in self.certificates.values()
        ]
        return self._page(items, "certificates", "marker", "nextMarker", params)

    def list_certificates_by_ca(self, caCertificateId, **params):
        self._record("list_certificates_by_ca", caCertificateId=caCertificateId, **params)
        # The Certificate shape of list calls has no caCertificateId (only DescribeCertificate reports it).
        items = [
            {k: c[k] for k in ("certificateId", "certificateArn", "status", "creationDate")}
            for c in self.certificates.values()
            if c.get("caCertificateId") == caCertificateId
        ]
        return self._page(items, "certificates", "marker", "nextMarker", params)

    # things and principals
    def list_thing_principals(self, thingName, **params):
        self._record("list_thing_principals", thingName=thingName, **params)
        if thingName not in self.things:
            raise client_error("ResourceNotFoundException", f"thing {thingName} does not exist", "ListThingPrincipals")
        items = [a for a, t in self.thing_principals if t == thingName]
        return self._page(items, "principals", "nextToken", "nextToken", params)

    def list_thing_principals_v2(self, thingName, **params):
        self._record("list_thing_principals_v2", thingName=thingName, **params)
        if thingName not in self.things:
            raise client_error("ResourceNotFoundException", "no thing", "ListThingPrincipalsV2")
        items = [
            {"principal": a, "thingPrincipalType": kind}
            for (a, t), kind in self.thing_principals.items()
            if t == thingName
        ]
        return self._page(items, "thingPrincipalObjects", "nextToken", "nextToken", params)

    def list_principal_things(self, principal, **params):
        self._record("list_principal_things", principal=principal, **params)
        items = [t for a, t in self.thing_principals if a == principal]
        return self._page(items, "things", "nextToken", "nextToken", params)

    def attach_thing_principal(self, thingName, principal, thingPrincipalType=None):
        self._record("attach_thing_principal", thingName=thingName, principal=principal, type=thingPrincipalType)
        if thingName not in self.things:
            raise client_error("ResourceNotFoundException", "no thing", "AttachThingPrincipal")
        self._by_arn(principal, "AttachThingPrincipal")
        self.thing_principals[(principal, thingName)] = thingPrincipalType or "NON_EXCLUSIVE_THING"

    def detach_thing_principal(self, thingName, principal):
        self._record("detach_thing_principal", thingName=thingName, principal=principal)
        self.thing_principals.pop((principal, thingName), None)

    # policies
    def attach_policy(self, policyName, target):
        self._record("attach_policy", policyName=policyName, target=target)
        if policyName not in self.policies:
            raise client_error("ResourceNotFoundException", f"policy {policyName} not found", "AttachPolicy")
        self.attached.add((target, policyName))

    def detach_policy(self, policyName, target):
        self._record("detach_policy", policyName=policyName, target=target)
        self.attached.discard((target, policyName))

    def get_policy(self, policyName):
        self._record("get_policy", policyName=policyName)
        if policyName not in self.policies:
            raise client_error("ResourceNotFoundException", f"policy {policyName} not found", "GetPolicy")
        return {"policyName": policyName}

    def list_attached_policies(self, target, **params):
        self._record("list_attached_policies", target=target, **params)
        items = [{"policyName": p, "policyArn": f"arn:policy/{p}"} for a, p in sorted(self.attached) if a == target]
        return self._page(items, "policies", "marker", "nextMarker", params)


@pytest.fixture
def iot():
    fake = FakeIoT()
    fake.things.update({"dev-1", "dev-2"})
    fake.policies.update({"pol-a", "pol-b", "pol-c"})
    return fake


def params(**kwargs):
    base = dict(
        state="present",
        create_keys=False,
        private_key_path=None,
        csr=None,
        csr_path=None,
        certificate_pem=None,
        certificate_pem_path=None,
        ca_certificate_pem=None,
        certificate_id=None,
        certificate_path=None,
        status=None,
        thing=None,
        policies=None,
        purge_policies=True,
    )
    base.update(kwargs)
    return base


def present(iot, check_mode=False, **kwargs):
    warnings = []
    result = certs.ensure_present(iot, certs.validate_certificate(params(**kwargs)), check_mode, warnings.append)
    return result, warnings


def absent(iot, check_mode=False, **kwargs):
    desired = certs.validate_certificate(params(state="absent", **kwargs))
    return certs.ensure_absent(iot, desired, check_mode, sleep=lambda _s: None)


# --- validation ---------------------------------------------------------------------------------------------


def test_two_sources_are_refused_naming_both(tmp_path):
    key = new_key()
    with pytest.raises(ValidationError) as caught:
        certs.validate_certificate(params(csr=csr_pem(key), certificate_pem=self_signed(key), thing="dev-1"))
    assert caught.value.field == "csr, certificate_pem"
    assert "mutually exclusive" in caught.value.rule


def test_create_keys_false_does_not_count_as_a_source():
    desired = certs.validate_certificate(params(create_keys=False, csr=csr_pem(new_key()), thing="dev-1"))
    assert desired.source == "csr"


def test_create_keys_needs_private_key_path(tmp_path):
    with pytest.raises(ValidationError) as caught:
        certs.validate_certificate(params(create_keys=True, certificate_path=str(tmp_path / "c.pem")))
    assert caught.value.field == "private_key_path"
    assert "required when create_keys is true" in str(caught.value)


@pytest.mark.parametrize("source", ["create_keys", "csr"])
def test_made_certificates_need_a_way_to_be_found_again(tmp_path, source):
    kwargs = (
        dict(create_keys=True, private_key_path=str(tmp_path / "k.key"))
        if source == "create_keys"
        else dict(csr=csr_pem(new_key()))
    )
    with pytest.raises(ValidationError) as caught:
        certs.validate_certificate(params(**kwargs))
    assert caught.value.field == "certificate_path, thing"
    assert f"at least one is required with {'create_keys' if source == 'create_keys' else 'csr'}" in caught.value.rule


@pytest.mark.parametrize("status", ["PENDING_ACTIVATION", "PENDING_TRANSFER", "REGISTER_INACTIVE", "active"])
def test_status_must_be_settable(status):
    with pytest.raises(ValidationError) as caught:
        certs.validate_certificate(params(certificate_id="a" * 64, status=status))
    assert caught.value.field == "status"
    assert "ACTIVE, INACTIVE, REVOKED" in caught.value.rule
    assert status in caught.value.rule


@pytest.mark.parametrize("value", ["abc", "a" * 63, "z" * 64, "0x" + "a" * 62, "a" * 65])
def test_certificate_id_must_be_64_hex(value):
    with pytest.raises(ValidationError) as caught:
        certs.validate_certificate(params(certificate_id=value))
    assert caught.value.field == "certificate_id"
    assert "64 hexadecimal characters" in caught.value.rule


def test_certificate_id_is_lowercased():
    assert certs.validate_certificate(params(certificate_id="AB" * 32)).certificate_id == "ab" * 32


@pytest.mark.parametrize(
    "option, value, rule",
    [
        ("csr", "not a csr", "is not a PEM-encoded certificate signing request"),
        ("certificate_pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", "not a valid PEM"),
        ("csr", "x" * 4097, "at most 4096 characters"),
        ("certificate_pem", "   ", "is empty"),
    ],
)
def test_malformed_content_is_refused(option, value, rule, tmp_path):
    with pytest.raises(ValidationError) as caught:
        certs.validate_certificate(params(**{option: value}, certificate_path=str(tmp_path / "c.pem")))
    assert caught.value.field == option
    assert rule in caught.value.rule


def test_paths_are_read_and_their_errors_name_the_option(tmp_path):
    with pytest.raises(ValidationError) as caught:
        certs.validate_certificate(params(csr_path=str(tmp_path / "missing.csr"), thing="dev-1"))
    assert caught.value.field == "csr_path"
    assert "does not exist" in caught.value.rule
    bad = tmp_path / "bad.pem"
    bad.write_text("garbage")
    with pytest.raises(ValidationError) as caught:
        certs.validate_certificate(params(certificate_pem_path=str(bad)))
    assert caught.value.field == "certificate_pem_path"


def test_existing_unparseable_certificate_path_is_refused(tmp_path):
    path = tmp_path / "c.pem"
    path.write_text("junk")
    with pytest.raises(ValidationError) as caught:
        certs.validate_certificate(params(csr=csr_pem(new_key()), certificate_path=str(path)))
    assert caught.value.field == "certificate_path"
    assert "exists but" in caught.value.rule


def test_existing_unparseable_private_key_is_refused(tmp_path):
    path = tmp_path / "k.key"
    path.write_text("junk")
    with pytest.raises(ValidationError) as caught:
        certs.validate_certificate(params(create_keys=True, private_key_path=str(path), thing="dev-1"))
    assert caught.value.field == "private_key_path"


def test_output_directory_must_exist_before_any_call(tmp_path):
    with pytest.raises(ValidationError) as caught:
        certs.validate_certificate(
            params(create_keys=True, private_key_path=str(tmp_path / "nodir" / "k.key"), thing="dev-1")
        )
    assert caught.value.field == "private_key_path"
    assert "does not exist" in caught.value.rule


@pytest.mark.parametrize(
    "kwargs, field, rule",
    [
        (dict(thing="bad name"), "thing", "letters, digits"),
        (dict(thing="t" * 129), "thing", "at most 128"),
        (dict(policies=["ok", "bad policy"]), "policies", "may contain only"),
        (dict(policies=[f"p{i}" for i in range(11)]), "policies", "at most 10 policies"),
        (dict(ca_certificate_pem="x"), "ca_certificate_pem", "only used with certificate_pem"),
        (dict(private_key_path="/tmp/k"), "private_key_path", "only used with create_keys"),
    ],
)
def test_other_options_are_checked(kwargs, field, rule):
    with pytest.raises(ValidationError) as caught:
        certs.validate_certificate(params(certificate_id="a" * 64, **kwargs))
    assert caught.value.field == field
    assert rule in caught.value.rule


def test_no_source_and_nothing_to_find_is_refused():
    with pytest.raises(ValidationError) as caught:
        certs.validate_certificate(params(thing="dev-1"))
    assert "needs a certificate" in caught.value.rule


def test_pem_source_computes_the_id_locally():
    pem = self_signed(new_key())
    desired = certs.validate_certificate(params(certificate_pem=pem))
    assert desired.source == "pem"
    assert desired.certificate_id == der_id(pem)


# --- create_keys --------------------------------------------------------------------------------------------


def test_create_keys_full_cycle(iot, tmp_path):
    key_path, cert_path = tmp_path / "dev.key", tmp_path / "dev.pem"
    opts = dict(
        create_keys=True,
        private_key_path=str(key_path),
        certificate_path=str(cert_path),
        thing="dev-1",
        policies=["pol-a"],
    )

    done, _unused = present(iot, check_mode=True, **opts)
    changed, before, after = done.changed, done.before, done.after
    assert changed and before is None
    assert after["certificate_id"] is None and after["status"] == "ACTIVE"
    assert after["things"] == ["dev-1"] and after["policies"] == ["pol-a"]
    assert iot.mutating_calls() == [] and not key_path.exists() and not cert_path.exists()

    old = os.umask(0)
    try:
        done, _unused = present(iot, **opts)
        changed, before, after = done.changed, done.before, done.after
    finally:
        os.umask(old)
    assert changed and before is None
    # Created INACTIVE, attached, activated last.
    assert iot.mutating_calls() == [
        "create_keys_and_certificate",
        "attach_thing_principal",
        "attach_policy",
        "update_certificate",
    ]
    assert iot.calls[[op for op, _unused in iot.calls].index("create_keys_and_certificate")][1] == {
        "setAsActive": False
    }
    cert_id = after["certificate_id"]
    assert iot.certificates[cert_id]["status"] == "ACTIVE"
    assert after == dict(after, status="ACTIVE", things=["dev-1"], policies=["pol-a"])
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(cert_path).st_mode) == 0o644
    assert cert_path.read_text() == iot.certificates[cert_id]["certificatePem"]
    assert "PRIVATE KEY" not in repr(after)

    iot.calls.clear()
    done, _unused = present(iot, check_mode=True, **opts)
    changed, before, again = done.changed, done.before, done.after
    assert not changed and again == after
    done, _unused = present(iot, **opts)
    changed, before, again = done.changed, done.before, done.after
    assert not changed and again == after
    assert iot.mutating_calls() == []
    assert len(iot.certificates) == 1

    done = absent(iot, check_mode=True, **opts)
    changed, before, gone = done.changed, done.before, done.after
    assert changed and before == after and gone is None and iot.mutating_calls() == []
    done = absent(iot, **opts)
    changed, before, gone = done.changed, done.before, done.after
    assert changed and gone is None
    assert iot.mutating_calls() == [
        "update_certificate",
        "detach_thing_principal",
        "detach_policy",
        "delete_certificate",
    ]
    assert iot.certificates == {} and "dev-1" in iot.things
    iot.calls.clear()
    done = absent(iot, **opts)
    changed, before, gone = done.changed, done.before, done.after
    assert not changed and iot.mutating_calls() == []


def test_create_keys_found_again_through_the_thing_without_certificate_path(iot, tmp_path):
    opts = dict(create_keys=True, private_key_path=str(tmp_path / "dev.key"), thing="dev-1")
    done, _unused = present(iot, **opts)
    first = done.after
    iot.calls.clear()
    done, _unused = present(iot, **opts)
    changed, again = done.changed, done.after
    assert not changed and again["certificate_id"] == first["certificate_id"]
    assert iot.mutating_calls() == []


def test_existing_key_without_its_certificate_is_never_overwritten(iot, tmp_path):
    key_path = tmp_path / "dev.key"
    key_path.write_text(key_pem(new_key()))
    with pytest.raises(ValidationError) as caught:
        present(iot, create_keys=True, private_key_path=str(key_path), thing="dev-1")
    assert caught.value.field == "private_key_path"
    assert "refusing to overwrite the key" in caught.value.rule
    assert iot.mutating_calls() == []


def test_certificate_path_of_another_live_certificate_is_not_overwritten(iot, tmp_path):
    other = iot.register_certificate_without_ca(certificatePem=self_signed(new_key()), status="ACTIVE")
    cert_path = tmp_path / "dev.pem"
    cert_path.write_text(iot.certificates[other["certificateId"]]["certificatePem"])
    iot.calls.clear()
    with pytest.raises(ValidationError) as caught:
        present(iot, csr=csr_pem(new_key()), certificate_path=str(cert_path))
    assert caught.value.field == "certificate_path"
    assert other["certificateId"] in caught.value.rule
    assert iot.mutating_calls() == []


def test_unwritable_key_after_creation_deletes_the_useless_certificate(iot, tmp_path, monkeypatch):
    real_commit = crypto.PendingFile.commit

    def failing_commit(self, data):
        if self.path.endswith(".key"):
            raise OSError(28, "No space left on device")
        return real_commit(self, data)

    monkeypatch.setattr(crypto.PendingFile, "commit", failing_commit)
    with pytest.raises(ValidationError) as caught:
        present(iot, create_keys=True, private_key_path=str(tmp_path / "dev.key"), thing="dev-1")
    assert "deactivated and deleted" in caught.value.rule
    assert iot.certificates == {}
    assert os.listdir(tmp_path) == []


def test_missing_thing_fails_before_creating(iot, tmp_path):
    with pytest.raises(ValidationError) as caught:
        present(iot, create_keys=True, private_key_path=str(tmp_path / "k.key"), thing="nope")
    assert caught.value.field == "thing"
    assert iot.mutating_calls() == [] and iot.certificates == {}
    assert os.listdir(tmp_path) == []


def test_missing_thing_in_check_mode_is_a_warning(iot, tmp_path):
    done, warnings = present(
        iot, check_mode=True, create_keys=True, private_key_path=str(tmp_path / "k.key"), thing="nope"
    )
    changed, after = done.changed, done.after
    assert changed and after["things"] == ["nope"]
    assert any("does not exist" in w for w in warnings)


def test_failure_after_creation_leaves_no_active_certificate_and_a_rerun_completes(iot, tmp_path):
    opts = dict(
        create_keys=True,
        private_key_path=str(tmp_path / "dev.key"),
        certificate_path=str(tmp_path / "dev.pem"),
        thing="dev-1",
        policies=["flaky-policy"],
    )
    # The policy exists when it is checked, but attaching it fails once the certificate was made.
    iot.policies.add("flaky-policy")
    iot.fail["attach_policy"] = client_error("LimitExceededException", "too many", "AttachPolicy")
    with pytest.raises(AwsCallError) as caught:
        present(iot, **opts)
    (cert_id,) = iot.certificates
    assert caught.value.code == "LimitExceededException"
    assert cert_id in str(caught.value) and "run the task again" in str(caught.value)
    assert iot.certificates[cert_id]["status"] == "INACTIVE"

    done, _unused = present(iot, **opts)
    changed, after = done.changed, done.after
    assert changed and after["certificate_id"] == cert_id and after["status"] == "ACTIVE"
    assert after["policies"] == ["flaky-policy"]
    assert len(iot.certificates) == 1
    assert "create_keys_and_certificate" not in iot.mutating_calls()[1:]


@pytest.mark.parametrize("check_mode", [True, False])
def test_a_missing_policy_fails_before_any_certificate_is_made(iot, tmp_path, check_mode):
    # Before: predicted fine in check mode, and the apply made a certificate, then failed at AttachPolicy (issue 10).
    opts = dict(
        create_keys=True,
        private_key_path=str(tmp_path / "dev.key"),
        certificate_path=str(tmp_path / "c"),
        policies=["nope"],
    )
    with pytest.raises(certs.StateConflictError) as caught:
        present(iot, check_mode=check_mode, **opts)
    assert str(caught.value).startswith("policies: policy nope does not exist; create it first")
    assert iot.certificates == {} and iot.mutating_calls() == [] and not (tmp_path / "dev.key").exists()


def test_a_declared_policy_stands_in_only_in_check_mode(iot, tmp_path):
    opts = dict(
        create_keys=True,
        private_key_path=str(tmp_path / "dev.key"),
        certificate_path=str(tmp_path / "c"),
        policies=["made-earlier"],
    )
    done, _unused = present(iot, check_mode=True, declared_resources={"policies": ["made-earlier"]}, **opts)
    changed, after = done.changed, done.after
    assert changed and after["policies"] == ["made-earlier"] and iot.mutating_calls() == []
    with pytest.raises(certs.StateConflictError):
        present(iot, declared_resources={"policies": ["made-earlier"]}, **opts)
    assert iot.certificates == {}


# --- CSR ----------------------------------------------------------------------------------------------------


def test_csr_rerun_mints_no_second_certificate(iot, tmp_path):
    key = new_key()
    opts = dict(csr=csr_pem(key), certificate_path=str(tmp_path / "dev.pem"), thing="dev-1")
    done, _unused = present(iot, **opts)
    changed, first = done.changed, done.after
    assert changed
    issued = iot.certificates[first["certificate_id"]]["certificatePem"]
    assert x509.load_pem_x509_certificate(issued.encode()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    iot.calls.clear()
    done, _unused = present(iot, **opts)
    changed, again = done.changed, done.after
    assert not changed and again == first and iot.mutating_calls() == []

    # The file is lost: the certificate is still found through the thing, and the file is written again.
    os.remove(tmp_path / "dev.pem")
    done, _unused = present(iot, **opts)
    changed, again = done.changed, done.after
    assert changed and again["certificate_id"] == first["certificate_id"]
    assert iot.mutating_calls() == []
    assert (tmp_path / "dev.pem").read_text() == issued
    assert len(iot.certificates) == 1


def test_several_certificates_with_the_same_key_prefer_the_active_one(iot):
    key = new_key()
    csr = csr_pem(key)
    first = iot.create_certificate_from_csr(certificateSigningRequest=csr, setAsActive=False)
    second = iot.create_certificate_from_csr(certificateSigningRequest=csr, setAsActive=True)
    for made in (first, second):
        iot.attach_thing_principal(thingName="dev-1", principal=made["certificateArn"])
    iot.calls.clear()
    done, warnings = present(iot, csr=csr, thing="dev-1")
    changed, after = done.changed, done.after
    assert not changed and after["certificate_id"] == second["certificateId"]
    assert any("2 certificates" in w for w in warnings)


# --- PEM and id ---------------------------------------------------------------------------------------------


def test_pem_with_ca_registers_and_is_found_by_id(iot, tmp_path):
    ca_key, dev_key = new_key(), new_key()
    ca_pem = self_signed(ca_key, "fleet-ca")
    dev_pem = issue(dev_key.public_key(), ca_key, "device", "fleet-ca")
    opts = dict(certificate_pem=dev_pem, ca_certificate_pem=ca_pem, certificate_path=str(tmp_path / "c.pem"))

    done, _unused = present(iot, check_mode=True, **opts)
    changed, predicted = done.changed, done.after
    assert predicted["certificate_id"] == der_id(dev_pem) and predicted["ca_certificate_id"] == der_id(ca_pem)
    done, _unused = present(iot, **opts)
    changed, after = done.changed, done.after
    assert changed and after["certificate_id"] == der_id(dev_pem) and after["ca_certificate_id"] == der_id(ca_pem)
    # Registered INACTIVE, activated last.
    assert iot.mutating_calls() == ["register_certificate", "update_certificate"]
    assert iot.calls[[op for op, _unused in iot.calls].index("register_certificate")][1] == {"status": "INACTIVE"}
    assert iot.certificates[der_id(dev_pem)]["status"] == "ACTIVE"
    iot.calls.clear()
    done, _unused = present(iot, **opts)
    changed = done.changed
    assert not changed and iot.mutating_calls() == []


def test_pem_without_ca_uses_register_without_ca(iot):
    done, _unused = present(iot, certificate_pem=self_signed(new_key()), status="INACTIVE")
    changed, after = done.changed, done.after
    assert changed and after["status"] == "INACTIVE"
    assert iot.mutating_calls() == ["register_certificate_without_ca"]


def test_certificate_id_cannot_create(iot):
    with pytest.raises(ValidationError) as caught:
        present(iot, certificate_id="a" * 64)
    assert caught.value.field == "certificate_id"
    assert "no certificate" in caught.value.rule


def test_status_is_updated_only_when_different(iot):
    made = iot.register_certificate_without_ca(certificatePem=self_signed(new_key()), status="ACTIVE")
    iot.calls.clear()
    done, _unused = present(iot, certificate_id=made["certificateId"], status="ACTIVE")
    changed, before, after = done.changed, done.before, done.after
    assert not changed and iot.mutating_calls() == []
    done, _unused = present(iot, certificate_id=made["certificateId"], status="INACTIVE")
    changed, before, after = done.changed, done.before, done.after
    assert changed and before["status"] == "ACTIVE" and after["status"] == "INACTIVE"
    assert iot.mutating_calls() == ["update_certificate"]


def test_a_revoked_certificate_that_aws_will_not_reactivate_is_explained(iot, tmp_path):
    opts = dict(csr=csr_pem(new_key()), certificate_path=str(tmp_path / "dev.pem"))
    done, _unused = present(iot, **opts)
    made = done.after
    iot.certificates[made["certificate_id"]]["status"] = "REVOKED"
    iot.fail["update_certificate"] = client_error("CertificateStateException", "revoked", "UpdateCertificate")
    with pytest.raises(AwsCallError) as caught:
        present(iot, **opts)
    assert caught.value.code == "CertificateStateException"
    assert "is REVOKED" in str(caught.value) and "state=absent" in str(caught.value)
    assert len(iot.certificates) == 1


# --- planning -----------------------------------------------------------------------------------------------


def _view(**kwargs):
    view = dict(
        certificate_id="a" * 64,
        certificate_arn="arn",
        status="ACTIVE",
        creation_date=None,
        ca_certificate_id=None,
        things=["dev-1"],
        policies=["pol-a", "pol-b"],
    )
    view.update(kwargs)
    return view


def test_plan_purges_unlisted_policies_by_default():
    desired = certs.DesiredCertificate(certificate_id="a" * 64, source="id", policies=["pol-b", "pol-c"])
    plan, after = certs.plan_certificate(desired, _view(), None)
    assert plan.attach_policies == ["pol-c"] and plan.detach_policies == ["pol-a"]
    assert after["policies"] == ["pol-b", "pol-c"]


def test_plan_merges_without_purge():
    desired = certs.DesiredCertificate(source="id", policies=["pol-c"], purge_policies=False)
    plan, after = certs.plan_certificate(desired, _view(), None)
    assert plan.attach_policies == ["pol-c"] and plan.detach_policies == []
    assert after["policies"] == ["pol-a", "pol-b", "pol-c"]


def test_plan_leaves_unset_options_alone():
    plan, after = certs.plan_certificate(certs.DesiredCertificate(source="id"), _view(status="INACTIVE"), None)
    assert not plan.changed and after == _view(status="INACTIVE")


def test_plan_ignores_fields_the_user_does_not_manage():
    before = _view(creation_date="2024-01-01T00:00:00+00:00", ca_certificate_id="b" * 64)
    desired = certs.DesiredCertificate(source="id", status="ACTIVE", thing="dev-1", policies=["pol-a", "pol-b"])
    plan, after = certs.plan_certificate(desired, before, None)
    assert not plan.changed and after == before


def test_plan_writes_the_certificate_file_only_when_content_differs(tmp_path):
    path = tmp_path / "c.pem"
    desired = certs.DesiredCertificate(source="id", certificate_path=str(path))
    assert certs.plan_certificate(desired, _view(), "PEM\n")[0].write_certificate_file
    path.write_text("PEM\n")
    assert not certs.plan_certificate(desired, _view(), "PEM\n")[0].changed


def test_policy_swap_detaches_before_attaching(iot):
    made = iot.register_certificate_without_ca(certificatePem=self_signed(new_key()), status="ACTIVE")
    iot.attach_policy(policyName="pol-a", target=made["certificateArn"])
    iot.calls.clear()
    done, _unused = present(iot, certificate_id=made["certificateId"], policies=["pol-b"])
    changed, before, after = done.changed, done.before, done.after
    assert changed and before["policies"] == ["pol-a"] and after["policies"] == ["pol-b"]
    assert iot.mutating_calls() == ["detach_policy", "attach_policy"]


# --- absent -------------------------------------------------------------------------------------------------


def test_absent_detaches_everything_across_pages_and_keeps_things(iot):
    made = iot.register_certificate_without_ca(certificatePem=self_signed(new_key()), status="ACTIVE")
    arn = made["certificateArn"]
    iot.things.update({"dev-3", "dev-4"})
    for thing in ("dev-1", "dev-2", "dev-3", "dev-4"):
        iot.attach_thing_principal(thingName=thing, principal=arn)
    for policy in ("pol-a", "pol-b", "pol-c"):
        iot.attach_policy(policyName=policy, target=arn)
    iot.calls.clear()
    done = absent(iot, certificate_id=made["certificateId"])
    changed, before, after = done.changed, done.before, done.after
    assert changed and after is None
    assert before["things"] == ["dev-1", "dev-2", "dev-3", "dev-4"]
    assert before["policies"] == ["pol-a", "pol-b", "pol-c"]
    ops = iot.mutating_calls()
    assert ops[0] == "update_certificate" and ops[-1] == "delete_certificate"
    assert ops.count("detach_thing_principal") == 4 and ops.count("detach_policy") == 3
    assert iot.certificates == {} and iot.thing_principals == {} and iot.attached == set()
    assert {"dev-1", "dev-2", "dev-3", "dev-4"} <= iot.things


def test_absent_skips_deactivation_when_already_inactive(iot):
    made = iot.register_certificate_without_ca(certificatePem=self_signed(new_key()), status="INACTIVE")
    iot.calls.clear()
    absent(iot, certificate_id=made["certificateId"])
    assert iot.mutating_calls() == ["delete_certificate"]


def test_absent_retries_a_delete_that_still_sees_a_detached_thing(iot):
    made = iot.register_certificate_without_ca(certificatePem=self_signed(new_key()), status="INACTIVE")
    iot.calls.clear()
    iot.fail["delete_certificate"] = client_error("DeleteConflictException", "things attached", "DeleteCertificate")
    done = absent(iot, certificate_id=made["certificateId"])
    changed = done.changed
    assert changed and iot.certificates == {}
    assert iot.mutating_calls() == ["delete_certificate", "delete_certificate"]


def test_absent_does_not_retry_other_errors(iot):
    made = iot.register_certificate_without_ca(certificatePem=self_signed(new_key()), status="INACTIVE")
    iot.fail["delete_certificate"] = client_error("UnauthorizedException", "no", "DeleteCertificate")
    with pytest.raises(ClientError):
        absent(iot, certificate_id=made["certificateId"])


def test_absent_by_csr_and_thing(iot):
    key = new_key()
    done, _unused = present(iot, csr=csr_pem(key), thing="dev-1")
    made = done.after
    done = absent(iot, csr=csr_pem(key), thing="dev-1")
    changed, before = done.changed, done.before
    assert changed and before["certificate_id"] == made["certificate_id"] and iot.certificates == {}


# --- thing_principal ----------------------------------------------------------------------------------------


def tp_params(**kwargs):
    base = dict(thing="dev-1", principal=None, exclusive=None, state="present")
    base.update(kwargs)
    return base


@pytest.mark.parametrize(
    "principal, rule",
    [
        ("abc", "64 hexadecimal"),
        ("arn:aws:iot:us-east-1:123456789012:cert/xyz", "64 hexadecimal"),
        ("", "must be a certificate ARN"),
    ],
)
def test_thing_principal_validation(principal, rule):
    with pytest.raises(ValidationError) as caught:
        certs.validate_thing_principal(tp_params(principal=principal))
    assert caught.value.field == "principal" and rule in caught.value.rule


def test_thing_principal_id_is_resolved_and_type_managed(iot):
    made = iot.register_certificate_without_ca(certificatePem=self_signed(new_key()), status="ACTIVE")
    iot.calls.clear()
    desired = certs.validate_thing_principal(tp_params(principal=made["certificateId"].upper(), exclusive=True))
    assert desired.principal_is_certificate_id
    arn = certs.resolve_principal(iot, desired)
    assert arn == made["certificateArn"]

    done = certs.ensure_thing_principal_present(iot, desired, arn, True)
    changed, before, after = done.changed, done.before, done.after
    assert changed and before is None and after["thing_principal_type"] == "EXCLUSIVE_THING"
    assert iot.mutating_calls() == []
    done = certs.ensure_thing_principal_present(iot, desired, arn, False)
    changed, after = done.changed, done.after
    assert changed and after == {"thing": "dev-1", "principal": arn, "thing_principal_type": "EXCLUSIVE_THING"}
    iot.calls.clear()
    assert certs.ensure_thing_principal_present(iot, desired, arn, False).changed is False
    assert iot.mutating_calls() == []

    # Unset exclusive keeps whatever type exists.
    loose = certs.validate_thing_principal(tp_params(principal=arn))
    assert certs.ensure_thing_principal_present(iot, loose, arn, False).changed is False
    # A different type re-attaches.
    shared = certs.validate_thing_principal(tp_params(principal=arn, exclusive=False))
    done = certs.ensure_thing_principal_present(iot, shared, arn, False)
    changed, before, after = done.changed, done.before, done.after
    assert changed and before["thing_principal_type"] == "EXCLUSIVE_THING"
    assert after["thing_principal_type"] == "NON_EXCLUSIVE_THING"
    assert iot.mutating_calls() == ["detach_thing_principal", "attach_thing_principal"]

    iot.calls.clear()
    gone = certs.validate_thing_principal(tp_params(principal=arn, state="absent"))
    assert certs.ensure_thing_principal_absent(iot, gone, arn, True).changed is True
    assert iot.mutating_calls() == []
    assert certs.ensure_thing_principal_absent(iot, gone, arn, False).changed is True
    assert certs.ensure_thing_principal_absent(iot, gone, arn, False).changed is False
    assert iot.mutating_calls() == ["detach_thing_principal"]


def test_thing_principal_unknown_certificate_id(iot):
    desired = certs.validate_thing_principal(tp_params(principal="c" * 64))
    assert certs.resolve_principal(iot, desired) is None
    with pytest.raises(ValidationError) as caught:
        certs.ensure_thing_principal_present(iot, desired, None, False)
    assert caught.value.field == "principal"
    absent_desired = certs.validate_thing_principal(tp_params(principal="c" * 64, state="absent"))
    done = certs.ensure_thing_principal_absent(iot, absent_desired, None, False)
    assert (done.changed, done.before, done.after) == (False, None, None)


def test_thing_principal_missing_thing(iot):
    made = iot.register_certificate_without_ca(certificatePem=self_signed(new_key()), status="ACTIVE")
    desired = certs.validate_thing_principal(tp_params(thing="nope", principal=made["certificateArn"]))
    with pytest.raises(ValidationError) as caught:
        certs.ensure_thing_principal_present(iot, desired, made["certificateArn"], False)
    assert caught.value.field == "thing"


# --- certificate_info ---------------------------------------------------------------------------------------


def test_query_reads_every_page_and_filters_by_status(iot):
    for status in ("ACTIVE", "ACTIVE", "INACTIVE", "ACTIVE", "REVOKED"):
        iot.register_certificate_without_ca(certificatePem=self_signed(new_key()), status=status)
    everything = certs.query_certificates(iot, certs.validate_certificate_query({}))
    assert len(everything) == 5
    assert sum(1 for op, _unused in iot.calls if op == "list_certificates") == 3
    active = certs.query_certificates(iot, certs.validate_certificate_query({"status": "ACTIVE"}))
    assert len(active) == 3 and {c["status"] for c in active} == {"ACTIVE"}
    assert all("certificate_pem" not in c for c in active)
    # A list call does not say whether a certificate has a CA: the key is left out rather than guessed.
    assert all("ca_certificate_id" not in c for c in active)
    assert [c["certificate_id"] for c in everything] == sorted(iot.certificates)


def test_query_by_thing_ca_and_id_with_pem(iot):
    ca_key = new_key()
    ca_pem = self_signed(ca_key, "ca")
    signed = [issue(new_key().public_key(), ca_key, "d", "ca") for _unused in range(3)]
    for pem in signed:
        iot.register_certificate(certificatePem=pem, caCertificatePem=ca_pem, status="ACTIVE")
    lone = iot.register_certificate_without_ca(certificatePem=self_signed(new_key()), status="ACTIVE")
    iot.attach_thing_principal(thingName="dev-2", principal=lone["certificateArn"])

    by_ca = certs.query_certificates(iot, certs.validate_certificate_query({"ca_certificate_id": der_id(ca_pem)}))
    assert sorted(c["certificate_id"] for c in by_ca) == sorted(der_id(p) for p in signed)
    assert {c["ca_certificate_id"] for c in by_ca} == {der_id(ca_pem)}

    by_thing = certs.query_certificates(iot, certs.validate_certificate_query({"thing": "dev-2", "include_pem": True}))
    assert [c["certificate_id"] for c in by_thing] == [lone["certificateId"]]
    assert by_thing[0]["certificate_pem"] == iot.certificates[lone["certificateId"]]["certificatePem"]
    assert certs.query_certificates(iot, certs.validate_certificate_query({"thing": "no-such-thing"})) == []

    one = certs.query_certificates(iot, certs.validate_certificate_query({"certificate_id": lone["certificateId"]}))
    assert len(one) == 1 and one[0]["certificate_arn"] == lone["certificateArn"]
    assert certs.query_certificates(iot, certs.validate_certificate_query({"certificate_id": "d" * 64})) == []

    with_pem = certs.query_certificates(iot, certs.validate_certificate_query({"include_pem": True}))
    assert all(c["certificate_pem"].startswith("-----BEGIN CERTIFICATE-----") for c in with_pem)
    # Described certificates say whether they have a CA.
    assert {c["certificate_id"]: c["ca_certificate_id"] for c in with_pem} == {
        **{der_id(p): der_id(ca_pem) for p in signed},
        lone["certificateId"]: None,
    }


@pytest.mark.parametrize(
    "query, field",
    [
        ({"certificate_id": "a" * 64, "thing": "dev-1"}, "certificate_id, thing"),
        ({"ca_certificate_id": "xyz"}, "ca_certificate_id"),
        ({"status": "BOGUS"}, "status"),
    ],
)
def test_query_validation(query, field):
    with pytest.raises(ValidationError) as caught:
        certs.validate_certificate_query(query)
    assert caught.value.field == field
