# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The AWS IoT registry read for the ``things`` inventory plugin: things, their groups, billing groups, certificates.

Reads are paged at the largest page each API serves, because the list quotas are low (ListThings 10 TPS, and
every page is one call): ListThings, ListThingGroups, ListThingsInThingGroup, ListBillingGroups,
ListThingsInBillingGroup, ListCertificates and ListThingPrincipals at 250, SearchIndex at 100 (its maximum).
Memberships are read per group (one ListThingsInThingGroup per group, not one ListThingGroupsForThing per thing):
an account has far fewer groups than things. Certificates cost one ListThingPrincipals per thing (20 TPS), so they
are read only when asked, by a few threads; botocore's adaptive retries slow down on throttling.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Mapping, Optional

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import ClientError, iter_pages, paginate
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError, is_error
from ansible_collections.iotfleet.provisioning.plugins.module_utils.indexing import THING_INDEX, require_thing_indexing
from ansible_collections.iotfleet.provisioning.plugins.module_utils.validation import (
    check_attribute_name,
    check_attribute_value,
    check_thing_group_name,
    check_thing_type_name,
)

PAGE_SIZE = 250  # ListThings & co: the most AWS serves per call
SEARCH_PAGE_SIZE = 100  # SearchIndex: "This maximum number cannot exceed 100" (API reference)


def validate_filters(options: Mapping[str, Any]) -> dict[str, Any]:
    """The filters, checked before any call; a ValidationError names the option and the rule."""
    groups = [check_thing_group_name("thing_groups", g) for g in options.get("thing_groups") or []]
    types = [check_thing_type_name("thing_types", t) for t in options.get("thing_types") or []]
    attributes = {}
    raw_attributes = options.get("attributes") or {}
    if not isinstance(raw_attributes, Mapping):
        raise ValidationError("attributes", "must be a dict of attribute names and values")
    for name, value in raw_attributes.items():
        attributes[check_attribute_name("attributes", name)] = check_attribute_value("attributes", value)
    query = options.get("query")
    if query is not None and (not isinstance(query, str) or not query.strip()):
        raise ValidationError("query", "must be a non-empty fleet indexing query string")
    concurrency = options.get("certificate_concurrency") or 4
    if not isinstance(concurrency, int) or not 1 <= concurrency <= 20:
        raise ValidationError("certificate_concurrency", f"must be an integer from 1 to 20, got {concurrency!r}")
    return {
        "thing_groups": groups,
        "recursive": bool(options.get("recursive", True)),
        "thing_types": types,
        "attributes": attributes,
        "query": query,
        "billing_groups": bool(options.get("billing_groups", True)),
        "certificates": bool(options.get("certificates", False)),
        "certificate_concurrency": concurrency,
    }


def search_names(client: Any, query: str) -> set[str]:
    """Names of the things a fleet indexing query matches (fleet indexing must be on)."""
    require_thing_indexing(client, "query")
    names: set[str] = set()
    pages = iter_pages(client, "search_index", indexName=THING_INDEX, queryString=query, maxResults=SEARCH_PAGE_SIZE)
    for page in pages:
        names.update(doc["thingName"] for doc in page.get("things", []))
    return names


def list_things(client: Any, filters: Mapping[str, Any]) -> list[dict[str, Any]]:
    """ListThings, with the one type and one attribute AWS can filter on server-side when that is all there is."""
    params: dict[str, Any] = {"maxResults": PAGE_SIZE}
    if len(filters["thing_types"]) == 1:
        params["thingTypeName"] = filters["thing_types"][0]
    if len(filters["attributes"]) == 1:
        ((params["attributeName"], params["attributeValue"]),) = filters["attributes"].items()
    return paginate(client, "list_things", "things", **params)


def read_groups(client: Any) -> dict[str, dict[str, Any]]:
    """Every thing group: parent, whether it is dynamic, and its direct members."""
    groups: dict[str, dict[str, Any]] = {}
    listed = paginate(client, "list_thing_groups", "thingGroups", recursive=True, maxResults=PAGE_SIZE)
    for item in listed:
        name = item["groupName"]
        try:
            raw = client.describe_thing_group(thingGroupName=name)
            members = paginate(
                client, "list_things_in_thing_group", "things", thingGroupName=name, maxResults=PAGE_SIZE
            )
        except ClientError as error:
            if is_error(error, "ResourceNotFoundException"):  # deleted since it was listed
                continue
            raise
        groups[name] = {
            "parent": (raw.get("thingGroupMetadata") or {}).get("parentGroupName") or None,
            "dynamic": bool(raw.get("queryString")),
            "members": set(members),
        }
    return groups


def read_billing_groups(client: Any) -> dict[str, str]:
    """thing name -> billing group name."""
    by_thing: dict[str, str] = {}
    for item in paginate(client, "list_billing_groups", "billingGroups", maxResults=PAGE_SIZE):
        try:
            members = paginate(
                client,
                "list_things_in_billing_group",
                "things",
                billingGroupName=item["groupName"],
                maxResults=PAGE_SIZE,
            )
        except ClientError as error:
            if is_error(error, "ResourceNotFoundException"):
                continue
            raise
        for thing in members:
            by_thing[thing] = item["groupName"]
    return by_thing


def descendants(groups: Mapping[str, Mapping[str, Any]], names: Iterable[str]) -> set[str]:
    """The groups named and all their child groups, any depth."""
    found = set(names)
    frontier = list(found)
    while frontier:
        parent = frontier.pop()
        for name, group in groups.items():
            if group["parent"] == parent and name not in found:
                found.add(name)
                frontier.append(name)
    return found


def read_certificates(client: Any, names: list[str], concurrency: int) -> dict[str, list[dict[str, Any]]]:
    """thing name -> its certificates (id, arn, status), sorted by id."""
    status = {
        c["certificateArn"]: c.get("status")
        for c in paginate(client, "list_certificates", "certificates", pageSize=PAGE_SIZE)
    }

    def principals(name: str) -> list[str]:
        try:
            return paginate(client, "list_thing_principals", "principals", thingName=name, maxResults=PAGE_SIZE)
        except ClientError as error:
            if is_error(error, "ResourceNotFoundException"):  # deleted since it was listed
                return []
            raise

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        answers = list(pool.map(principals, names))
    result: dict[str, list[dict[str, Any]]] = {}
    for name, arns in zip(names, answers):
        certs = [
            {"certificate_id": arn.rsplit("/", 1)[-1], "certificate_arn": arn, "status": status.get(arn)}
            for arn in arns
            if ":cert/" in arn
        ]
        result[name] = sorted(certs, key=lambda c: c["certificate_id"])
    return result


def _selected(thing: Mapping[str, Any], filters: Mapping[str, Any], allowed: Optional[set[str]]) -> bool:
    if allowed is not None and thing["thingName"] not in allowed:
        return False
    if filters["thing_types"] and thing.get("thingTypeName") not in filters["thing_types"]:
        return False
    attributes = thing.get("attributes") or {}
    return all(attributes.get(k) == v for k, v in filters["attributes"].items())


def read_registry(client: Any, filters: Mapping[str, Any]) -> dict[str, Any]:
    """``things``: the selected things as host records, sorted by name (the inventory plugin documents each key);
    ``thing_groups``: every thing group's parent and kind, for the group hierarchy. JSON-ready (it is cached)."""
    allowed: Optional[set[str]] = None
    if filters["query"]:
        allowed = search_names(client, filters["query"])
    groups = read_groups(client)
    if filters["thing_groups"]:
        missing = [g for g in filters["thing_groups"] if g not in groups]
        if missing:
            raise ValidationError(
                "thing_groups", f"no thing group named {', '.join(missing)} in this account and region"
            )
        wanted = descendants(groups, filters["thing_groups"]) if filters["recursive"] else set(filters["thing_groups"])
        in_groups = set().union(*(groups[g]["members"] for g in wanted))
        allowed = in_groups if allowed is None else allowed & in_groups
    things = [t for t in list_things(client, filters) if _selected(t, filters, allowed)]
    billing = read_billing_groups(client) if filters["billing_groups"] else {}
    names = sorted(t["thingName"] for t in things)
    certificates = (
        read_certificates(client, names, filters["certificate_concurrency"]) if filters["certificates"] else {}
    )
    member_of: dict[str, list[str]] = {}
    for group_name in sorted(groups):
        for thing_name in groups[group_name]["members"]:
            member_of.setdefault(thing_name, []).append(group_name)
    records = []
    for thing in sorted(things, key=lambda t: t["thingName"]):
        name = thing["thingName"]
        mine = member_of.get(name, [])
        record: dict[str, Any] = {
            "name": name,
            "arn": thing.get("thingArn"),
            "thing_type": thing.get("thingTypeName") or None,
            "attributes": dict(thing.get("attributes") or {}),
            "version": thing.get("version"),
            "thing_groups": [g for g in mine if not groups[g]["dynamic"]],
            "dynamic_thing_groups": [g for g in mine if groups[g]["dynamic"]],
        }
        if filters["billing_groups"]:
            record["billing_group"] = billing.get(name)
        if filters["certificates"]:
            record["certificates"] = certificates.get(name, [])
        records.append(record)
    hierarchy = {name: {"parent": g["parent"], "dynamic": g["dynamic"]} for name, g in sorted(groups.items())}
    return {"things": records, "thing_groups": hierarchy}
