"""fleet_indexing, dynamic_thing_group, billing_group planning, and the inventory's registry read (fake client)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from ansible_collections.iotfleet.provisioning.plugins.module_utils import billing_groups, dynamic_groups, indexing
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.inventory_things import (
    read_registry,
    validate_filters,
)

OFF = {
    "thing_indexing": "off",
    "thing_connectivity": False,
    "device_defender": False,
    "named_shadows": [],
    "custom_fields": [],
    "thing_group_indexing": False,
    "_thing_raw": {},
}


def desired_indexing(**params: Any) -> indexing.DesiredIndexing:
    return indexing.validate_fleet_indexing(params)


# --------------------------------------------------------------------------- fleet indexing


def test_indexing_plan_keeps_what_is_unset() -> None:
    current = dict(
        OFF, thing_indexing="registry", thing_connectivity=True, _thing_raw={"filter": {"geoLocations": [1]}}
    )
    plan = indexing.plan_indexing(current, desired_indexing(thing_group_indexing=True))
    assert plan["update"] == {"thingGroupIndexingConfiguration": {"thingGroupIndexingMode": "ON"}}
    plan = indexing.plan_indexing(current, desired_indexing(device_defender=True))
    assert plan["update"] == {
        "thingIndexingConfiguration": {
            "thingIndexingMode": "REGISTRY",
            "thingConnectivityIndexingMode": "STATUS",  # kept: UpdateIndexingConfiguration replaces the structure
            "deviceDefenderIndexingMode": "VIOLATIONS",
            "namedShadowIndexingMode": "OFF",
            "filter": {"geoLocations": [1]},  # what AWS keeps and the module does not manage stays
        }
    }


def test_indexing_plan_nothing_to_do() -> None:
    current = dict(OFF, thing_indexing="registry")
    assert indexing.plan_indexing(current, desired_indexing(thing_indexing="registry"))["update"] is None
    assert indexing.plan_indexing(current, desired_indexing())["update"] is None


def test_indexing_off_turns_dependants_off() -> None:
    current = dict(OFF, thing_indexing="registry_and_shadow", thing_connectivity=True, named_shadows=["a"])
    plan = indexing.plan_indexing(current, desired_indexing(thing_indexing="off"))
    assert plan["after"]["thing_connectivity"] is False and plan["after"]["named_shadows"] == []
    assert plan["update"]["thingIndexingConfiguration"]["namedShadowIndexingMode"] == "OFF"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"thing_indexing": "off", "thing_connectivity": True}, "thing_indexing"),
        ({"thing_indexing": "registry", "named_shadows": ["a"]}, "named_shadows"),
        ({"named_shadows": ["bad name"]}, "named_shadows"),
        ({"named_shadows": [f"s{i}" for i in range(11)]}, "named_shadows"),
        ({"custom_fields": [{"name": "x", "type": "Date"}]}, "custom_fields[0].type"),
        ({"thing_indexing": "on"}, "thing_indexing"),
    ],
)
def test_indexing_validation(params: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        indexing.validate_fleet_indexing(params)
    assert caught.value.field == field


def test_connectivity_against_current_off_is_refused_after_the_read() -> None:
    with pytest.raises(ValidationError, match="thing_connectivity"):
        indexing.plan_indexing(dict(OFF), desired_indexing(thing_connectivity=True))


# --------------------------------------------------------------------------- dynamic thing groups


def dynamic(**params: Any) -> dict[str, Any]:
    return dynamic_groups.validate_dynamic_group({"name": "g", "query_string": "thingName:a*", **params})


EXISTING_GROUP = {
    "name": "g",
    "arn": "arn",
    "thing_group_id": "id",
    "query_string": "thingName:a*",
    "index_name": "AWS_Things",
    "query_version": "2017-09-30",
    "status": "ACTIVE",
    "description": "d",
    "attributes": {"k": "v"},
    "version": 3,
}


def test_dynamic_plan_create_and_noop() -> None:
    plan = dynamic_groups.plan_dynamic_group(None, dynamic(description="d", tags={"t": "1"}))
    assert plan["create"] == {
        "thingGroupName": "g",
        "queryString": "thingName:a*",
        "indexName": "AWS_Things",
        "queryVersion": "2017-09-30",
        "thingGroupProperties": {"thingGroupDescription": "d"},
        "tags": [{"Key": "t", "Value": "1"}],
    }
    plan = dynamic_groups.plan_dynamic_group(EXISTING_GROUP, dynamic(description="d", attributes={"k": "v"}))
    assert plan["create"] is None and plan["update"] is None


def test_dynamic_plan_query_change_keeps_properties() -> None:
    plan = dynamic_groups.plan_dynamic_group(EXISTING_GROUP, dynamic(query_string="thingName:b*"))
    assert plan["update"] == {
        "thingGroupName": "g",
        "thingGroupProperties": {},
        "queryString": "thingName:b*",
        "expectedVersion": 3,
    }
    assert plan["after"]["description"] == "d" and plan["after"]["attributes"] == {"k": "v"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"query_string": " "}, "query_string"),
        ({"index_name": "AWS_ThingGroups"}, "index_name"),
        ({"query_version": "2020-01-01"}, "query_version"),
        ({"name": "bad name"}, "name"),
    ],
)
def test_dynamic_validation(params: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        dynamic(**params)
    assert caught.value.field == field


# --------------------------------------------------------------------------- billing groups


def billing(**params: Any) -> dict[str, Any]:
    return billing_groups.validate_billing_group({"name": "b", **params})


def test_billing_plan_members() -> None:
    current = {
        "name": "b",
        "arn": "arn",
        "billing_group_id": "id",
        "description": None,
        "version": 1,
        "things": ["t1", "t2"],
    }
    plan = billing_groups.plan_billing_group(current, billing(things=["t2", "t3"]))
    assert (plan["add"], plan["remove"], plan["update"]) == (["t3"], ["t1"], None)
    plan = billing_groups.plan_billing_group(current, billing(things=["t3"], purge_things=False))
    assert (plan["add"], plan["remove"], plan["after"]["things"]) == (["t3"], [], ["t1", "t2", "t3"])
    plan = billing_groups.plan_billing_group(current, billing(description=""))
    assert plan["update"] is None  # "" and no description are the same
    plan = billing_groups.plan_billing_group(current, billing(description="x"))
    assert plan["update"] == {
        "billingGroupName": "b",
        "billingGroupProperties": {"billingGroupDescription": "x"},
        "expectedVersion": 1,
    }


# --------------------------------------------------------------------------- the inventory's read


class FakeIoT:
    """ListThings & co over a small registry; pages of maxResults, recording every call and its page size."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.things = [
            {
                "thingName": f"t{i}",
                "thingArn": f"arn:t{i}",
                "thingTypeName": "gw" if i % 2 else None,
                "attributes": {"site": "a" if i < 3 else "b"},
                "version": 1,
            }
            for i in range(6)
        ]
        self.groups = {
            "root": {"parent": None, "query": None, "members": ["t0"]},
            "child": {"parent": "root", "query": None, "members": ["t1", "t2"]},
            "dyn": {"parent": None, "query": "attributes.site:b", "members": ["t3", "t4", "t5"]},
        }

    def can_paginate(self, operation: str) -> bool:
        return False

    def _page(self, name: str, items: list[Any], key: str, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((name, params))
        size = params.get("maxResults") or params.get("pageSize") or 2
        start = int(params.get("nextToken") or params.get("marker") or 0)
        page = {key: items[start : start + size]}
        if start + size < len(items):
            page["nextToken"] = str(start + size)
        return page

    def list_things(self, **params: Any) -> dict[str, Any]:
        things = [t for t in self.things if params.get("thingTypeName") in (None, t.get("thingTypeName"))]
        return self._page("ListThings", things, "things", params)

    def list_thing_groups(self, **params: Any) -> dict[str, Any]:
        items = [{"groupName": n} for n in self.groups]
        return self._page("ListThingGroups", items, "thingGroups", params)

    def describe_thing_group(self, thingGroupName: str) -> dict[str, Any]:
        self.calls.append(("DescribeThingGroup", {}))
        group = self.groups[thingGroupName]
        raw: dict[str, Any] = {"thingGroupName": thingGroupName, "thingGroupMetadata": {}}
        if group["parent"]:
            raw["thingGroupMetadata"]["parentGroupName"] = group["parent"]
        if group["query"]:
            raw["queryString"] = group["query"]
        return raw

    def list_things_in_thing_group(self, **params: Any) -> dict[str, Any]:
        members = self.groups[params["thingGroupName"]]["members"]
        return self._page("ListThingsInThingGroup", members, "things", params)

    def list_billing_groups(self, **params: Any) -> dict[str, Any]:
        return self._page("ListBillingGroups", [{"groupName": "bill"}], "billingGroups", params)

    def list_things_in_billing_group(self, **params: Any) -> dict[str, Any]:
        return self._page("ListThingsInBillingGroup", ["t1"], "things", params)

    def get_indexing_configuration(self) -> dict[str, Any]:
        return {"thingIndexingConfiguration": {"thingIndexingMode": "OFF"}}


def test_inventory_reads_in_full_pages_and_per_group() -> None:
    client = FakeIoT()
    data = read_registry(client, validate_filters({}))
    assert [t["name"] for t in data["things"]] == [f"t{i}" for i in range(6)]
    t1 = data["things"][1]
    assert (t1["thing_groups"], t1["dynamic_thing_groups"], t1["billing_group"]) == (["child"], [], "bill")
    assert data["things"][4]["dynamic_thing_groups"] == ["dyn"]
    assert data["thing_groups"]["child"] == {"parent": "root", "dynamic": False}
    sizes = {params.get("maxResults") for name, params in client.calls if name.startswith("List")}
    assert sizes == {250}
    assert sum(1 for call in client.calls if call[0] == "ListThings") == 1


def test_inventory_filters() -> None:
    client = FakeIoT()
    data = read_registry(client, validate_filters({"thing_groups": ["root"], "thing_types": ["gw"]}))
    assert [t["name"] for t in data["things"]] == ["t1"]  # root and its child; gateways only
    assert ("ListThings", {"maxResults": 250, "thingTypeName": "gw"}) in client.calls  # one type: server-side
    data = read_registry(FakeIoT(), validate_filters({"thing_groups": ["root"], "recursive": False}))
    assert [t["name"] for t in data["things"]] == ["t0"]
    data = read_registry(FakeIoT(), validate_filters({"attributes": {"site": "b"}, "thing_types": ["gw", "x"]}))
    assert [t["name"] for t in data["things"]] == ["t3", "t5"]
    with pytest.raises(ValidationError, match="no thing group named nope"):
        read_registry(FakeIoT(), validate_filters({"thing_groups": ["nope"]}))


def test_inventory_query_needs_fleet_indexing() -> None:
    client = FakeIoT()
    with pytest.raises(ValidationError, match=r"iotfleet\.provisioning\.fleet_indexing"):
        read_registry(client, validate_filters({"query": "thingName:t1"}))
    assert [call[0] for call in client.calls] == []  # refused before any list call


def test_inventory_filter_validation() -> None:
    for options, field in (
        ({"thing_groups": ["bad name"]}, "thing_groups"),
        ({"attributes": {"a": "b c"}}, "attributes"),
        ({"query": "  "}, "query"),
        ({"certificate_concurrency": 50}, "certificate_concurrency"),
    ):
        with pytest.raises(ValidationError) as caught:
            validate_filters(options)
        assert caught.value.field == field


def test_not_found_during_the_read_is_skipped() -> None:
    client = FakeIoT()

    def gone(thingGroupName: str) -> dict[str, Any]:
        raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "gone"}}, "DescribeThingGroup")

    client.describe_thing_group = gone  # type: ignore[method-assign]
    data = read_registry(client, validate_filters({}))
    assert data["thing_groups"] == {} and all(t["thing_groups"] == [] for t in data["things"])
