"""Fleet provisioning over MQTT on the data plane: the reserved topics AWS IoT Core serves to a claim certificate.

Developer guide, "Device provisioning MQTT API":

* ``$aws/certificates/create/json`` (CreateKeysAndCertificate): a new key pair and certificate, the certificate
  PENDING_ACTIVATION, answered on ``.../accepted`` with ``certificateId``, ``certificatePem``, ``privateKey`` and
  ``certificateOwnershipToken``.
* ``$aws/certificates/create-from-csr/json`` (CreateCertificateFromCsr): ``certificateSigningRequest`` in, the
  same answer without ``privateKey``.
* ``$aws/provisioning-templates/<name>/provision/json`` (RegisterThing): ``certificateOwnershipToken`` and
  ``parameters`` in; the FLEET_PROVISIONING template runs (``provisioning_api``'s RegisterThing engine, with
  ``AWS::IoT::Certificate::Id`` set to the token's certificate) and ``.../accepted`` answers ``thingName`` and
  ``deviceConfiguration``.

Failures are answered on ``.../rejected`` as ``{"statusCode", "errorCode", "errorMessage"}``. The requests are
authorized like any publish (the claim certificate's policy must allow them) and answers are delivered only to
the requesting connection, if it subscribed to them and may receive them. Not emulated, refused loudly: the CBOR
topics (the connection is closed naming them) and pre-provisioning hooks (rejected naming the hook).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import urllib.request
from typing import Any, Callable

import provisioning_api
from cryptography import x509
from fidelity_core import STATE_LOCK, local_state
from moto.core.exceptions import ServiceException
from werkzeug.exceptions import HTTPException

CREATE = "$aws/certificates/create/json"
CREATE_FROM_CSR = "$aws/certificates/create-from-csr/json"
PROVISION = re.compile(r"^\$aws/provisioning-templates/(?P<name>[^/]+)/provision/json$")
CBOR = re.compile(r"^\$aws/(certificates/create(-from-csr)?|provisioning-templates/[^/]+/provision)/cbor$")
TOKEN_LIFETIME = 3600.0  # AWS: the ownership token is valid for one hour
HOOK_TIMEOUT = 5.0  # AWS: the pre-provisioning hook must answer within 5 seconds

# Stand-ins for pre-provisioning hook Lambdas, by function ARN: {"answer": {...}} (a fixed answer) or
# {"url": "http://..."} (the hook's payload is POSTed there, the JSON answer used). Set with
# POST /_local/provisioning-hooks; a hook without a stand-in rejects RegisterThing, naming the ARN.
_HOOKS: dict[str, dict[str, Any]] = {}
_HOOK_CALLS: list[dict[str, Any]] = []  # what each stand-in was asked and answered, for tests
_HOOKS_LOCK = threading.Lock()


class Rejected(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.body = {"statusCode": status, "errorCode": code, "errorMessage": message}


class NotEmulated(Exception):
    """A reserved topic the endpoint does not serve: the connection is closed, naming it."""


def is_request(topic: str) -> bool:
    return topic in (CREATE, CREATE_FROM_CSR) or bool(PROVISION.match(topic)) or bool(CBOR.match(topic))


def _tokens(backend: Any) -> dict[str, tuple[str, float]]:
    return local_state(backend).setdefault("fleet_provisioning_tokens", {})


def _token_for(backend: Any, cert_id: str) -> str:
    token = secrets.token_urlsafe(96)
    _tokens(backend)[token] = (cert_id, time.monotonic() + TOKEN_LIFETIME)
    return token


def _payload(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw.decode() or "{}")
    except (UnicodeDecodeError, ValueError) as error:
        raise Rejected(400, "InvalidPayload", f"the payload is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise Rejected(400, "InvalidPayload", "the payload must be a JSON object")
    return body


def _pending(certificate: Any) -> None:
    # AWS: a certificate made over MQTT is PENDING_ACTIVATION until RegisterThing's template activates it.
    certificate.status = "PENDING_ACTIVATION"


def create_keys(backend: Any, raw: bytes) -> dict[str, Any]:
    _payload(raw)
    certificate, key_pair = backend.create_keys_and_certificate(set_as_active=False)
    _pending(certificate)
    return {
        "certificateId": certificate.certificate_id,
        "certificatePem": certificate.certificate_pem,
        "privateKey": key_pair["PrivateKey"],
        "certificateOwnershipToken": _token_for(backend, certificate.certificate_id),
    }


def create_from_csr(backend: Any, raw: bytes) -> dict[str, Any]:
    csr_pem = _payload(raw).get("certificateSigningRequest")
    if not isinstance(csr_pem, str) or not csr_pem.strip():
        raise Rejected(400, "InvalidPayload", "certificateSigningRequest: required, a PEM CSR")
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError as error:
        raise Rejected(400, "InvalidCsr", f"certificateSigningRequest: not a PEM CSR: {error}") from None
    if not csr.is_signature_valid:
        raise Rejected(400, "InvalidCsr", "certificateSigningRequest: its signature does not verify")
    certificate = backend.register_certificate(provisioning_api.certificate_from_csr(csr), None, False, "INACTIVE")
    _pending(certificate)
    return {
        "certificateId": certificate.certificate_id,
        "certificatePem": certificate.certificate_pem,
        "certificateOwnershipToken": _token_for(backend, certificate.certificate_id),
    }


def _run_hook(
    backend: Any, name: str, hook: dict[str, str], cert_id: str, parameters: dict[str, str], caller: dict[str, str]
) -> dict[str, str]:
    """The template's pre-provisioning hook, answered by its registered stand-in; the parameters it leaves."""
    arn = hook.get("targetArn", "")
    with _HOOKS_LOCK:
        stand_in = dict(_HOOKS.get(arn) or {})
    if not stand_in:
        raise Rejected(
            501,
            "NotEmulated",
            f"the template {name} has the pre-provisioning hook {arn} and the local endpoint has no stand-in "
            "for it (POST /_local/provisioning-hooks)",
        )
    request = {
        "claimCertificateId": caller["certificateId"],
        "certificateId": cert_id,
        "certificatePem": backend.certificates[cert_id].certificate_pem,
        "templateArn": provisioning_api.template_arn(backend, name),
        "clientId": caller["clientId"],
        "parameters": parameters,
    }
    answer = stand_in.get("answer")
    if "url" in stand_in:
        http = urllib.request.Request(
            stand_in["url"], data=json.dumps(request).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(http, timeout=HOOK_TIMEOUT) as response:
                answer = json.loads(response.read())
        except (OSError, ValueError) as error:
            raise Rejected(500, "InternalFailure", f"the pre-provisioning hook {arn} failed: {error}") from None
    with _HOOKS_LOCK:
        _HOOK_CALLS.append({"targetArn": arn, "request": request, "answer": answer})
    if not isinstance(answer, dict) or not isinstance(answer.get("allowProvisioning"), bool):
        raise Rejected(500, "InternalFailure", f"the pre-provisioning hook {arn} answered no allowProvisioning")
    if not answer["allowProvisioning"]:
        raise Rejected(403, "AccessDenied", f"the pre-provisioning hook {arn} did not allow provisioning")
    overrides = answer.get("parameterOverrides") or {}
    if not isinstance(overrides, dict) or not all(isinstance(v, str) for v in overrides.values()):
        raise Rejected(500, "InternalFailure", f"the pre-provisioning hook {arn}: parameterOverrides not strings")
    return {**parameters, **overrides}


def register_thing(backend: Any, name: str, raw: bytes, caller: dict[str, str]) -> dict[str, Any]:
    body = _payload(raw)
    token = body.get("certificateOwnershipToken")
    if not isinstance(token, str) or not token:
        raise Rejected(400, "InvalidCertificateOwnershipToken", "Certificate ownership token cannot be empty.")
    owned = _tokens(backend).get(token)
    if owned is None or owned[1] < time.monotonic():
        raise Rejected(400, "InvalidCertificateOwnershipToken", "the certificate ownership token is unknown or expired")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict) or not all(isinstance(v, str) for v in parameters.values()):
        raise Rejected(400, "InvalidParameters", "parameters: an object of strings")
    template = provisioning_api.state_of(backend).templates.get(name)
    if template is None:
        raise Rejected(404, "ResourceNotFound", f"no provisioning template {name}")
    if template.template_type != "FLEET_PROVISIONING":
        raise Rejected(400, "InvalidRequest", f"the template {name} is of type {template.template_type}")
    if not template.enabled:
        raise Rejected(400, "InvalidRequest", f"the template {name} is disabled")
    if template.hook:
        parameters = _run_hook(backend, name, template.hook, owned[0], parameters, caller)
    template_body = template.versions[template.default_version_id].body
    values = {**parameters, "AWS::IoT::Certificate::Id": owned[0]}
    try:
        plan = provisioning_api.plan_registration(backend, template_body, values)
        provisioning_api.apply_registration(backend, plan)
        parsed = provisioning_api.parse_template(template_body)
        resolved = provisioning_api.resolve_parameters(parsed, values)
        configuration = provisioning_api.Evaluator(resolved, parsed.mappings)(
            parsed.device_configuration, "DeviceConfiguration"
        )
    except (ServiceException, HTTPException, provisioning_api.TemplateError) as error:
        message = getattr(error, "message", None) or str(error)
        raise Rejected(400, getattr(error, "code", None) or "InvalidRequest", message) from None
    del _tokens(backend)[token]  # one use
    answer: dict[str, Any] = {"deviceConfiguration": configuration or {}}
    if plan.thing is not None:
        answer["thingName"] = plan.thing.name
    return answer


def handle(
    backend: Any, topic: str, payload: bytes, respond: Callable[[str, bytes], None], caller: dict[str, str]
) -> str:
    """Serve one request published on a reserved topic; ``respond(topic, payload)`` delivers an answer.

    ``caller`` names the requesting connection: ``certificateId`` (the claim) and ``clientId``.
    """
    if CBOR.match(topic):
        raise NotEmulated(f"{topic}: CBOR payloads of fleet provisioning are not emulated (use the json topics)")
    match = PROVISION.match(topic)
    try:
        with STATE_LOCK:
            if topic == CREATE:
                answer = create_keys(backend, payload)
            elif topic == CREATE_FROM_CSR:
                answer = create_from_csr(backend, payload)
            else:
                answer = register_thing(backend, match.group("name"), payload, caller)  # type: ignore[union-attr]
    except Rejected as rejection:
        respond(f"{topic}/rejected", json.dumps(rejection.body).encode())
        return f"rejected: {rejection.body['errorCode']}: {rejection.body['errorMessage']}"
    respond(f"{topic}/accepted", json.dumps(answer).encode())
    return "accepted"


def hooks_route(method: str, environ: dict[str, Any]) -> tuple[str, Any]:
    """``/_local/provisioning-hooks``: POST {"targetArn", "answer"|"url"} sets a stand-in; GET lists stand-ins and
    the calls made to them; DELETE forgets both."""
    if method == "DELETE":
        with _HOOKS_LOCK:
            _HOOKS.clear()
            _HOOK_CALLS.clear()
        return "200 OK", {"hooks": {}, "calls": []}
    if method == "GET":
        with _HOOKS_LOCK:
            return "200 OK", {"hooks": dict(_HOOKS), "calls": list(_HOOK_CALLS)}
    if method != "POST":
        return "405 Method Not Allowed", {"error": "GET, POST or DELETE"}
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"null")
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("targetArn"), str):
        return "400 Bad Request", {"error": "targetArn: required, the hook's Lambda function ARN"}
    if ("answer" in body) == ("url" in body):
        return "400 Bad Request", {
            "error": "give exactly one of answer (a fixed hook answer) or url (called per request)"
        }
    if "answer" in body and not isinstance((body["answer"] or {}).get("allowProvisioning"), bool):
        return "400 Bad Request", {"error": "answer.allowProvisioning: required, true or false"}
    if "url" in body and not str(body["url"]).startswith(("http://", "https://")):
        return "400 Bad Request", {"error": "url: an http:// or https:// URL"}
    stand_in = {"answer": body["answer"]} if "answer" in body else {"url": body["url"]}
    with _HOOKS_LOCK:
        _HOOKS[body["targetArn"]] = stand_in
    return "200 OK", {"targetArn": body["targetArn"], **stand_in}


hooks_route.takes_environ = True  # type: ignore[attr-defined]

CONTROL_ROUTES: dict[str, Callable[[str, dict[str, Any]], tuple[str, Any]]] = {
    "/_local/provisioning-hooks": hooks_route
}
