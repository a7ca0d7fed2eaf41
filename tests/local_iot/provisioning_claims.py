"""CreateProvisioningClaim (fleet provisioning by trusted user), which moto lacks.

API reference, CreateProvisioningClaim: ``POST /provisioning-templates/<templateName>/provisioning-claim``, no
body; answers ``certificateId``, ``certificatePem``, ``keyPair`` and ``expiration``; errors
InvalidRequestException, ResourceNotFoundException (and the usual throttling/internal ones). The developer guide
("Provisioning by trusted user"): the claim is a temporary certificate, valid five minutes, that a device uses to
call the fleet provisioning MQTT API once.

Our readings, where the documentation is silent (UNCONFIRMED, see PROVISIONING_API.md):

* a template that is not FLEET_PROVISIONING, or is disabled, is refused with InvalidRequestException;
* the claim certificate is not an ordinary registered certificate: no policy is attached to it and it is not
  listed by ListCertificates or DescribeCertificate. On the data plane it may connect (any client id) and use
  the certificate-creating topics and the provisioning topics of *its* template only, nothing else;
* after its expiration the certificate is refused (its X.509 notAfter is the expiration, so the TLS handshake
  fails as for any expired certificate).

The lifetime is AWS's 300 seconds unless ``--provisioning-claim-lifetime`` or ``POST /_local/provisioning-claims``
``{"lifetimeSeconds": N}`` says otherwise (tests use a second or two instead of waiting five minutes); ``DELETE``
restores the command-line value; ``GET`` lists the settings and the claims made. Nothing here imports from
``plugins/``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import threading
from dataclasses import dataclass
from typing import Any, Callable

import provisioning_api
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from fidelity_core import STATE_LOCK, local_state
from moto.core.responses import ActionResult
from moto.iot.models import iot_backends
from moto.iot.responses import IoTResponse
from moto.utilities.utils import get_partition

DEFAULT_LIFETIME = 300.0  # AWS: a provisioning claim is valid for five minutes
_SETTINGS = {"startup": DEFAULT_LIFETIME, "lifetime": DEFAULT_LIFETIME}
_SETTINGS_LOCK = threading.Lock()
_INSTALLED = False


@dataclass
class Claim:
    certificate_id: str
    certificate_arn: str
    certificate_pem: str
    template_name: str
    expiration: datetime.datetime

    def expired(self, now: datetime.datetime | None = None) -> bool:
        return (now or datetime.datetime.now(datetime.timezone.utc)) >= self.expiration

    def view(self) -> dict[str, Any]:
        return {
            "certificateId": self.certificate_id,
            "templateName": self.template_name,
            "expiration": self.expiration.isoformat(),
            "expired": self.expired(),
        }


def _claims(backend: Any) -> dict[str, Claim]:
    return local_state(backend).setdefault("provisioning_claims", {})


def lifetime() -> float:
    with _SETTINGS_LOCK:
        return _SETTINGS["lifetime"]


def _issue(lifetime_seconds: float) -> tuple[str, str, str, datetime.datetime]:
    """(certificate PEM, private key PEM, public key PEM, expiration): issued by the stand-in for AWS's CA."""
    issuer_name, issuer_key = provisioning_api._issuer()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    # Whole seconds: X.509 validity has no fractions, and the answer's expiration must be the certificate's.
    expiration = now + datetime.timedelta(seconds=max(1, round(lifetime_seconds)))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "AWS IoT Provisioning Claim")]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(seconds=1))
        .not_valid_after(expiration)
        .sign(issuer_key, hashes.SHA256())
    )
    return (
        certificate.public_bytes(serialization.Encoding.PEM).decode(),
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        ).decode(),
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
        expiration,
    )


def create_provisioning_claim(self: IoTResponse) -> ActionResult:
    params = provisioning_api._params(self)
    name = provisioning_api.validate_template_name(params.get("templateName"))
    backend = self.iot_backend
    with STATE_LOCK:
        template = provisioning_api._template(provisioning_api.state_of(backend), name)
        if template.template_type != "FLEET_PROVISIONING":
            raise provisioning_api.invalid(
                f"The provisioning template {name} is of type {template.template_type}; provisioning claims are "
                "made for FLEET_PROVISIONING templates"
            )
        if not template.enabled:
            raise provisioning_api.invalid(f"The provisioning template {name} is disabled")
        pem, private_key, public_key, expiration = _issue(lifetime())
        der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
        cert_id = hashlib.sha256(der).hexdigest()
        region = backend.region_name
        arn = f"arn:{get_partition(region)}:iot:{region}:{backend.account_id}:cert/{cert_id}"
        _claims(backend)[cert_id] = Claim(cert_id, arn, pem, name, expiration)
    return ActionResult(
        {
            "certificateId": cert_id,
            "certificatePem": pem,
            "keyPair": {"PublicKey": public_key, "PrivateKey": private_key},
            "expiration": expiration,
        }
    )


# --------------------------------------------------------------------------- the data plane's view


def _backends() -> list[Any]:
    found = []
    for account in list(iot_backends.values()):
        found.extend(list(account.values()))
    return found


def find(cert_id: str) -> tuple[Any, Claim] | None:
    """The backend and claim of a provisioning claim certificate (caller holds STATE_LOCK)."""
    for backend in _backends():
        claim = backend.__dict__.get("_local_fidelity", {}).get("provisioning_claims", {}).get(cert_id)
        if claim is not None:
            return backend, claim
    return None


def trusted_pems() -> list[str]:
    """Claim certificates for the TLS trust store (an expired one still fails the handshake on its notAfter)."""
    pems = []
    for backend in _backends():
        claims = backend.__dict__.get("_local_fidelity", {}).get("provisioning_claims", {})
        pems.extend(claim.certificate_pem for claim in claims.values())
    return pems


def implicit_policy(claim: Claim, arn_prefix: str) -> str:
    """What a claim may do (our reading): connect, create certificates, provision with its own template."""
    create = f"{arn_prefix}:topic/$aws/certificates/create"
    provision = f"$aws/provisioning-templates/{claim.template_name}/provision"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{arn_prefix}:client/*"},
                {
                    "Effect": "Allow",
                    "Action": ["iot:Publish", "iot:Receive"],
                    "Resource": [f"{create}/*", f"{create}-from-csr/*", f"{arn_prefix}:topic/{provision}/*"],
                },
                {
                    "Effect": "Allow",
                    "Action": "iot:Subscribe",
                    "Resource": [
                        f"{arn_prefix}:topicfilter/$aws/certificates/create/*",
                        f"{arn_prefix}:topicfilter/$aws/certificates/create-from-csr/*",
                        f"{arn_prefix}:topicfilter/{provision}/*",
                    ],
                },
            ],
        }
    )


def policies_for(certificate_id: str) -> list[tuple[str, str]]:
    """The implicit policy of a claim certificate, as (name, document); empty for any other certificate."""
    found = find(certificate_id)
    if found is None:
        return []
    backend, claim = found
    partition = get_partition(backend.region_name)
    prefix = f"arn:{partition}:iot:{backend.region_name}:{backend.account_id}"
    return [(f"provisioning-claim:{claim.template_name}", implicit_policy(claim, prefix))]


# --------------------------------------------------------------------------- control path and installation


def claims_route(method: str, environ: dict[str, Any]) -> tuple[str, Any]:
    """``/_local/provisioning-claims``: GET settings and claims; POST {"lifetimeSeconds": N}; DELETE restores."""
    if method == "DELETE":
        with _SETTINGS_LOCK:
            _SETTINGS["lifetime"] = _SETTINGS["startup"]
    elif method == "POST":
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = json.loads(environ["wsgi.input"].read(length) or b"null")
        except ValueError:
            body = None
        value = body.get("lifetimeSeconds") if isinstance(body, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= 86400:
            return "400 Bad Request", {"error": "lifetimeSeconds: required, a number of seconds from 1 to 86400"}
        with _SETTINGS_LOCK:
            _SETTINGS["lifetime"] = float(value)
    elif method != "GET":
        return "405 Method Not Allowed", {"error": "GET, POST or DELETE"}
    with STATE_LOCK:
        claims = [claim.view() for backend in _backends() for claim in _claims_of(backend)]
    return "200 OK", {"lifetimeSeconds": lifetime(), "defaultLifetimeSeconds": _SETTINGS["startup"], "claims": claims}


def _claims_of(backend: Any) -> list[Claim]:
    return list(backend.__dict__.get("_local_fidelity", {}).get("provisioning_claims", {}).values())


claims_route.takes_environ = True  # type: ignore[attr-defined]

CONTROL_ROUTES: dict[str, Callable[..., tuple[str, Any]]] = {"/_local/provisioning-claims": claims_route}


def add_argument_group(parser: Any) -> None:
    group = parser.add_argument_group(
        "provisioning claims", "CreateProvisioningClaim (fleet provisioning by trusted user)"
    )
    group.add_argument(
        "--provisioning-claim-lifetime",
        type=float,
        default=DEFAULT_LIFETIME,
        metavar="SECONDS",
        help="how long a provisioning claim certificate is valid (default: %(default)s, as AWS)",
    )


def install(args: Any = None) -> None:
    global _INSTALLED
    startup = float(getattr(args, "provisioning_claim_lifetime", DEFAULT_LIFETIME) or DEFAULT_LIFETIME)
    with _SETTINGS_LOCK:
        _SETTINGS["startup"] = _SETTINGS["lifetime"] = startup
    if not _INSTALLED:
        IoTResponse.create_provisioning_claim = create_provisioning_claim  # type: ignore[attr-defined]
        _INSTALLED = True
