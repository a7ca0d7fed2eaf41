"""Tags on AWS IoT resources, which moto does not keep, served by the local AWS IoT endpoint.

* TagResource / UntagResource / ListTagsForResource for the ARNs of provisioning templates, thing groups,
  thing types, policies and CA certificates. Any other ARN (things and certificates, which AWS IoT does not
  tag, and the taggable types this endpoint does not serve: billing groups, rules, jobs, ...) is
  InvalidRequestException naming what the endpoint supports; a well-formed ARN of a supported type whose
  resource does not exist is ResourceNotFoundException.
* The ``tags`` given to CreateThingGroup, CreateThingType, CreatePolicy and RegisterCACertificate (moto
  dropped them; CreateProvisioningTemplate stores its own, in ``provisioning_api``) are stored, with the same
  checks as TagResource: the key pattern and lengths (``fidelity_validation``, from the model), no ``aws:``
  prefix, at most 50 tags per resource.
* DeleteThingGroup, DeleteThingType, DeletePolicy and DeleteCACertificate drop the resource's tags, so a
  resource created again under the same ARN starts without any (the rule other AWS IoT services' tagging
  pages state: "If you delete a resource, any tags associated with the resource are also deleted").

The tags live in ``provisioning_api.state_of(backend).tags`` (one dict per account and region, keyed by ARN,
the one the templates' tags already use), on moto's backend, so ``POST /moto-api/reset`` clears them.
Nothing here imports from the collection's ``plugins/``. README.md beside this file lists the behaviours
and what could not be confirmed.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any, Callable, Optional

from fidelity_core import _wrap, response_body
from moto.core.responses import ActionResult, EmptyResult
from moto.iot.models import IoTBackend
from moto.iot.responses import IoTResponse
from provisioning_api import (
    _LOCK,
    MAX_TAGS,
    IoTError,
    _drop_none,
    _params,
    invalid,
    not_found,
    page,
    state_of,
    validate_tags,
)

_INSTALLED = False

# The resource types this endpoint keeps tags for: the word of the ARN's resource part -> (what it is called,
# the ARN of the resource with that id in the backend, or None when there is none).
_Finder = Callable[[IoTBackend, str], Optional[str]]


def _template_arn(backend: IoTBackend, name: str) -> str | None:
    template = state_of(backend).templates.get(name)
    return template.arn if template is not None else None


def _thing_group_arn(backend: IoTBackend, name: str) -> str | None:
    return next((g.arn for g in backend.thing_groups.values() if g.thing_group_name == name), None)


def _thing_type_arn(backend: IoTBackend, name: str) -> str | None:
    return next((t.arn for t in backend.thing_types.values() if t.thing_type_name == name), None)


def _policy_arn(backend: IoTBackend, name: str) -> str | None:
    policy = backend.policies.get(name)
    return policy.arn if policy is not None else None


def _ca_certificate_arn(backend: IoTBackend, certificate_id: str) -> str | None:
    ca = backend.ca_certificates.get(certificate_id)
    return ca.arn if ca is not None else None


TAGGABLE: dict[str, tuple[str, _Finder]] = {
    "provisioningtemplate": ("provisioning template", _template_arn),
    "thinggroup": ("thing group", _thing_group_arn),
    "thingtype": ("thing type", _thing_type_arn),
    "policy": ("policy", _policy_arn),
    "cacert": ("CA certificate", _ca_certificate_arn),
}
SUPPORTED = (
    "provisioning templates, thing groups, thing types, policies and CA certificates "
    "(arn:aws:iot:REGION:ACCOUNT:provisioningtemplate/NAME, thinggroup/NAME, thingtype/NAME, policy/NAME, "
    "cacert/ID)"
)
_IOT_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iot:[a-z0-9-]+:\d{12}:([a-z]+)/(.+)$")


def resource_of(backend: IoTBackend, arn: Any) -> str:
    """The ARN of an existing taggable resource, or the error AWS answers (see the module docstring)."""
    if not isinstance(arn, str) or not arn.startswith("arn:"):
        raise invalid(f"resourceArn: not an ARN: {arn!r}")
    match = _IOT_ARN_RE.match(arn)
    if match is None or match.group(1) not in TAGGABLE:
        # AWS IoT tags neither things nor certificates; moto keeps no IoT tags, this endpoint adds these.
        raise invalid(f"resourceArn: the local endpoint supports tags only on {SUPPORTED}, got {arn}")
    what, find = TAGGABLE[match.group(1)]
    if find(backend, match.group(2)) != arn:
        raise not_found(f"No {what} with ARN {arn}")
    return arn


def _limit(tags: OrderedDict[str, str], code: str) -> OrderedDict[str, str]:
    if len(tags) > MAX_TAGS:
        raise IoTError(code, f"tags: at most {MAX_TAGS} tags per resource, got {len(tags)}")
    return tags


def _forget_if_gone(backend: IoTBackend, arn: str | None) -> None:
    """Drop the tags of ``arn`` once its resource no longer exists (after a delete)."""
    if arn is None:
        return
    match = _IOT_ARN_RE.match(arn)
    if match is not None and TAGGABLE[match.group(1)][1](backend, match.group(2)) != arn:
        state_of(backend).tags.pop(arn, None)


# --------------------------------------------------------------------------- the tag API


def tag_resource(self: IoTResponse) -> ActionResult:
    params = _params(self)
    tags = validate_tags(params.get("tags"))
    with _LOCK:
        arn = resource_of(self.iot_backend, params.get("resourceArn"))
        current = state_of(self.iot_backend).tags.setdefault(arn, OrderedDict())
        merged = OrderedDict(current)
        merged.update(tags)
        _limit(merged, "LimitExceededException")  # counted on the result: overwriting a key adds nothing
        current.update(tags)
    return EmptyResult()


def untag_resource(self: IoTResponse) -> ActionResult:
    params = _params(self)
    with _LOCK:
        arn = resource_of(self.iot_backend, params.get("resourceArn"))
        current = state_of(self.iot_backend).tags.get(arn, OrderedDict())
        for key in params.get("tagKeys") or []:
            current.pop(key, None)  # a key the resource does not have is no error
    return EmptyResult()


def list_tags_for_resource(self: IoTResponse) -> ActionResult:
    params = _params(self)
    with _LOCK:
        arn = resource_of(self.iot_backend, params.get("resourceArn"))
        tags = [{"Key": k, "Value": v} for k, v in state_of(self.iot_backend).tags.get(arn, {}).items()]
    items, token = page(tags, None, params.get("nextToken"))
    return ActionResult(_drop_none({"tags": items, "nextToken": token}))


# --------------------------------------------------------------------------- tags at creation


def _install_creation_tags() -> None:
    # Each Create* below takes `tags` (botocore model); moto ignored them. They are checked before anything is
    # created. Over 50 tags: the error the operation's model lists for a limit (LimitExceededException for
    # RegisterCACertificate; CreateThingGroup, CreateThingType and CreatePolicy list none, so
    # InvalidRequestException), our reading. A create that returns an existing thing group or thing type
    # (same name and properties) leaves that resource's tags alone (UNCONFIRMED).
    creations = (
        ("create_thing_group", "thingGroupArn", "InvalidRequestException", lambda b: b.thing_groups),
        ("create_thing_type", "thingTypeArn", "InvalidRequestException", lambda b: b.thing_types),
        ("create_policy", "policyArn", "InvalidRequestException", lambda b: {p.arn for p in b.policies.values()}),
        (
            "register_ca_certificate",
            "certificateArn",
            "LimitExceededException",
            lambda b: {ca.arn for ca in b.ca_certificates.values()},
        ),
    )
    for method, arn_key, limit_code, existing_arns in creations:
        _wrap(IoTResponse, method)(_creation_with_tags(arn_key, limit_code, existing_arns))


def _creation_with_tags(
    arn_key: str, limit_code: str, existing_arns: Callable[[IoTBackend], Any]
) -> Callable[..., Any]:
    def create(original: Callable[..., Any], self: IoTResponse) -> Any:
        tags = _limit(validate_tags(_params(self).get("tags")), limit_code)
        with _LOCK:
            backend = self.iot_backend
            before = set(existing_arns(backend))
            result = original(self)
            arn = response_body(result, "tags on create").get(arn_key)
            if arn and arn not in before:
                store = state_of(backend).tags
                store.pop(arn, None)  # a new resource starts with the tags of its request only
                if tags:
                    store[arn] = tags
        return result

    return create


# --------------------------------------------------------------------------- tags dropped with the resource


def _install_deletions() -> None:
    # Backend methods, so that every caller's delete drops the tags. A refused delete keeps them.
    @_wrap(IoTBackend, "delete_thing_group")
    def delete_thing_group(original: Callable[..., Any], self: IoTBackend, thing_group_name: str) -> None:
        with _LOCK:
            arn = _thing_group_arn(self, thing_group_name)
            original(self, thing_group_name)
            _forget_if_gone(self, arn)

    @_wrap(IoTBackend, "delete_thing_type")
    def delete_thing_type(original: Callable[..., Any], self: IoTBackend, thing_type_name: str) -> None:
        with _LOCK:
            arn = _thing_type_arn(self, thing_type_name)
            original(self, thing_type_name)
            _forget_if_gone(self, arn)

    @_wrap(IoTBackend, "delete_policy")
    def delete_policy(original: Callable[..., Any], self: IoTBackend, policy_name: str) -> None:
        with _LOCK:
            arn = _policy_arn(self, policy_name)
            original(self, policy_name)
            _forget_if_gone(self, arn)

    @_wrap(IoTBackend, "delete_ca_certificate")
    def delete_ca_certificate(original: Callable[..., Any], self: IoTBackend, certificate_id: str) -> None:
        with _LOCK:
            arn = _ca_certificate_arn(self, certificate_id)
            original(self, certificate_id)
            _forget_if_gone(self, arn)


def install() -> None:
    """Serve the tag API and wrap the creates and deletes (idempotent). Call after jitp.install(): the
    RegisterCACertificate wrapper goes around jitp's."""
    global _INSTALLED
    if _INSTALLED:
        return
    IoTResponse.tag_resource = tag_resource  # type: ignore[attr-defined]
    IoTResponse.untag_resource = untag_resource  # type: ignore[attr-defined]
    IoTResponse.list_tags_for_resource = list_tags_for_resource  # type: ignore[attr-defined]
    _install_creation_tags()
    _install_deletions()
    _INSTALLED = True
