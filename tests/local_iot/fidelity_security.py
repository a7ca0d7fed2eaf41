"""Fidelity fixes for certificates, thing principals, policies and policy attachments (see README.md)."""

from __future__ import annotations

import datetime
import functools
import json
from typing import Any, Callable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fidelity_core import (
    CertificateStateException,
    CertificateValidationException,
    DeleteConflictException,
    InvalidRequestException,
    LimitExceededException,
    MalformedPolicyException,
    ResourceNotFoundException,
    _wrap,
    local_state,
    now,
    response_body,
)
from moto.core.config import default_user_config
from moto.core.responses import EmptyResult
from moto.core.utils import utcnow
from moto.iot.models import FakeCertificate, IoTBackend
from moto.iot.responses import IoTResponse
from moto.utilities.utils import get_partition

MAX_POLICIES_PER_TARGET = 10
MAX_POLICY_CHARACTERS = 2048
EXCLUSIVE = "EXCLUSIVE_THING"
NON_EXCLUSIVE = "NON_EXCLUSIVE_THING"
UNSETTABLE_STATUSES = ("PENDING_ACTIVATION", "PENDING_TRANSFER")


# --- certificates -------------------------------------------------------------------------------------------


def load_certificate(pem: str | None, what: str = "certificate") -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate((pem or "").encode())
    except ValueError as error:
        raise CertificateValidationException(f"The {what} is not a valid PEM X.509 certificate") from error


# AWS IoT, developer guide "X.509 client certificates": supported signing algorithms are SHA-256/384/512 with
# RSA, ECDSA or DSA (no SHA-1, no MD5); keys are RSA of at least 2048 bits or ECDSA on NIST P-256/384/521.
# RegisterCACertificate, RegisterCertificate and RegisterCertificateWithoutCA answer a certificate they
# refuse with CertificateValidationException ("The certificate is invalid", botocore model).
STRONG_HASHES = ("sha256", "sha384", "sha512")
STRONG_CURVES = ("secp256r1", "secp384r1", "secp521r1")
MIN_RSA_BITS = 2048


def check_strength(certificate: x509.Certificate, what: str) -> None:
    """CertificateValidationException when AWS IoT would refuse the certificate's key or signature algorithm."""
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise CertificateValidationException(
                f"The {what} has an RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} are required"
            )
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in STRONG_CURVES:
            raise CertificateValidationException(f"The {what} has an EC key on an unsupported curve ({key.curve.name})")
    else:
        raise CertificateValidationException(f"The {what} has an unsupported key algorithm")
    try:
        name = certificate.signature_hash_algorithm.name if certificate.signature_hash_algorithm else None
    except Exception:  # pylint: disable=broad-except  # an unknown signature algorithm raises
        name = None
    if name not in STRONG_HASHES:
        raise CertificateValidationException(
            f"The {what} is signed with an unsupported algorithm ({name or 'unknown'})"
        )


# AWS_IOT_FACTS: certificates AWS IoT generates (CreateKeysAndCertificate, CreateCertificateFromCsr) expire then.
AWS_GENERATED_NOT_AFTER = datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc)


@functools.lru_cache(maxsize=1)
def _issuer() -> tuple[ec.EllipticCurvePrivateKey, x509.Name]:
    """The key and name this endpoint signs CSR-based certificates with (one per process)."""
    ou = "Amazon Web Services O=Amazon.com Inc. L=Seattle ST=Washington C=US"
    name = x509.Name([x509.NameAttribute(x509.NameOID.ORGANIZATIONAL_UNIT_NAME, ou)])
    return ec.generate_private_key(ec.SECP256R1()), name


def issue(subject: x509.Name, public_key: Any) -> str:
    """A certificate as AWS IoT issues one: signed by its issuer, valid until AWS_GENERATED_NOT_AFTER."""
    key, issuer = _issuer()
    issued = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(utcnow() - datetime.timedelta(minutes=5))
        .not_valid_after(AWS_GENERATED_NOT_AFTER)
        .sign(key, hashes.SHA256())
    )
    return issued.public_bytes(serialization.Encoding.PEM).decode()


def sign_csr(csr: x509.CertificateSigningRequest) -> str:
    return issue(csr.subject, csr.public_key())


def _install_certificates() -> None:
    # AWS: a certificate id is the SHA-256 of the certificate's DER; moto hashes the PEM text unless told.
    default_user_config.setdefault("iot", {})["use_valid_cert"] = True

    # AWS: CreateKeysAndCertificate's certificate is issued by AWS IoT and valid until 2049-12-31T23:59:59Z (moto
    # made a self-signed one valid for a year). moto passes the key it made; without one it is another path.
    @_wrap(IoTBackend, "_generate_certificate_pem")
    def generate_certificate_pem(
        original: Callable[..., Any], self: IoTBackend, domain_name: str, subject: x509.Name, key: Any = None
    ) -> str:
        if key is None:
            return original(self, domain_name, subject, key)
        return issue(subject, key.public_key())

    # AWS: DescribeCertificate's validity is the certificate's own notBefore/notAfter (moto said now -1/+1 day).
    @_wrap(FakeCertificate, "__init__")
    def certificate_init(original: Callable[..., Any], self: FakeCertificate, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        try:
            loaded = x509.load_pem_x509_certificate(self.certificate_pem.encode())
        except (ValueError, TypeError):
            return  # not a certificate: refused before it is kept (load_certificate), nothing to describe
        self.validity_not_before = loaded.not_valid_before_utc
        self.validity_not_after = loaded.not_valid_after_utc

    # AWS: a PEM that is not a certificate -> CertificateValidationException; one not signed by the CA given
    # -> CertificateValidationException.
    @_wrap(IoTBackend, "register_certificate")
    def register_certificate(
        original: Callable[..., Any],
        self: IoTBackend,
        certificate_pem: str,
        ca_certificate_pem: str | None,
        set_as_active: bool,
        status: str,
    ) -> Any:
        certificate = load_certificate(certificate_pem)
        check_strength(certificate, "certificate")
        if ca_certificate_pem:
            ca = load_certificate(ca_certificate_pem, "CA certificate")
            try:
                certificate.verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature) as error:
                raise CertificateValidationException(
                    "The certificate is not signed by the CA certificate given"
                ) from error
        return original(self, certificate_pem, ca_certificate_pem, set_as_active, status)

    @_wrap(IoTBackend, "register_certificate_without_ca")
    def register_certificate_without_ca(
        original: Callable[..., Any], self: IoTBackend, certificate_pem: str, status: str
    ) -> Any:
        check_strength(load_certificate(certificate_pem), "certificate")
        return original(self, certificate_pem, status)

    # AWS: a CA certificate's ARN is arn:PARTITION:iot:REGION:ACCOUNT:cacert/ID (moto gave it the cert/ form of
    # a device certificate, which TagResource and IAM policies would not recognise as a CA).
    @_wrap(IoTBackend, "register_ca_certificate")
    def register_ca_certificate(
        original: Callable[..., Any], self: IoTBackend, ca_certificate: str, *args: Any, **kwargs: Any
    ) -> Any:
        check_strength(load_certificate(ca_certificate, "CA certificate"), "CA certificate")
        ca = original(self, ca_certificate, *args, **kwargs)
        partition = get_partition(self.region_name)
        ca.arn = f"arn:{partition}:iot:{self.region_name}:{self.account_id}:cacert/{ca.certificate_id}"
        return ca

    # AWS: CreateCertificateFromCsr refuses a CSR it cannot parse or whose signature is wrong
    # (InvalidRequestException), and the certificate it issues carries the CSR's public key (moto put a
    # fresh random key in it, so the device's private key did not match its certificate).
    @_wrap(IoTBackend, "create_certificate_from_csr")
    def create_certificate_from_csr(
        original: Callable[..., Any], self: IoTBackend, csr: str, set_as_active: bool
    ) -> Any:
        try:
            request = x509.load_pem_x509_csr((csr or "").encode())
        except ValueError as error:
            raise InvalidRequestException("The certificate signing request is not a valid PEM CSR") from error
        if not request.is_signature_valid:
            raise InvalidRequestException("The certificate signing request's signature is not valid")
        # AWS: the CSR's key must be RSA of at least 2048 bits or EC on P-256/384/521 (InvalidRequestException,
        # the only client error CreateCertificateFromCsr has in the model).
        key = request.public_key()
        weak_rsa = isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS
        weak_ec = isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in STRONG_CURVES
        if weak_rsa or weak_ec or not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
            raise InvalidRequestException(
                "The certificate signing request's key must be RSA of at least 2048 bits or EC on P-256, P-384 or P-521"
            )
        # moto's response layer passes setAsActive as the query string "false" (truthy); AWS reads a boolean.
        set_as_active = set_as_active is True or str(set_as_active).lower() == "true"
        return self.register_certificate(sign_csr(request), None, set_as_active, "INACTIVE")

    # AWS: deleting an ACTIVE certificate is CertificateStateException; with things attached, or policies attached
    # and no forceDelete, DeleteConflictException. Same rules as moto's, compared by ARN (moto treated every
    # thing principal as a certificate and answered 500 when a Cognito identity was attached to a thing).
    @_wrap(IoTBackend, "_validation_delete")
    def validation_delete(
        original: Callable[..., Any], self: IoTBackend, cert: Any, force_delete: bool = False
    ) -> None:
        if cert.status == "ACTIVE":
            raise CertificateStateException(
                "Certificate must be deactivated (not ACTIVE) before deletion.", cert.certificate_id
            )
        if any(principal == cert.arn for principal, _unused in self.principal_things):
            raise DeleteConflictException(f"Things must be detached before deletion (arn: {cert.arn})")
        if not force_delete and any(principal == cert.arn for principal, _unused in self.principal_policies):
            raise DeleteConflictException(f"Certificate policies must be detached before deletion (arn: {cert.arn})")

    # AWS: UpdateCertificate cannot set PENDING_ACTIVATION or PENDING_TRANSFER (InvalidRequestException), and a
    # REVOKED certificate's status cannot change any more (CertificateStateException).
    @_wrap(IoTBackend, "update_certificate")
    def update_certificate(
        original: Callable[..., Any], self: IoTBackend, certificate_id: str, new_status: str
    ) -> None:
        if new_status in UNSETTABLE_STATUSES:
            raise InvalidRequestException(f"The certificate status cannot be set to {new_status}")
        certificate = self.describe_certificate(certificate_id)
        if certificate.status == "REVOKED" and new_status != "REVOKED":
            raise CertificateStateException("A revoked certificate's status cannot be changed.", certificate_id)
        original(self, certificate_id, new_status)
        certificate.last_modified_date = utcnow()


# --- thing principals ---------------------------------------------------------------------------------------


def _principal_types(backend: IoTBackend) -> dict[tuple[str, str], str]:
    return local_state(backend).setdefault("principal_types", {})


def _install_thing_principals() -> None:
    # AWS: an EXCLUSIVE_THING attachment makes the thing the principal's only thing: attaching a principal
    # exclusively while it is attached elsewhere, or attaching a principal that is exclusive elsewhere, is
    # InvalidRequestException.
    @_wrap(IoTBackend, "attach_thing_principal")
    def attach_thing_principal(
        original: Callable[..., Any],
        self: IoTBackend,
        thing_name: str,
        principal_arn: str,
        thing_principal_type: str | None = None,
    ) -> None:
        wanted = thing_principal_type or NON_EXCLUSIVE
        types = _principal_types(self)
        others = [
            thing for (principal, thing) in self.principal_things if principal == principal_arn and thing != thing_name
        ]
        if wanted == EXCLUSIVE and others:
            raise InvalidRequestException(
                f"Principal {principal_arn} is already attached to thing {others[0]}; it cannot be attached "
                f"exclusively to {thing_name}"
            )
        exclusive = [thing for thing in others if types.get((principal_arn, thing)) == EXCLUSIVE]
        if exclusive:
            raise InvalidRequestException(
                f"Principal {principal_arn} is attached exclusively to thing {exclusive[0]}; it cannot be attached "
                f"to {thing_name}"
            )
        original(self, thing_name, principal_arn)
        types[(principal_arn, thing_name)] = wanted

    @_wrap(IoTResponse, "attach_thing_principal")
    def attach_thing_principal_response(original: Callable[..., Any], self: IoTResponse) -> Any:
        self.iot_backend.attach_thing_principal(
            thing_name=self._get_param("thingName"),
            principal_arn=self.headers.get("x-amzn-principal"),
            thing_principal_type=self._get_param("thingPrincipalType"),
        )
        return EmptyResult()

    # Remember when a detach happened: DeleteThing still sees it for the consistency delay.
    @_wrap(IoTBackend, "detach_thing_principal")
    def detach_thing_principal(
        original: Callable[..., Any], self: IoTBackend, thing_name: str, principal_arn: str
    ) -> None:
        original(self, thing_name, principal_arn)
        _principal_types(self).pop((principal_arn, thing_name), None)
        local_state(self).setdefault("detached_at", {})[(principal_arn, thing_name)] = now()

    # AWS: ListThingPrincipalsV2 / ListPrincipalThingsV2 report each attachment's thingPrincipalType and can
    # filter on it.
    @_wrap(IoTResponse, "list_thing_principals_v2")
    def list_thing_principals_v2(original: Callable[..., Any], self: IoTResponse) -> Any:
        result = original(self)
        thing_name = self._get_param("thingName")
        wanted = self._get_param("thingPrincipalType")
        types = _principal_types(self.iot_backend)
        objects = []
        body = response_body(result, "thing principal types")
        for item in body.get("thingPrincipalObjects", []):
            kind = types.get((item["principal"], thing_name), NON_EXCLUSIVE)
            if wanted in (None, kind):
                objects.append({"principal": item["principal"], "thingPrincipalType": kind})
        body["thingPrincipalObjects"] = objects
        return result

    @_wrap(IoTResponse, "list_principal_things_v2")
    def list_principal_things_v2(original: Callable[..., Any], self: IoTResponse) -> Any:
        result = original(self)
        principal = self.headers.get("x-amzn-principal")
        wanted = self._get_param("thingPrincipalType")
        types = _principal_types(self.iot_backend)
        objects = []
        body = response_body(result, "principal thing types")
        for item in body.get("principalThingObjects", []):
            kind = types.get((principal, item["thingName"]), NON_EXCLUSIVE)
            if wanted in (None, kind):
                objects.append({"thingName": item["thingName"], "thingPrincipalType": kind})
        body["principalThingObjects"] = objects
        return result


# --- policies -----------------------------------------------------------------------------------------------


def check_policy_document(document: str | None) -> None:
    """AWS: a policy document is a JSON object of at most 2048 characters, whitespace not counted."""
    try:
        parsed = json.loads(document or "")
    except ValueError as error:
        raise MalformedPolicyException("The policy document is not valid JSON") from error
    if not isinstance(parsed, dict):
        raise MalformedPolicyException("The policy document must be a JSON object")
    size = sum(1 for char in document or "" if not char.isspace())
    if size > MAX_POLICY_CHARACTERS:
        raise MalformedPolicyException(
            f"The policy document has {size} characters excluding whitespace; the limit is {MAX_POLICY_CHARACTERS}"
        )


def _check_policy_slots(backend: IoTBackend, policy_name: str, target: str) -> None:
    backend._get_principal(target)
    backend.get_policy(policy_name)
    if (target, policy_name) in backend.principal_policies:
        return
    attached = sum(1 for key in backend.principal_policies if key[0] == target)
    if attached >= MAX_POLICIES_PER_TARGET:
        raise LimitExceededException(
            f"{target} already has {attached} policies attached; at most {MAX_POLICIES_PER_TARGET} are allowed"
        )


def _install_policies() -> None:
    # AWS: CreatePolicy / CreatePolicyVersion refuse a document that is not a JSON object or is over 2048
    # characters excluding whitespace (MalformedPolicyException).
    @_wrap(IoTBackend, "create_policy")
    def create_policy(original: Callable[..., Any], self: IoTBackend, policy_name: str, policy_document: Any) -> Any:
        check_policy_document(policy_document)
        return original(self, policy_name, policy_document)

    @_wrap(IoTBackend, "create_policy_version")
    def create_policy_version(
        original: Callable[..., Any], self: IoTBackend, policy_name: str, policy_document: Any, set_as_default: bool
    ) -> Any:
        self.get_policy(policy_name)
        check_policy_document(policy_document)
        return original(self, policy_name, policy_document, set_as_default)

    # AWS: SetDefaultPolicyVersion to a version that does not exist is ResourceNotFoundException (moto left
    # the policy with no default version).
    @_wrap(IoTBackend, "set_default_policy_version")
    def set_default_policy_version(
        original: Callable[..., Any], self: IoTBackend, policy_name: str, version_id: str
    ) -> None:
        policy = self.get_policy(policy_name)
        if not any(version.version_id == str(version_id) for version in policy.versions):
            raise ResourceNotFoundException(f"Policy {policy_name} has no version {version_id}")
        original(self, policy_name, str(version_id))

    # AWS: at most 10 policies attached to one certificate / principal; the 11th is LimitExceededException
    # (HTTP 410), for AttachPolicy and the deprecated AttachPrincipalPolicy alike.
    @_wrap(IoTBackend, "attach_policy")
    def attach_policy(original: Callable[..., Any], self: IoTBackend, policy_name: str, target: str) -> None:
        _check_policy_slots(self, policy_name, target)
        original(self, policy_name, target)

    @_wrap(IoTBackend, "attach_principal_policy")
    def attach_principal_policy(
        original: Callable[..., Any], self: IoTBackend, policy_name: str, principal_arn: str
    ) -> None:
        _check_policy_slots(self, policy_name, principal_arn)
        original(self, policy_name, principal_arn)


def _install_recursive_policies() -> None:
    # AWS: ListAttachedPolicies with recursive=true on a thing group also lists the policies its parent groups
    # pass down (moto ignored the parameter).
    @_wrap(IoTResponse, "list_attached_policies")
    def list_attached_policies(original: Callable[..., Any], self: IoTResponse) -> Any:
        result = original(self)
        target = self._get_param("target")
        if str(self._get_param("recursive", "false")).lower() != "true" or ":thinggroup/" not in (target or ""):
            return result
        backend = self.iot_backend
        group = backend.thing_groups.get(target)
        if group is None:
            return result
        ancestors = reversed(group.metadata.get("rootToParentThingGroups") or [])
        body = response_body(result, "recursive attached policies")
        policies = list(body.get("policies", []))
        for ancestor in ancestors:
            for policy in backend.list_attached_policies(ancestor["groupArn"]):
                if all(p["policyName"] != policy.name for p in policies):
                    policies.append(policy.to_dict())
        body["policies"] = policies
        return result


def install() -> None:
    _install_recursive_policies()
    _install_certificates()
    _install_thing_principals()
    _install_policies()
