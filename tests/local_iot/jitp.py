"""CA registration as AWS does it, and a simulated first connection for just-in-time provisioning.

Two parts, both on moto's IoT backend (one per account and region, so ``POST /moto-api/reset`` clears them):

* CA certificates. moto registered any PEM as a CA, asked for no proof of possession and ignored
  ``certificateMode``, ``allowAutoRegistration``, ``newAutoRegistrationStatus`` and ``removeAutoRegistration``;
  its registration code changed on every call. The wrappers below make GetRegistrationCode,
  RegisterCACertificate, UpdateCACertificate and DescribeCACertificate follow the AWS documentation, and add
  DeleteRegistrationCode and ListCACertificates, which moto lacks.
* A device's first connection, served on the control path ``POST /_local/jitp/connect``: the endpoint does
  what AWS IoT does when a device presents a certificate signed by a registered CA (JITR: register it
  PENDING_ACTIVATION and publish an event; JITP: also apply the CA's provisioning template). The template is
  applied by ``provisioning_api``'s RegisterThing engine, not a second one. ``GET /_local/jitp/events`` lists
  the registration events a real account would publish on ``$aws/events/certificates/registered/<caId>``.

JITP.md beside this file lists each behaviour with its source and what could not be confirmed. Nothing here
imports from the collection's ``plugins/``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable

import provisioning_api
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from fidelity_core import OPTIONS, _wrap, response_body
from fidelity_paging import page
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow
from moto.iot.exceptions import IoTClientError
from moto.iot.models import IoTBackend, iot_backends
from moto.iot.responses import IoTResponse
from provisioning_api import AlreadyExists, IoTError, TemplateError, invalid
from werkzeug.exceptions import HTTPException

# AWS: "You can register up to 10 CA certificates with the same CA subject field per account" (model,
# RegisterCACertificate documentation).
MAX_CAS_PER_SUBJECT = 10
CERTIFICATE_MODES = ("DEFAULT", "SNI_ONLY")
ENABLE, DISABLE = "ENABLE", "DISABLE"
DEFAULT_REGION = "us-east-1"

# JITP: the parameters AWS fills from the device certificate's subject (developer guide, "Just-in-time
# provisioning"), and the one it fills with the certificate id.
SUBJECT_PARAMETERS: dict[str, x509.ObjectIdentifier] = {
    "AWS::IoT::Certificate::Country": NameOID.COUNTRY_NAME,
    "AWS::IoT::Certificate::Organization": NameOID.ORGANIZATION_NAME,
    "AWS::IoT::Certificate::OrganizationalUnit": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "AWS::IoT::Certificate::DistinguishedNameQualifier": NameOID.DN_QUALIFIER,
    "AWS::IoT::Certificate::StateName": NameOID.STATE_OR_PROVINCE_NAME,
    "AWS::IoT::Certificate::CommonName": NameOID.COMMON_NAME,
    "AWS::IoT::Certificate::SerialNumber": NameOID.SERIAL_NUMBER,  # the subject attribute, not the serial
}
ID_PARAMETER = "AWS::IoT::Certificate::Id"
REGISTERED_TOPIC = "$aws/events/certificates/registered/{ca_id}"

_INSTALLED = False


# --------------------------------------------------------------------------- state


@dataclass
class JitpState:
    """What this module keeps per account and region (reset with the backend)."""

    code_generation: int = 0  # bumped by DeleteRegistrationCode, so the next code differs
    events: list[dict[str, Any]] = field(default_factory=list)


def state_of(backend: IoTBackend) -> JitpState:
    existing = backend.__dict__.get("_local_jitp")
    if existing is None:
        existing = backend.__dict__.setdefault("_local_jitp", JitpState())
    return existing


def registration_code(backend: IoTBackend) -> str:
    """64 hex characters, the same on every call until DeleteRegistrationCode (and across restarts)."""
    seed = f"local-iot-registration-code:{backend.account_id}:{backend.region_name}:{state_of(backend).code_generation}"
    return hashlib.sha256(seed.encode()).hexdigest()


def auto_registration_status(ca: Any) -> str:
    return getattr(ca, "auto_registration_status", DISABLE)


def certificate_mode(ca: Any) -> str:
    return getattr(ca, "certificate_mode", "DEFAULT")


# --------------------------------------------------------------------------- certificates


class CertificateProblem(Exception):
    """A certificate that does not parse or does not check out; the message says why."""


def load_certificate(pem: Any, what: str) -> x509.Certificate:
    if not isinstance(pem, str) or not pem.strip():
        raise CertificateProblem(f"{what}: required, a PEM certificate")
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError as error:
        raise CertificateProblem(f"{what}: not a valid PEM X.509 certificate") from error


def load_chain(pem: Any) -> list[x509.Certificate]:
    if pem is None or pem == "":
        return []
    if not isinstance(pem, str):
        raise CertificateProblem("chainPem: must be a string of PEM certificates")
    try:
        return x509.load_pem_x509_certificates(pem.encode())
    except ValueError as error:
        raise CertificateProblem("chainPem: not a list of valid PEM X.509 certificates") from error


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def certificate_id(certificate: x509.Certificate) -> str:
    """AWS: the id of a certificate is the lowercase hex SHA-256 of its DER bytes."""
    return hashlib.sha256(der(certificate)).hexdigest()


def issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True if ``issuer``'s subject is the certificate's issuer and its key verifies the signature."""
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return bool(constraints.ca)


def within_validity(certificate: x509.Certificate, when: datetime.datetime) -> bool:
    return certificate.not_valid_before_utc <= when <= certificate.not_valid_after_utc


def _loaded(ca: Any) -> x509.Certificate:
    return x509.load_pem_x509_certificate(ca.certificate_pem.encode())


# --------------------------------------------------------------------------- registration config


def _check_template_body(body: Any) -> None:
    try:
        provisioning_api.parse_template(body)
    except TemplateError as error:
        raise invalid(f"registrationConfig.templateBody: {error}") from error


def check_registration_config(backend: IoTBackend, config: Any) -> dict[str, str] | None:
    """The registration config to store (None when none was given), or InvalidRequest/ResourceNotFound.

    AWS documents two forms: ``templateBody`` with ``roleArn`` (the role AWS IoT assumes to provision), or
    ``templateName`` naming a provisioning template of type JITP (developer guide, "Just-in-time
    provisioning": "Register CA using provisioning template" / "... template name").
    """
    if not config:
        return None
    body, role_arn, name = config.get("templateBody"), config.get("roleArn"), config.get("templateName")
    if name is not None:
        if body is not None or role_arn is not None:
            raise invalid(
                "registrationConfig: give either templateName, or templateBody with roleArn, not both "
                "(a named provisioning template carries its own role)"
            )
        template = provisioning_api.state_of(backend).templates.get(name)
        if template is None:
            raise IoTError(
                "ResourceNotFoundException", f"registrationConfig.templateName: no provisioning template {name}"
            )
        if template.template_type != "JITP":
            raise invalid(
                f"registrationConfig.templateName: the provisioning template {name} is of type "
                f"{template.template_type}; a CA needs a template of type JITP"
            )
        return {"templateName": name}
    if body is None or role_arn is None:
        raise invalid("registrationConfig: templateBody and roleArn go together (or give templateName)")
    _check_template_body(body)
    try:
        provisioning_api.validate_role_arn(role_arn)
    except IoTError as error:
        raise invalid(f"registrationConfig.roleArn: {error.message}") from None
    return {"templateBody": body, "roleArn": role_arn}


def template_body_of(backend: IoTBackend, config: dict[str, str] | None) -> str | None:
    """The template a CA's registration config names, or None (then the CA does JITR only)."""
    if not config:
        return None
    if config.get("templateBody") is not None:
        return config["templateBody"]
    name = config.get("templateName")
    if name is None:
        return None
    template = provisioning_api.state_of(backend).templates.get(name)
    if template is None:
        raise CertificateProblem(f"the CA's provisioning template {name} does not exist")
    return template.versions[template.default_version_id].body


# --------------------------------------------------------------------------- the IoT API wrappers


def _params(response: IoTResponse) -> dict[str, Any]:
    """The request's parameters (body, URI and query string), parsed by the botocore model."""
    response.parse_parameters(response.normalized_request)
    return dict(response.params)


def _validation_error(message: str) -> IoTError:
    return IoTError("CertificateValidationException", message)


def _check_verification(backend: IoTBackend, ca: x509.Certificate, mode: str, verification_pem: str | None) -> None:
    # Model, RegisterCACertificate.verificationCertificate: "If certificateMode is SNI_ONLY, the
    # verificationCertificate field must be empty. If certificateMode is DEFAULT or not provided, the
    # verificationCertificate field must not be empty."
    if mode == "SNI_ONLY":
        if verification_pem:
            raise invalid("verificationCertificate: must be empty when certificateMode is SNI_ONLY")
        return
    if not verification_pem:
        raise invalid("verificationCertificate: required when certificateMode is DEFAULT (the default)")
    try:
        verification = load_certificate(verification_pem, "verificationCertificate")
    except CertificateProblem as error:
        raise _validation_error(str(error)) from error
    # Developer guide, "Register your CA certificate": the verification certificate's Common Name is the
    # registration code, and it is signed by the CA's private key (proof of possession).
    names = verification.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = names[0].value if names else None
    if common_name != registration_code(backend):
        raise IoTError(
            "RegistrationCodeValidationException",
            "The verification certificate's Common Name is not this account's registration code",
        )
    if not issued_by(verification, ca):
        raise _validation_error("The verification certificate is not signed by the CA certificate's private key")


def _register_ca_certificate(original: Callable[..., Any], self: IoTResponse) -> ActionResult:
    params = _params(self)
    backend = self.iot_backend
    try:
        ca = load_certificate(params.get("caCertificate"), "caCertificate")
    except CertificateProblem as error:
        raise _validation_error(str(error)) from error
    # A CA certificate must say so (basicConstraints CA:TRUE); AWS refuses others. The wording AWS uses is
    # quoted in a public issue ("does not have the basicConstraints extension as true"); the code is our reading.
    if not is_ca(ca):
        raise _validation_error("The CA certificate does not have the basicConstraints extension as true")
    mode = params.get("certificateMode") or "DEFAULT"
    _check_verification(backend, ca, mode, params.get("verificationCertificate"))
    with provisioning_api._LOCK:
        ca_id = certificate_id(ca)
        existing = backend.ca_certificates.get(ca_id)
        if existing is not None:
            raise AlreadyExists("The CA certificate is already registered", ca_id, existing.arn)
        if mode == "DEFAULT":
            _refuse_default_mode_elsewhere(backend, ca_id)
        same_subject = sum(1 for other in backend.ca_certificates.values() if _loaded(other).subject == ca.subject)
        if same_subject >= MAX_CAS_PER_SUBJECT:
            raise IoTError(
                "LimitExceededException",
                f"At most {MAX_CAS_PER_SUBJECT} CA certificates with the same subject can be registered; "
                f"{same_subject} have the subject {ca.subject.rfc4514_string()}",
            )
        config = check_registration_config(backend, params.get("registrationConfig"))
        registered = backend.register_ca_certificate(
            ca_certificate=params["caCertificate"],
            set_as_active=bool(params.get("setAsActive", False)),
            registration_config=config,
        )
        registered.auto_registration_status = ENABLE if params.get("allowAutoRegistration") else DISABLE
        registered.certificate_mode = mode
        registered.customer_version = 1
        registered.generation_id = hashlib.sha256(f"{ca_id}:1".encode()).hexdigest()[:36]
    return ActionResult({"certificateId": registered.certificate_id, "certificateArn": registered.arn})


def _refuse_default_mode_elsewhere(backend: IoTBackend, ca_id: str) -> None:
    # Developer guide, "Manage your CA certificates": "A CA certificate can be registered in DEFAULT mode by only
    # one account in a Region" (SNI_ONLY: by several). The error code AWS answers is UNCONFIRMED (JITP.md).
    for account in list(iot_backends.values()):
        other = account.get(backend.region_name) if hasattr(account, "get") else None
        if other is None or other is backend:
            continue
        registered = other.ca_certificates.get(ca_id)
        if registered is not None and certificate_mode(registered) == "DEFAULT":
            raise IoTError(
                "ResourceAlreadyExistsException",
                f"The CA certificate {ca_id} is registered in DEFAULT mode by another account in {backend.region_name};"
                " a CA certificate can be registered in DEFAULT mode by only one account in a Region (use SNI_ONLY)",
            )


def active_device_certificates(backend: IoTBackend, ca_id: str) -> list[str]:
    """The ids of the ACTIVE device certificates registered with the CA ``ca_id``."""
    return sorted(
        cert.certificate_id
        for cert in backend.certificates.values()
        if getattr(cert, "ca_certificate_id", None) == ca_id and cert.status == "ACTIVE"
    )


def _delete_ca_certificate(original: Callable[..., Any], self: IoTResponse) -> Any:
    backend = self.iot_backend
    ca_id = urllib.parse.unquote(self.path.rstrip("/").split("/")[-1])
    with provisioning_api._LOCK:
        ca = backend.ca_certificates.get(ca_id)
        # An ACTIVE CA: moto's own CertificateStateException (model). An INACTIVE CA that still has ACTIVE device
        # certificates: refused too, our strict reading (UNCONFIRMED, JITP.md), so nothing here relies on a delete
        # that would leave ACTIVE certificates of a CA that no longer exists.
        if ca is not None and ca.status != "ACTIVE":
            active = active_device_certificates(backend, ca_id)
            if active:
                raise IoTError(
                    "CertificateStateException",
                    f"The CA certificate {ca_id} cannot be deleted: {len(active)} device certificate(s) it signed "
                    "are still ACTIVE",
                )
        return original(self)


def _update_ca_certificate(original: Callable[..., Any], self: IoTResponse) -> EmptyResult:
    params = _params(self)
    backend = self.iot_backend
    with provisioning_api._LOCK:
        ca = backend.describe_ca_certificate(params["certificateId"])
        remove = bool(params.get("removeAutoRegistration", False))
        if remove and params.get("registrationConfig"):
            raise invalid("registrationConfig and removeAutoRegistration=true cannot be given together")
        config = check_registration_config(backend, params.get("registrationConfig"))
        changed = False
        new_status = params.get("newStatus")
        if new_status is not None and new_status != ca.status:
            ca.status, changed = new_status, True
        new_auto = params.get("newAutoRegistrationStatus")
        if new_auto is not None and new_auto != auto_registration_status(ca):
            ca.auto_registration_status, changed = new_auto, True
        if config is not None and config != ca.registration_config:
            ca.registration_config, changed = config, True
        # removeAutoRegistration drops the registration config (the provisioning template); the
        # auto-registration status is newAutoRegistrationStatus's business (our reading, see JITP.md).
        if remove and ca.registration_config:
            ca.registration_config, changed = None, True
        if changed:
            ca.last_modified_date = utcnow()
            ca.customer_version = getattr(ca, "customer_version", 1) + 1
    return EmptyResult()


def _describe_ca_certificate(original: Callable[..., Any], self: IoTResponse) -> ActionResult:
    result = original(self)
    ca = self.iot_backend.describe_ca_certificate(self.path.split("/")[-1])
    body = response_body(result, "CA certificate description", "certificateDescription")
    description = body["certificateDescription"]
    description.pop("transferData", None)  # not a member of CACertificateDescription
    loaded = _loaded(ca)
    description.update(
        {
            "autoRegistrationStatus": auto_registration_status(ca),
            "certificateMode": certificate_mode(ca),
            "customerVersion": getattr(ca, "customer_version", 1),
            "validity": {"notBefore": loaded.not_valid_before_utc, "notAfter": loaded.not_valid_after_utc},
        }
    )
    if getattr(ca, "generation_id", None):
        description["generationId"] = ca.generation_id
    if not ca.registration_config:
        body.pop("registrationConfig", None)
    return result


def _get_registration_code(original: Callable[..., Any], self: IoTResponse) -> ActionResult:
    # Model, GetRegistrationCode: "If you already have a registration code, this API call will return the
    # same registration code." moto made a new UUID on every call.
    return ActionResult({"registrationCode": registration_code(self.iot_backend)})


def delete_registration_code(self: IoTResponse) -> EmptyResult:
    # Model, GetRegistrationCode: a new code is created "if the registration code doesn't exist or has been
    # deleted".
    state_of(self.iot_backend).code_generation += 1
    return EmptyResult()


def list_ca_certificates(self: IoTResponse) -> ActionResult:
    params = _params(self)
    cas = list(self.iot_backend.ca_certificates.values())
    name = params.get("templateName")
    if name is not None:
        cas = [ca for ca in cas if (ca.registration_config or {}).get("templateName") == name]
    if not params.get("ascendingOrder", False):
        cas.reverse()  # newest first unless ascendingOrder (our reading of "Determines the order")
    summaries = [
        {
            "certificateArn": ca.arn,
            "certificateId": ca.certificate_id,
            "status": ca.status,
            "creationDate": ca.creation_date,
        }
        for ca in cas
    ]
    size = params.get("pageSize") or OPTIONS.default_page_size
    items, marker = page(summaries, int(size), params.get("marker"))
    result: dict[str, Any] = {"certificates": items}
    if marker is not None:
        result["nextMarker"] = marker
    return ActionResult(result)


# --------------------------------------------------------------------------- the first connection


@dataclass
class Answer:
    """What the simulated connection answers: an HTTP status and a JSON payload."""

    status: str
    payload: dict[str, Any]


def refused(code: str, reason: str, **extra: Any) -> Answer:
    return Answer("403 Forbidden", {"connected": False, "code": code, "reason": reason, **extra})


def subject_parameters(certificate: x509.Certificate, cert_id: str) -> dict[str, str]:
    """The JITP parameters this certificate provides (attributes missing from its subject are left out)."""
    values: dict[str, str] = {ID_PARAMETER: cert_id}
    for parameter, oid in SUBJECT_PARAMETERS.items():
        attributes = certificate.subject.get_attributes_for_oid(oid)
        if attributes:
            value = attributes[0].value
            values[parameter] = value if isinstance(value, str) else value.decode()
    return values


def _things_of(backend: IoTBackend, principal_arn: str) -> list[str]:
    return [thing for (principal, thing) in backend.principal_things if principal == principal_arn]


def _connected(backend: IoTBackend, registered: Any, **extra: Any) -> Answer:
    things = _things_of(backend, registered.arn)
    return Answer(
        "200 OK",
        {
            "connected": True,
            "certificateId": registered.certificate_id,
            "status": registered.status,
            "thingName": things[0] if things else None,
            **extra,
        },
    )


def _issuing_ca(backend: IoTBackend, device: x509.Certificate, chain: list[x509.Certificate]) -> Any:
    """The registered CA certificate that signed ``device`` (the one in the chain, if the chain has it)."""
    candidates = [ca for ca in backend.ca_certificates.values() if issued_by(device, _loaded(ca))]
    from_chain = next((c for c in chain if issued_by(device, c)), None)
    if from_chain is not None:
        candidates = [ca for ca in candidates if der(_loaded(ca)) == der(from_chain)]
    # Up to 10 CAs may share a subject (and a key, when a CA certificate was re-issued): prefer a usable one.
    usable = [ca for ca in candidates if ca.status == "ACTIVE" and auto_registration_status(ca) == ENABLE]
    return (usable or candidates or [None])[0]


def _record_registration(backend: IoTBackend, registered: Any, ca: Any) -> dict[str, Any]:
    # Developer guide, "just-in-time registration": AWS IoT registers the certificate PENDING_ACTIVATION and
    # publishes this message on $aws/events/certificates/registered/<caCertificateId>.
    millis = int(registered.creation_date.timestamp() * 1000)
    event = {
        "topic": REGISTERED_TOPIC.format(ca_id=ca.certificate_id),
        "message": {
            "certificateId": registered.certificate_id,
            "caCertificateId": ca.certificate_id,
            "timestamp": int(utcnow().timestamp() * 1000),
            "certificateStatus": "PENDING_ACTIVATION",
            "awsAccountId": backend.account_id,
            "certificateRegistrationTimestamp": str(millis),
        },
    }
    state_of(backend).events.append(event)
    return event


def _describe_error(error: ServiceException | HTTPException) -> str:
    """``Code: message`` for the errors RegisterThing's engine and moto's backend raise."""
    if isinstance(error, ServiceException):
        return f"{error.code}: {error.message}"
    code = getattr(error, "error_type", None) or type(error).__name__
    message = getattr(error, "message", None) or str(error)
    return f"{code}: {message}"


def _provision(backend: IoTBackend, registered: Any, device: x509.Certificate, body: str) -> Answer:
    """Apply the CA's template as RegisterThing would, with the parameters taken from the certificate."""
    parameters = subject_parameters(device, registered.certificate_id)
    try:
        plan = provisioning_api.plan_registration(backend, body, parameters)
        response = provisioning_api.apply_registration(backend, plan)
    except (ServiceException, HTTPException) as error:  # the engine's refusals and moto's
        # The certificate stays registered PENDING_ACTIVATION: the JITP workflow registers it first and
        # activates it only "when the device provisioning flow is complete" (developer guide).
        return refused(
            "PROVISIONING_FAILED",
            f"provisioning failed: {_describe_error(error)}",
            certificateId=registered.certificate_id,
            status=registered.status,
        )
    if registered.status == "PENDING_ACTIVATION":
        # A template that does not set the certificate's status: the flow is complete, so ACTIVE.
        backend.update_certificate(registered.certificate_id, "ACTIVE")
    if registered.status != "ACTIVE":
        return refused(
            "CERTIFICATE_NOT_ACTIVE",
            f"the template left the certificate {registered.status}",
            certificateId=registered.certificate_id,
            status=registered.status,
        )
    thing_name = plan.thing.name if plan.thing is not None else None
    answer = _connected(backend, registered, provisioned=True, resourceArns=response["resourceArns"])
    if thing_name is not None:
        answer.payload["thingName"] = thing_name
    return answer


def connect(backend: IoTBackend, certificate_pem: Any, chain_pem: Any = None) -> Answer:
    """A device presents ``certificate_pem`` (and optionally its CA chain) on its first TLS connection."""
    try:
        device = load_certificate(certificate_pem, "certificatePem")
        chain = load_chain(chain_pem)
    except CertificateProblem as error:
        return Answer("400 Bad Request", {"connected": False, "code": "BAD_REQUEST", "reason": str(error)})
    if not within_validity(device, datetime.datetime.now(datetime.timezone.utc)):
        return refused("CERTIFICATE_INVALID", "the device certificate is expired or not yet valid")
    registered = backend.certificates.get(certificate_id(device))
    if registered is not None and registered.status == "ACTIVE":
        return _connected(backend, registered, provisioned=False)  # a known device: it just connects
    if registered is not None and registered.status != "PENDING_ACTIVATION":
        return refused(
            "CERTIFICATE_NOT_ACTIVE",
            f"the certificate is {registered.status}; only an ACTIVE certificate can connect",
            certificateId=registered.certificate_id,
            status=registered.status,
        )
    # Unknown (or still PENDING_ACTIVATION): auto-registration through the CA that signed it.
    ca = _issuing_ca(backend, device, chain)
    if ca is None:
        return refused(
            "CA_NOT_REGISTERED",
            "CA not registered: no registered CA certificate signed this certificate "
            f"(issuer {device.issuer.rfc4514_string()})",
        )
    if ca.status != "ACTIVE":
        return refused(
            "CA_INACTIVE", f"the CA certificate {ca.certificate_id} is {ca.status}", caCertificateId=ca.certificate_id
        )
    if auto_registration_status(ca) != ENABLE:
        return refused(
            "AUTO_REGISTRATION_DISABLED",
            f"auto-registration disabled on the CA certificate {ca.certificate_id}",
            caCertificateId=ca.certificate_id,
        )
    body, problem = None, None
    try:
        body = template_body_of(backend, ca.registration_config)
    except CertificateProblem as error:
        problem = str(error)
    event = None
    if registered is None:
        try:
            registered = backend.register_certificate(
                certificate_pem=certificate_pem,
                ca_certificate_pem=ca.certificate_pem,
                set_as_active=False,
                status="PENDING_ACTIVATION",
            )
        except IoTClientError as error:
            # AWS registers nothing it would refuse at RegisterCertificate (a weak key, a SHA-1 signature): the
            # device is refused at the handshake, as with any invalid certificate.
            return refused(
                "CERTIFICATE_INVALID", f"the certificate cannot be registered: {error.error_type}: {error.message}"
            )
        if body is None and problem is None:
            event = _record_registration(backend, registered, ca)
    ids = {"certificateId": registered.certificate_id, "caCertificateId": ca.certificate_id}
    if problem is not None:
        return refused("PROVISIONING_FAILED", f"provisioning failed: {problem}", status=registered.status, **ids)
    if body is None:
        # JITR: registered, not activated; the device cannot connect until something activates it.
        return refused(
            "PENDING_ACTIVATION",
            "pending activation: the certificate is registered PENDING_ACTIVATION; activate it to connect",
            status=registered.status,
            event=event,
            **ids,
        )
    answer = _provision(backend, registered, device, body)
    answer.payload.update(ids)
    return answer


# --------------------------------------------------------------------------- control routes


def _backend(account_id: Any, region: Any) -> IoTBackend:
    return iot_backends[str(account_id or DEFAULT_ACCOUNT_ID)][str(region or DEFAULT_REGION)]


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""


def connect_route(method: str, environ: dict[str, Any]) -> tuple[str, Any]:
    """``POST /_local/jitp/connect`` with {"certificatePem", "chainPem"?, "region"?, "accountId"?}."""
    if method != "POST":
        return "405 Method Not Allowed", {"error": "POST a JSON object with certificatePem"}
    try:
        request = json.loads(_read_body(environ) or b"null")
    except ValueError:
        request = None
    if not isinstance(request, dict):
        return "400 Bad Request", {
            "connected": False,
            "code": "BAD_REQUEST",
            "reason": "the body must be a JSON object",
        }
    backend = _backend(request.get("accountId"), request.get("region"))
    with provisioning_api._LOCK:
        answer = connect(backend, request.get("certificatePem"), request.get("chainPem"))
    return answer.status, answer.payload


def events_route(method: str, environ: dict[str, Any]) -> tuple[str, Any]:
    """``GET /_local/jitp/events[?region=...&accountId=...]``: the registration events, oldest first."""
    if method != "GET":
        return "405 Method Not Allowed", {"error": "GET only"}
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    backend = _backend(query.get("accountId", [None])[0], query.get("region", [None])[0])
    with provisioning_api._LOCK:
        return "200 OK", {"events": list(state_of(backend).events)}


# The server passes these the WSGI environ as well as the method (they read a body or a query string).
connect_route.takes_environ = True  # type: ignore[attr-defined]
events_route.takes_environ = True  # type: ignore[attr-defined]

CONTROL_ROUTES: dict[str, Callable[[str, dict[str, Any]], tuple[str, Any]]] = {
    "/_local/jitp/connect": connect_route,
    "/_local/jitp/events": events_route,
}


# --------------------------------------------------------------------------- install


def install() -> None:
    """Wrap moto's CA operations and add the ones it lacks (idempotent). Call after fidelity.install()."""
    global _INSTALLED
    if _INSTALLED:
        return
    for name, fix in (
        ("register_ca_certificate", _register_ca_certificate),
        ("update_ca_certificate", _update_ca_certificate),
        ("describe_ca_certificate", _describe_ca_certificate),
        ("delete_ca_certificate", _delete_ca_certificate),
        ("get_registration_code", _get_registration_code),
    ):
        _wrap(IoTResponse, name)(fix)
    IoTResponse.delete_registration_code = delete_registration_code  # type: ignore[attr-defined]
    IoTResponse.list_ca_certificates = list_ca_certificates  # type: ignore[attr-defined]
    _INSTALLED = True
