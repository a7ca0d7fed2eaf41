# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The IoT access layer: one call interface, not-found handled once, and the lifecycle steps.

Every engine reaches AWS IoT through a *call*: ``call(method, **params)`` makes one API call and
``call.pages(method, result_key, **params)`` returns every item of a paged list. Single-resource modules wrap
their boto3 client (adaptive retries, ``ClientCall``); the fleet passes its paced ``fleet_rate.Caller``, which
has the same two methods. The steps below take a call, so the same code runs under either retry layer
(``retry.py`` says which layer retries what).

- ``unless_gone`` / ``ignoring``: a call whose ResourceNotFoundException (or other named codes) means "nothing
  to do" returns None instead of raising.
- ``certificate_id_of_arn``: the one way from a certificate ARN to its id.
- ``remove_certificate`` / ``delete_certificate``: a certificate goes in the order AWS requires (INACTIVE,
  detached from every thing, detached from every policy, deleted), the delete retried while the detaches are
  not visible yet.
- ``delete_thing`` / ``delete_policy``: gone meaning done, retried while a detach is not visible yet.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from ansible_collections.iotfleet.provisioning.plugins.module_utils import retry
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import is_client_error, is_error

NOT_FOUND = "ResourceNotFoundException"
# The largest page AWS serves: fewer calls against low list quotas (ListThings: 10 TPS).
PAGE_SIZE = 250

Sleep = Callable[[float], None]


class ClientCall:
    """The call interface over a boto3 client: botocore's adaptive retries, botocore's paginators."""

    def __init__(self, client: Any):
        self.client = client

    def __call__(self, method: str, **params: Any) -> Dict[str, Any]:
        return getattr(self.client, method)(**params)

    def pages(self, method: str, result_key: str, **params: Any) -> List[Any]:
        # Imported here: aws.py imports boto3, which a call interface over a stand-in client does not need.
        from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import paginate

        return paginate(self.client, method, result_key, **params)


def as_call(client_or_call: Any) -> Any:
    """A call for either a boto3 client (wrapped in ``ClientCall``) or something that already is one."""
    if isinstance(client_or_call, ClientCall) or callable(getattr(client_or_call, "pages", None)):
        return client_or_call
    return ClientCall(client_or_call)


def ignoring(call: Any, codes: Tuple[str, ...], method: str, **params: Any) -> Optional[Dict[str, Any]]:
    """``call(method, **params)``, or None when AWS answers one of ``codes``."""
    try:
        return call(method, **params)
    except Exception as error:  # only the named codes are swallowed
        if is_client_error(error) and is_error(error, *codes):
            return None
        raise


def unless_gone(call: Any, method: str, **params: Any) -> Optional[Dict[str, Any]]:
    """``call(method, **params)``, or None when the resource does not exist (gone is as good as done)."""
    return ignoring(call, (NOT_FOUND,), method, **params)


def certificate_id_of_arn(arn: str) -> Optional[str]:
    """The certificate id at the end of a certificate ARN (``arn:...:cert/ID``); None for any other principal."""
    if ":cert/" in arn:
        return arn.rsplit("/", 1)[1]
    return None


def describe_certificate(call: Any, cert_id: str) -> Optional[Dict[str, Any]]:
    """DescribeCertificate's certificateDescription, or None when there is no such certificate."""
    response = unless_gone(call, "describe_certificate", certificateId=cert_id)
    return None if response is None else response["certificateDescription"]


def pages_unless_gone(call: Any, method: str, result_key: str, **params: Any) -> Optional[List[Any]]:
    """``call.pages(...)``, or None when the listed-in resource (thing, group, policy) does not exist."""
    try:
        return call.pages(method, result_key, **params)
    except Exception as error:  # only not-found means "no such resource"
        if is_client_error(error) and is_error(error, NOT_FOUND):
            return None
        raise


def thing_principals(call: Any, thing: str) -> Optional[List[str]]:
    """The principal ARNs attached to a thing (ListThingPrincipals, every page), or None without the thing."""
    return pages_unless_gone(call, "list_thing_principals", "principals", thingName=thing, maxResults=PAGE_SIZE)


def visible_attributes(attributes: Optional[Mapping[str, str]]) -> Dict[str, str]:
    """Attributes as AWS shows them: an empty value is no attribute."""
    return {k: v for k, v in (attributes or {}).items() if v != ""}


def thing_view(raw: Mapping[str, Any], groups: Optional[Iterable[str]] = None) -> Dict[str, Any]:
    """The one view of a thing, from a DescribeThing answer or a ListThings entry (same field names).

    ``thing_groups`` only when the groups were listed (ListThingGroupsForThing: a call of its own).
    """
    view: Dict[str, Any] = {
        "name": raw.get("thingName"),
        "arn": raw.get("thingArn"),
        "thing_id": raw.get("thingId"),
        "thing_type": raw.get("thingTypeName") or None,
        "attributes": visible_attributes(raw.get("attributes")),
    }
    if groups is not None:
        view["thing_groups"] = sorted(groups)
    view["version"] = raw.get("version")
    if raw.get("billingGroupName"):  # the key exists only while the thing is in a billing group
        view["billing_group"] = raw["billingGroupName"]
    return view


def read_thing(call: Any, name: str, with_groups: bool = True) -> Optional[Dict[str, Any]]:
    """DescribeThing (and its direct thing groups), or None when the thing does not exist."""
    try:
        raw = call("describe_thing", thingName=name)
        groups = (
            [
                g["groupName"]
                for g in call.pages("list_thing_groups_for_thing", "thingGroups", thingName=name, maxResults=PAGE_SIZE)
            ]
            if with_groups
            else None
        )
    except Exception as error:  # gone, also between the two calls: no thing
        if is_client_error(error) and is_error(error, NOT_FOUND):
            return None
        raise
    return thing_view(raw, groups)


def certificate_things(call: Any, arn: str) -> List[str]:
    """The things a certificate is attached to (ListPrincipalThings, every page)."""
    return call.pages("list_principal_things", "things", principal=arn, maxResults=PAGE_SIZE)


def certificate_policy_names(call: Any, arn: str) -> List[str]:
    """The names of the policies attached to a certificate (ListAttachedPolicies, every page), as listed."""
    return [p["policyName"] for p in call.pages("list_attached_policies", "policies", target=arn, pageSize=PAGE_SIZE)]


def delete_certificate(
    call: Any,
    cert_id: str,
    arn: str,
    sleep: Sleep = time.sleep,
    schedule: retry.Consistency = retry.CERTIFICATE_DELETE,
    policies: Optional[Iterable[str]] = None,
) -> None:
    """Detach every policy, then delete; the certificate is already INACTIVE and detached from every thing.

    ``policies``: the attached policy names when the caller has read them already (else they are listed).
    """
    for policy in certificate_policy_names(call, arn) if policies is None else policies:
        unless_gone(call, "detach_policy", policyName=policy, target=arn)
    retry.with_waits(lambda: unless_gone(call, "delete_certificate", certificateId=cert_id), schedule, sleep)


def remove_certificate(
    call: Any,
    cert_id: str,
    arn: str,
    status: Optional[str],
    sleep: Sleep = time.sleep,
    schedule: retry.Consistency = retry.CERTIFICATE_DELETE,
) -> None:
    """INACTIVE, detach every thing, detach every policy, delete: the order AWS requires."""
    if status not in ("INACTIVE", "REVOKED"):
        call("update_certificate", certificateId=cert_id, newStatus="INACTIVE")
    for thing in sorted(certificate_things(call, arn)):
        unless_gone(call, "detach_thing_principal", thingName=thing, principal=arn)
    policies = sorted(set(certificate_policy_names(call, arn)))
    delete_certificate(call, cert_id, arn, sleep, schedule, policies)


def delete_thing(
    call: Any, name: str, sleep: Sleep = time.sleep, schedule: retry.Consistency = retry.FLEET_THING_DELETE
) -> None:
    """DeleteThing; a thing already gone is done, a refusal while a detach is not visible yet is retried."""
    retry.with_waits(lambda: unless_gone(call, "delete_thing", thingName=name), schedule, sleep)


def delete_policy(
    call: Any, name: str, sleep: Sleep = time.sleep, schedule: retry.Consistency = retry.POLICY_DELETE
) -> None:
    """DeletePolicy; a policy already gone is done, a refusal while its detaches are not visible yet is retried.

    The caller has detached every target first: a DeleteConflictException after that is AWS's delay.
    """
    retry.with_waits(lambda: unless_gone(call, "delete_policy", policyName=name), schedule, sleep)


__all__ = [
    "NOT_FOUND",
    "PAGE_SIZE",
    "ClientCall",
    "as_call",
    "certificate_id_of_arn",
    "certificate_policy_names",
    "certificate_things",
    "delete_certificate",
    "delete_policy",
    "delete_thing",
    "describe_certificate",
    "ignoring",
    "pages_unless_gone",
    "read_thing",
    "remove_certificate",
    "thing_principals",
    "thing_view",
    "unless_gone",
    "visible_attributes",
]
