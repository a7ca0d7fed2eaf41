"""TestAuthorization, which moto lacks, answered by the data plane's evaluator (policy_eval.py).

API reference, TestAuthorization: "Tests if a specified principal is authorized to perform an IoT action on a
specified resource." The request names a certificate ARN as ``principal``, the MQTT ``clientId`` (query string),
``authInfos`` (each an ``actionType`` CONNECT, PUBLISH, SUBSCRIBE or RECEIVE and full resource ARNs),
``policyNamesToAdd`` (evaluated as if attached) and ``policyNamesToSkip`` (attached, left out). Each authInfo
gets one authResult: ``authDecision`` ALLOWED, EXPLICIT_DENY or IMPLICIT_DENY, the policies that allowed or
denied, and ``missingContextValues`` (policy variables that had no value for this principal and client id).

Our readings (README.md, "Device data plane"): an authInfo with several resources is ALLOWED only if every one
is, EXPLICIT_DENY if any is explicitly denied; ``implicitDeny.policies`` lists the policies evaluated; the
certificate's status does not matter (the question is the policies'). A Cognito principal or pool, and a policy
the evaluator cannot read, are InvalidRequestException naming what is not emulated, never an answer.
"""

from __future__ import annotations

from typing import Any

import dataplane
import policy_eval
from cryptography import x509
from fidelity_core import STATE_LOCK
from moto.core.responses import ActionResult
from moto.iot.responses import IoTResponse
from provisioning_api import invalid, not_found

ACTIONS = {"CONNECT": "iot:Connect", "PUBLISH": "iot:Publish", "SUBSCRIBE": "iot:Subscribe", "RECEIVE": "iot:Receive"}

_INSTALLED = False


def _params(response: IoTResponse) -> dict[str, Any]:
    response.parse_parameters(response.normalized_request)
    return dict(response.params)


def _principal(backend: Any, arn: Any) -> dataplane.Principal:
    if not isinstance(arn, str) or not arn:
        raise invalid("principal: required, the ARN of a certificate (arn:aws:iot:REGION:ACCOUNT:cert/ID)")
    if ":cert/" not in arn:
        raise invalid(
            f"principal: {arn} is not a certificate ARN; the local endpoint emulates certificate principals only"
        )
    cert_id = arn.rsplit("/", 1)[-1]
    registered = backend.certificates.get(cert_id)
    if registered is None or registered.arn != arn:
        raise not_found(f"principal: no certificate {arn} in this account and region")
    certificate = x509.load_pem_x509_certificate(registered.certificate_pem.encode())
    return dataplane.Principal(backend, registered.arn, cert_id, certificate)


def _policy(backend: Any, name: str) -> Any:
    policy = backend.policies.get(name)
    if policy is None:
        raise not_found(f"policyNamesToAdd: no policy {name}")
    return policy


def _summary(backend: Any, names: list[str]) -> list[dict[str, str]]:
    return [{"policyName": name, "policyArn": backend.policies[name].arn} for name in names if name in backend.policies]


def authorize(backend: Any, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("cognitoIdentityPoolId"):
        raise invalid("cognitoIdentityPoolId: Cognito identities are not emulated by the local endpoint")
    principal = _principal(backend, params.get("principal"))
    client_id = params.get("clientId")
    thing = dataplane.connection_thing(principal, client_id)
    skip = set(params.get("policyNamesToSkip") or [])
    policies = [(name, document) for name, document in dataplane.policies_of(principal, thing) if name not in skip]
    for name in params.get("policyNamesToAdd") or []:
        if name not in dict(policies):
            policies.append((name, _policy(backend, name).document))
    results = []
    for index, info in enumerate(params.get("authInfos") or []):
        action = ACTIONS.get(info.get("actionType"))
        if action is None:
            raise invalid(f"authInfos[{index}].actionType: one of {', '.join(ACTIONS)}")
        resources = info.get("resources") or []
        if not resources or not all(isinstance(resource, str) and resource for resource in resources):
            raise invalid(f"authInfos[{index}].resources: one or more resource ARNs")
        context = policy_eval.Context(client_id, thing, principal.certificate, principal.certificate_id)
        try:
            decisions = [policy_eval.evaluate(policies, action, resource, context) for resource in resources]
        except policy_eval.Unsupported as error:
            raise invalid(f"the local endpoint cannot evaluate these policies: {error}") from None
        answers = {decision.answer for decision in decisions}
        if policy_eval.EXPLICIT_DENY in answers:
            answer = policy_eval.EXPLICIT_DENY
        elif answers == {policy_eval.ALLOWED}:
            answer = policy_eval.ALLOWED
        else:
            answer = policy_eval.IMPLICIT_DENY
        deciding = sorted({name for decision in decisions if decision.answer == answer for name in decision.policies})
        result: dict[str, Any] = {
            "authInfo": {"actionType": info["actionType"], "resources": list(resources)},
            "allowed": {"policies": _summary(backend, deciding) if answer == policy_eval.ALLOWED else []},
            "denied": {
                "implicitDeny": {
                    "policies": _summary(backend, [n for n, _d in policies])
                    if answer == policy_eval.IMPLICIT_DENY
                    else []
                },
                "explicitDeny": {
                    "policies": _summary(backend, deciding) if answer == policy_eval.EXPLICIT_DENY else []
                },
            },
            "authDecision": answer,
            "missingContextValues": sorted(context.missing),
        }
        results.append(result)
    if not results:
        raise invalid("authInfos: at least one authInfo is required")
    return {"authResults": results}


def test_authorization(self: IoTResponse) -> ActionResult:
    params = _params(self)
    with STATE_LOCK:
        return ActionResult(authorize(self.iot_backend, params))


test_authorization.__test__ = False  # type: ignore[attr-defined]  # not a pytest test, whatever its name


def install() -> None:
    global _INSTALLED
    if _INSTALLED:
        return
    IoTResponse.test_authorization = test_authorization  # type: ignore[attr-defined]
    _INSTALLED = True
