"""Remove what one `make test-aws` run made: every resource whose name starts with the run's prefix.

Only names with this run's own random prefix are touched. Certificates have no name: one is removed when it
is attached to a thing or a policy of the run and to nothing else; one also attached to a thing outside the
prefix is left alone and reported. CA certificates and thing registration tasks carry no name either and are
never swept (the runner skips the targets that make them).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator

from botocore.exceptions import ClientError


def _pages(
    method: Callable[..., dict], key: str, token: str = "nextToken", out: str = "nextToken", **params: Any
) -> Iterator[Any]:
    while True:
        page = method(**params)
        yield from page.get(key, [])
        if not page.get(out):
            return
        params[token] = page[out]


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _retry(call: Callable[[], Any], codes: tuple[str, ...], wait: float, step: float = 2.0) -> None:
    """Repeat ``call`` while AWS answers one of ``codes`` (eventual consistency, the thing type wait), up to
    ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            call()
            return
        except ClientError as error:
            if _code(error) not in codes or time.monotonic() >= deadline:
                raise
        time.sleep(step)


class Sweep:
    """The sweep of one prefix; ``run()`` returns what was removed, kept and failed, by kind."""

    def __init__(self, prefix: str, iot: Any, iam: Any, thing_type_wait: float = 360.0, log=print) -> None:
        if len(prefix) < 6:
            raise ValueError("a sweep prefix shorter than 6 characters could match resources of others")
        self.prefix = prefix
        self.iot = iot
        self.iam = iam
        self.thing_type_wait = thing_type_wait
        self.log = log
        self.report: dict[str, dict[str, list[str]]] = {}

    def _ours(self, name: str) -> bool:
        return name.startswith(self.prefix)

    def _note(self, kind: str, outcome: str, name: str) -> None:
        self.report.setdefault(kind, {}).setdefault(outcome, []).append(name)
        self.log(f"  {outcome:8} {kind} {name}")

    def _attempt(self, kind: str, name: str, action: Callable[[], None]) -> None:
        try:
            action()
            self._note(kind, "removed", name)
        except ClientError as error:
            if _code(error) == "ResourceNotFoundException":
                return
            self._note(kind, "failed", f"{name} ({_code(error)}: {error.response['Error'].get('Message', '')})")

    def run(self) -> dict[str, dict[str, list[str]]]:
        iot = self.iot
        things = [t["thingName"] for t in _pages(iot.list_things, "things") if self._ours(t["thingName"])]
        policies = [p["policyName"] for p in _pages(iot.list_policies, "policies", "marker", "nextMarker")]
        policies = [name for name in policies if self._ours(name)]
        certificates: dict[str, str] = {}  # arn -> id
        for thing in things:
            for principal in _pages(iot.list_thing_principals, "principals", thingName=thing):
                if ":cert/" in principal:
                    certificates[principal] = principal.rsplit("/", 1)[1]
        for policy in policies:
            for target in _pages(iot.list_targets_for_policy, "targets", "marker", "nextMarker", policyName=policy):
                if ":cert/" in target:
                    certificates[target] = target.rsplit("/", 1)[1]
        for arn, cert_id in sorted(certificates.items()):
            self._certificate(arn, cert_id)
        for thing in things:
            self._thing(thing)
        for policy in policies:
            self._policy(policy)
        groups = [g["groupName"] for g in _pages(iot.list_thing_groups, "thingGroups") if self._ours(g["groupName"])]
        described = {name: self._describe_group(name) for name in groups}
        # Children before parents: a group with child groups cannot be deleted. A dynamic group (it has a
        # query) has its own delete call.
        for group in sorted(groups, key=lambda name: len(described[name]["parents"]), reverse=True):
            if described[group]["dynamic"]:
                self._attempt("thing group", group, lambda g=group: iot.delete_dynamic_thing_group(thingGroupName=g))
            else:
                self._attempt("thing group", group, lambda g=group: iot.delete_thing_group(thingGroupName=g))
        for billing in _pages(iot.list_billing_groups, "billingGroups"):
            if self._ours(billing["groupName"]):
                name = billing["groupName"]
                self._attempt("billing group", name, lambda n=name: iot.delete_billing_group(billingGroupName=n))
        for template in _pages(iot.list_provisioning_templates, "templates"):
            if self._ours(template["templateName"]):
                name = template["templateName"]
                self._attempt(
                    "provisioning template", name, lambda n=name: iot.delete_provisioning_template(templateName=n)
                )
        for thing_type in _pages(iot.list_thing_types, "thingTypes"):
            if self._ours(thing_type["thingTypeName"]):
                self._thing_type(thing_type)
        for role in _pages(self.iam.list_roles, "Roles", "Marker", "Marker"):
            if self._ours(role["RoleName"]):
                self._role(role["RoleName"])
        return self.report

    def _describe_group(self, name: str) -> dict[str, Any]:
        try:
            group = self.iot.describe_thing_group(thingGroupName=name)
        except ClientError:
            return {"parents": [], "dynamic": False}
        parents = group.get("thingGroupMetadata", {}).get("rootToParentThingGroups", [])
        return {"parents": parents, "dynamic": bool(group.get("queryString"))}

    def _certificate(self, arn: str, cert_id: str) -> None:
        iot = self.iot
        holders = list(_pages(iot.list_principal_things, "things", principal=arn))
        strangers = [name for name in holders if not self._ours(name)]
        if strangers:
            self._note("certificate", "kept", f"{cert_id} (also attached to {', '.join(sorted(strangers))})")
            return

        def remove() -> None:
            iot.update_certificate(certificateId=cert_id, newStatus="INACTIVE")
            for thing in holders:
                iot.detach_thing_principal(thingName=thing, principal=arn)
            for policy in list(_pages(iot.list_attached_policies, "policies", "marker", "nextMarker", target=arn)):
                iot.detach_policy(policyName=policy["policyName"], target=arn)
            _retry(lambda: iot.delete_certificate(certificateId=cert_id), ("DeleteConflictException",), 30)

        self._attempt("certificate", cert_id, remove)

    def _thing(self, name: str) -> None:
        iot = self.iot

        def remove() -> None:
            for principal in list(_pages(iot.list_thing_principals, "principals", thingName=name)):
                iot.detach_thing_principal(thingName=name, principal=principal)
            # DetachThingPrincipal is eventually consistent: DeleteThing may still see the principal for a while.
            _retry(lambda: iot.delete_thing(thingName=name), ("InvalidRequestException",), 30)

        self._attempt("thing", name, remove)

    def _policy(self, name: str) -> None:
        iot = self.iot

        def remove() -> None:
            for target in list(_pages(iot.list_targets_for_policy, "targets", "marker", "nextMarker", policyName=name)):
                iot.detach_policy(policyName=name, target=target)
            for version in iot.list_policy_versions(policyName=name).get("policyVersions", []):
                if not version.get("isDefaultVersion"):
                    iot.delete_policy_version(policyName=name, policyVersionId=version["versionId"])
            iot.delete_policy(policyName=name)

        self._attempt("policy", name, remove)

    def _thing_type(self, thing_type: dict) -> None:
        iot = self.iot
        name = thing_type["thingTypeName"]

        def remove() -> None:
            if not thing_type.get("thingTypeMetadata", {}).get("deprecated"):
                iot.deprecate_thing_type(thingTypeName=name)
            # AWS deletes a thing type only 5 minutes after its deprecation.
            _retry(
                lambda: iot.delete_thing_type(thingTypeName=name),
                ("InvalidRequestException",),
                self.thing_type_wait,
                min(10.0, self.thing_type_wait / 10),
            )

        self._attempt("thing type", name, remove)

    def _role(self, name: str) -> None:
        iam = self.iam

        def remove() -> None:
            for policy in list(
                _pages(iam.list_attached_role_policies, "AttachedPolicies", "Marker", "Marker", RoleName=name)
            ):
                iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
            for policy in list(_pages(iam.list_role_policies, "PolicyNames", "Marker", "Marker", RoleName=name)):
                iam.delete_role_policy(RoleName=name, PolicyName=policy)
            iam.delete_role(RoleName=name)

        self._attempt("IAM role", name, remove)
