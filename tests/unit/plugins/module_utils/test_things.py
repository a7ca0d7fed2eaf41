"""Things, thing types, thing groups: validation, planning, and the ensure paths against a fake client.

The fake client keeps a small registry in memory and records every call, so the tests can assert both the
outcome and that check mode and idempotent runs make no mutating call.
"""

from __future__ import annotations

import copy

import pytest
from botocore.exceptions import ClientError

from ansible_collections.iotfleet.provisioning.plugins.module_utils import tagging
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import AwsCallError, ValidationError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.retry import until_deadline
from ansible_collections.iotfleet.provisioning.plugins.module_utils.things.common import (
    attribute_delta,
    attributes_after,
    diff_view,
    names_after,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.things.info import find_things, validate_thing_info
from ansible_collections.iotfleet.provisioning.plugins.module_utils.things.thing import (
    ensure_thing_absent,
    ensure_thing_present,
    plan_thing,
    validate_thing,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.things.thing_group import (
    ensure_thing_group_absent,
    ensure_thing_group_present,
    plan_thing_group,
    validate_thing_group,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.things.thing_type import (
    ensure_thing_type_absent,
    ensure_thing_type_present,
    plan_thing_type,
    validate_thing_type,
)

READ_ONLY = ("describe_", "list_")


def aws_error(code: str, message: str = "", operation: str = "Call") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"RequestId": "r-1"}}, operation
    )


class FakeIoT:
    """Just enough of the IoT registry for the ensure paths; raises what AWS raises for what it does not hold."""

    def __init__(self) -> None:
        self.things: dict[str, dict] = {}
        self.principals: dict[str, list[str]] = {}
        self.types: dict[str, dict] = {}
        self.groups: dict[str, dict] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self.calls: list[tuple[str, dict]] = []
        self.fail: dict[str, list[ClientError]] = {}  # operation -> errors to raise first, in order
        self.page_size = 250

    # bookkeeping
    def _record(self, name: str, kwargs: dict) -> None:
        self.calls.append((name, copy.deepcopy(kwargs)))
        pending = self.fail.get(name)
        if pending:
            raise pending.pop(0)

    def mutating_calls(self) -> list[str]:
        return [name for name, _kwargs in self.calls if not name.startswith(READ_ONLY)]

    def can_paginate(self, _operation: str) -> bool:
        return False

    # things
    def describe_thing(self, thingName):
        self._record("describe_thing", {"thingName": thingName})
        if thingName not in self.things:
            raise aws_error("ResourceNotFoundException")
        return copy.deepcopy(self.things[thingName])

    def create_thing(self, **kw):
        self._record("create_thing", kw)
        name = kw["thingName"]
        thing = {"thingName": name, "thingArn": f"arn:aws:iot:us-east-1:1:thing/{name}", "thingId": f"id-{name}"}
        thing["attributes"] = dict(kw.get("attributePayload", {}).get("attributes", {}))
        thing["version"] = 1
        if kw.get("thingTypeName"):
            thing["thingTypeName"] = kw["thingTypeName"]
        self.things[name] = thing
        return {"thingName": name}

    def update_thing(self, **kw):
        self._record("update_thing", kw)
        thing = self.things[kw["thingName"]]
        if kw.get("removeThingType"):
            thing.pop("thingTypeName", None)
        if kw.get("thingTypeName"):
            thing["thingTypeName"] = kw["thingTypeName"]
        payload = kw.get("attributePayload")
        if payload:
            attrs = dict(thing["attributes"]) if payload.get("merge") else {}
            attrs.update(payload["attributes"])
            thing["attributes"] = {k: v for k, v in attrs.items() if v != ""}
        thing["version"] += 1
        return {}

    def delete_thing(self, thingName):
        self._record("delete_thing", {"thingName": thingName})
        if self.principals.get(thingName):
            raise aws_error("InvalidRequestException", f"Thing {thingName} is still attached to one or more principals")
        self.things.pop(thingName, None)
        return {}

    def list_thing_principals(self, thingName, maxResults=None):
        self._record("list_thing_principals", {"thingName": thingName, "maxResults": maxResults})
        return {"principals": list(self.principals.get(thingName, []))}

    def detach_thing_principal(self, thingName, principal):
        self._record("detach_thing_principal", {"thingName": thingName, "principal": principal})
        self.principals[thingName].remove(principal)
        return {}

    def list_thing_groups_for_thing(self, thingName, maxResults=None):
        self._record("list_thing_groups_for_thing", {"thingName": thingName, "maxResults": maxResults})
        if thingName not in self.things:
            raise aws_error("ResourceNotFoundException")
        names = [g for g, group in self.groups.items() if thingName in group["things"]]
        return {"thingGroups": [{"groupName": n, "groupArn": f"arn:g/{n}"} for n in names]}

    def update_thing_groups_for_thing(self, **kw):
        self._record("update_thing_groups_for_thing", kw)
        for name in kw.get("thingGroupsToAdd", []):
            self.groups[name]["things"].add(kw["thingName"])
        for name in kw.get("thingGroupsToRemove", []):
            self.groups[name]["things"].discard(kw["thingName"])
        return {}

    def list_things(self, **kw):
        self._record("list_things", kw)
        things = list(self.things.values())
        if kw.get("thingTypeName"):
            things = [t for t in things if t.get("thingTypeName") == kw["thingTypeName"]]
        if kw.get("attributeName"):
            things = [t for t in things if t["attributes"].get(kw["attributeName"]) == kw["attributeValue"]]
        items = [{k: v for k, v in t.items() if k != "thingId"} for t in things]
        # Pages of at most maxResults (or the server's smaller page size), with a nextToken while items remain.
        size = min(kw.get("maxResults", 250), self.page_size)
        start = int(kw.get("nextToken", 0))
        page = {"things": items[start : start + size]}
        if start + size < len(items):
            page["nextToken"] = str(start + size)
        return page

    # thing types
    def describe_thing_type(self, thingTypeName):
        self._record("describe_thing_type", {"thingTypeName": thingTypeName})
        if thingTypeName not in self.types:
            raise aws_error("ResourceNotFoundException")
        return copy.deepcopy(self.types[thingTypeName])

    def create_thing_type(self, **kw):
        self._record("create_thing_type", kw)
        name = kw["thingTypeName"]
        self.types[name] = {
            "thingTypeName": name,
            "thingTypeArn": f"arn:tt/{name}",
            "thingTypeId": f"id-{name}",
            "thingTypeProperties": copy.deepcopy(kw.get("thingTypeProperties", {})),
            "thingTypeMetadata": {"deprecated": False},
        }
        return {}

    def update_thing_type(self, **kw):
        self._record("update_thing_type", kw)
        self.types[kw["thingTypeName"]]["thingTypeProperties"] = copy.deepcopy(kw["thingTypeProperties"])
        return {}

    def deprecate_thing_type(self, thingTypeName, undoDeprecate):
        self._record("deprecate_thing_type", {"thingTypeName": thingTypeName, "undoDeprecate": undoDeprecate})
        self.types[thingTypeName]["thingTypeMetadata"]["deprecated"] = not undoDeprecate
        return {}

    def delete_thing_type(self, thingTypeName):
        self._record("delete_thing_type", {"thingTypeName": thingTypeName})
        if thingTypeName not in self.types:
            raise aws_error("ResourceNotFoundException")
        del self.types[thingTypeName]
        return {}

    # thing groups
    def describe_thing_group(self, thingGroupName):
        self._record("describe_thing_group", {"thingGroupName": thingGroupName})
        if thingGroupName not in self.groups:
            raise aws_error("ResourceNotFoundException")
        group = self.groups[thingGroupName]
        return copy.deepcopy({k: v for k, v in group.items() if k != "things"})

    def create_thing_group(self, **kw):
        self._record("create_thing_group", kw)
        name = kw["thingGroupName"]
        metadata = {"parentGroupName": kw["parentGroupName"]} if kw.get("parentGroupName") else {}
        self.groups[name] = {
            "thingGroupName": name,
            "thingGroupArn": f"arn:g/{name}",
            "thingGroupId": f"id-{name}",
            "version": 1,
            "thingGroupProperties": copy.deepcopy(kw.get("thingGroupProperties", {})),
            "thingGroupMetadata": metadata,
            "things": set(),
        }
        self.tags[f"arn:g/{name}"] = {t["Key"]: t["Value"] for t in kw.get("tags", [])}
        return {}

    def update_thing_group(self, **kw):
        self._record("update_thing_group", kw)
        group = self.groups[kw["thingGroupName"]]
        props = kw["thingGroupProperties"]
        if "thingGroupDescription" in props:
            group["thingGroupProperties"]["thingGroupDescription"] = props["thingGroupDescription"]
        if "attributePayload" in props:
            current = group["thingGroupProperties"].setdefault("attributePayload", {"attributes": {}})["attributes"]
            merged = dict(current) if props["attributePayload"].get("merge") else {}
            merged.update(props["attributePayload"]["attributes"])
            group["thingGroupProperties"]["attributePayload"]["attributes"] = {k: v for k, v in merged.items() if v}
        group["version"] += 1
        return {"version": group["version"]}

    def delete_thing_group(self, thingGroupName):
        self._record("delete_thing_group", {"thingGroupName": thingGroupName})
        self.groups.pop(thingGroupName, None)
        return {}

    def list_thing_groups(self, **kw):
        self._record("list_thing_groups", kw)
        children = [
            n for n, g in self.groups.items() if g["thingGroupMetadata"].get("parentGroupName") == kw.get("parentGroup")
        ]
        return {"thingGroups": [{"groupName": n, "groupArn": f"arn:g/{n}"} for n in children]}

    def list_things_in_thing_group(self, **kw):
        self._record("list_things_in_thing_group", kw)
        if kw["thingGroupName"] not in self.groups:
            raise aws_error("ResourceNotFoundException")
        return {"things": sorted(self.groups[kw["thingGroupName"]]["things"])}

    def list_tags_for_resource(self, resourceArn):
        self._record("list_tags_for_resource", {"resourceArn": resourceArn})
        return {"tags": [{"Key": k, "Value": v} for k, v in self.tags.get(resourceArn, {}).items()]}

    def tag_resource(self, resourceArn, tags):
        self._record("tag_resource", {"resourceArn": resourceArn, "tags": tags})
        self.tags.setdefault(resourceArn, {}).update({t["Key"]: t["Value"] for t in tags})
        return {}

    def untag_resource(self, resourceArn, tagKeys):
        self._record("untag_resource", {"resourceArn": resourceArn, "tagKeys": tagKeys})
        for key in tagKeys:
            self.tags[resourceArn].pop(key, None)
        return {}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def thing_params(**overrides):
    params = dict(
        name="dev-1",
        state="present",
        thing_type=None,
        attributes=None,
        purge_attributes=True,
        thing_groups=None,
        purge_thing_groups=True,
        force=False,
        wait_timeout=60,
    )
    params.update(overrides)
    return params


def existing(**overrides):
    thing = {
        "name": "dev-1",
        "arn": "arn:aws:iot:us-east-1:1:thing/dev-1",
        "thing_id": "id-dev-1",
        "thing_type": None,
        "attributes": {},
        "thing_groups": [],
        "version": 4,
    }
    thing.update(overrides)
    return thing


# ---------------------------------------------------------------------------
# merge helpers


def test_attributes_after_replace_merge_and_empty_values():
    current = {"a": "1", "b": "2"}
    assert attributes_after(current, None, True) == current
    assert attributes_after(current, {"c": "3"}, True) == {"c": "3"}
    assert attributes_after(current, {"c": "3"}, False) == {"a": "1", "b": "2", "c": "3"}
    assert attributes_after(current, {"a": ""}, False) == {"b": "2"}
    assert attributes_after(current, {"a": "", "z": "9"}, True) == {"z": "9"}


def test_attribute_delta_sends_changes_and_empty_values_for_removals():
    assert attribute_delta({"a": "1", "b": "2"}, {"a": "1", "b": "3", "c": "4"}) == {"b": "3", "c": "4"}
    assert attribute_delta({"a": "1", "b": "2"}, {"a": "1"}) == {"b": ""}
    assert attribute_delta({"a": "1"}, {"a": "1"}) == {}


def test_names_after():
    assert names_after(["b", "a"], None, True) == ["a", "b"]
    assert names_after(["a", "b"], ["c"], True) == ["c"]
    assert names_after(["a", "b"], ["c", "a"], False) == ["a", "b", "c"]


def test_tags_after_never_purges_aws_tags():
    current = {"aws:cloudformation:stack-name": "s", "old": "1", "keep": "x"}
    assert tagging.desired_tags(current, {"keep": "y"}, True) == {"aws:cloudformation:stack-name": "s", "keep": "y"}
    assert tagging.desired_tags(current, {"new": "2"}, False) == dict(current, new="2")
    assert tagging.desired_tags(current, None, True) == current


# ---------------------------------------------------------------------------
# thing validation (before any client exists)


def test_validate_thing_normalizes():
    desired = validate_thing(thing_params(attributes={"n": 5}, thing_groups=["g1", "g1", "g2"], thing_type=""))
    assert desired.attributes == {"n": "5"}
    assert desired.thing_groups == ["g1", "g2"]
    assert desired.thing_type == ""


@pytest.mark.parametrize(
    ("overrides", "field", "rule"),
    [
        (dict(name="bad name!"), "name", "must match [a-zA-Z0-9:_-]+"),
        (dict(name="n" * 129), "name", "must be at most 128 characters, got 129"),
        (
            dict(thing_type="", attributes={"a": "1", "b": "2", "c": "3", "d": "4"}),
            "attributes",
            "a thing without a thing type can have at most 3 attributes, got 4",
        ),
        (dict(attributes={"serial": "AB 12"}), "attributes.serial", "must match"),
        (dict(thing_groups=[f"g{i}" for i in range(11)]), "thing_groups", "a thing can be in at most 10 thing groups"),
        (dict(thing_type="bad type"), "thing_type", "must match"),
        (dict(attributes={f"a{i}": "v" for i in range(51)}), "attributes", "at most 50 attributes, got 51"),
        (dict(wait_timeout=-1), "wait_timeout", "must be zero or more"),
    ],
)
def test_validate_thing_refusals(overrides, field, rule):
    with pytest.raises(ValidationError) as err:
        validate_thing(thing_params(**overrides))
    assert err.value.field == field
    assert rule in err.value.rule


def test_four_attributes_with_unset_type_wait_for_the_current_type():
    four = {"a": "1", "b": "2", "c": "3", "d": "4"}
    desired = validate_thing(thing_params(attributes=four))  # the limit depends on the thing's type
    with pytest.raises(ValidationError, match="without a thing type can have at most 3 attributes, got 4"):
        plan_thing(None, desired)
    with pytest.raises(ValidationError, match="without a thing type"):
        plan_thing(existing(), desired)
    assert plan_thing(existing(thing_type="sensor"), desired)["update"]["attributePayload"]["attributes"] == four


def test_empty_values_do_not_count():
    desired = validate_thing(thing_params(thing_type="", attributes={"a": "1", "b": "2", "c": "3", "d": ""}))
    assert plan_thing(None, desired)["create"]["attributePayload"] == {"attributes": {"a": "1", "b": "2", "c": "3"}}


# ---------------------------------------------------------------------------
# thing planning


def test_plan_create():
    desired = validate_thing(thing_params(thing_type="sensor", attributes={"m": "x"}, thing_groups=["g2", "g1"]))
    plan = plan_thing(None, desired)
    assert plan["create"] == {
        "thingName": "dev-1",
        "thingTypeName": "sensor",
        "attributePayload": {"attributes": {"m": "x"}},
    }
    assert plan["update"] is None
    assert plan["groups_to_add"] == ["g1", "g2"]
    assert plan["after"] == {
        "name": "dev-1",
        "arn": None,
        "thing_id": None,
        "thing_type": "sensor",
        "attributes": {"m": "x"},
        "thing_groups": ["g1", "g2"],
        "version": None,
    }


def test_plan_nothing_to_do_when_unset_or_equal():
    current = existing(thing_type="sensor", attributes={"a": "1"}, thing_groups=["g1"])
    for params in [
        thing_params(),
        thing_params(thing_type="sensor", attributes={"a": 1}, thing_groups=["g1"]),
        thing_params(attributes={"a": "1"}, purge_attributes=False, thing_groups=[], purge_thing_groups=False),
    ]:
        plan = plan_thing(current, validate_thing(params))
        assert (plan["create"], plan["update"], plan["groups_to_add"], plan["groups_to_remove"]) == (None, None, [], [])
        assert plan["after"] == current


def test_plan_update_removes_type_and_purges_attributes_in_one_call():
    current = existing(thing_type="sensor", attributes={"a": "1", "b": "2"})
    plan = plan_thing(current, validate_thing(thing_params(thing_type="", attributes={"a": "1", "c": "3"})))
    assert plan["update"] == {
        "thingName": "dev-1",
        "removeThingType": True,
        "attributePayload": {"attributes": {"b": "", "c": "3"}, "merge": True},
        "expectedVersion": 4,
    }
    assert plan["after"]["thing_type"] is None
    assert plan["after"]["attributes"] == {"a": "1", "c": "3"}


def test_plan_removing_the_type_checks_the_attributes_left():
    current = existing(thing_type="sensor", attributes={"a": "1", "b": "2", "c": "3", "d": "4"})
    with pytest.raises(ValidationError, match="without a thing type can have at most 3 attributes, got 4"):
        plan_thing(current, validate_thing(thing_params(thing_type="")))


def test_plan_merge_mode_counts_the_merged_attributes():
    current = existing(attributes={"a": "1", "b": "2", "c": "3"})
    with pytest.raises(ValidationError, match="got 4"):
        plan_thing(current, validate_thing(thing_params(attributes={"d": "4"}, purge_attributes=False)))
    plan = plan_thing(current, validate_thing(thing_params(attributes={"a": "", "d": "4"}, purge_attributes=False)))
    assert plan["update"]["attributePayload"] == {"attributes": {"a": "", "d": "4"}, "merge": True}


def test_plan_groups_replace_and_merge():
    current = existing(thing_groups=["g1", "g2"])
    plan = plan_thing(current, validate_thing(thing_params(thing_groups=["g2", "g3"])))
    assert (plan["groups_to_add"], plan["groups_to_remove"]) == (["g3"], ["g1"])
    plan = plan_thing(current, validate_thing(thing_params(thing_groups=["g3"], purge_thing_groups=False)))
    assert (plan["groups_to_add"], plan["groups_to_remove"]) == (["g3"], [])
    many = existing(thing_groups=[f"g{i}" for i in range(10)])
    with pytest.raises(ValidationError, match="thing_groups: a thing can be in at most 10 thing groups, got 11"):
        plan_thing(many, validate_thing(thing_params(thing_groups=["extra"], purge_thing_groups=False)))


# ---------------------------------------------------------------------------
# thing ensure paths


@pytest.fixture
def iot():
    fake = FakeIoT()
    fake.groups["g1"] = {
        "thingGroupName": "g1",
        "thingGroupArn": "arn:g/g1",
        "thingGroupId": "id-g1",
        "version": 1,
        "thingGroupProperties": {},
        "thingGroupMetadata": {},
        "things": set(),
    }
    fake.groups["g2"] = dict(copy.deepcopy(fake.groups["g1"]), thingGroupName="g2", thingGroupArn="arn:g/g2")
    return fake


def test_thing_check_mode_predicts_without_mutating(iot):
    desired = validate_thing(thing_params(attributes={"a": "1"}, thing_groups=["g1"]))
    done = ensure_thing_present(iot, desired, check_mode=True)
    changed, before, after = done.changed, done.before, done.after
    assert changed and before is None
    assert after["attributes"] == {"a": "1"} and after["thing_groups"] == ["g1"]
    assert iot.mutating_calls() == []
    assert iot.things == {}


def test_thing_apply_then_rerun_is_idempotent(iot):
    desired = validate_thing(thing_params(attributes={"a": "1"}, thing_groups=["g1"]))
    done = ensure_thing_present(iot, desired, check_mode=False)
    changed, _before, after = done.changed, done.before, done.after
    assert changed
    assert iot.mutating_calls() == ["create_thing", "update_thing_groups_for_thing"]
    assert after["arn"] == "arn:aws:iot:us-east-1:1:thing/dev-1"
    assert after["thing_groups"] == ["g1"]
    iot.calls.clear()
    done = ensure_thing_present(iot, desired, check_mode=False)
    changed, before, again = done.changed, done.before, done.after
    assert not changed and before == again == after
    assert iot.mutating_calls() == []


def test_thing_update_reads_back(iot):
    ensure_thing_present(iot, validate_thing(thing_params(attributes={"a": "1"}, thing_groups=["g1"])), False)
    desired = validate_thing(thing_params(attributes={"b": "2"}, thing_groups=["g2"]))
    done = ensure_thing_present(iot, desired, check_mode=False)
    changed, before, after = done.changed, done.before, done.after
    assert changed
    assert before["attributes"] == {"a": "1"} and after["attributes"] == {"b": "2"}
    assert after["thing_groups"] == ["g2"]
    assert after["version"] == 2  # read back, not predicted


def test_thing_absent_refuses_attached_principals_without_force(iot):
    ensure_thing_present(iot, validate_thing(thing_params()), False)
    iot.principals["dev-1"] = ["arn:aws:iot:us-east-1:1:cert/abc"]
    iot.calls.clear()
    for check_mode in (True, False):
        with pytest.raises(ValidationError) as err:
            ensure_thing_absent(iot, validate_thing(thing_params(state="absent")), check_mode)
        assert err.value.field == "force"
        assert "arn:aws:iot:us-east-1:1:cert/abc" in err.value.rule
    assert iot.mutating_calls() == []
    assert "dev-1" in iot.things


def test_thing_absent_with_force_detaches_and_retries_the_delete(iot):
    ensure_thing_present(iot, validate_thing(thing_params()), False)
    iot.principals["dev-1"] = ["arn:cert/1", "arn:cert/2"]
    still = aws_error(
        "InvalidRequestException", "Cannot delete. Thing dev-1 is still attached to one or more principals"
    )
    iot.fail["delete_thing"] = [still, copy.deepcopy(still)]
    iot.calls.clear()
    clock = FakeClock()
    detached = []
    desired = validate_thing(thing_params(state="absent", force=True))
    done = ensure_thing_absent(iot, desired, False, detached.extend, clock.sleep, clock)
    changed, before, after = done.changed, done.before, done.after
    assert changed and before["name"] == "dev-1" and after is None
    assert detached == ["arn:cert/1", "arn:cert/2"]
    assert iot.mutating_calls() == ["detach_thing_principal", "detach_thing_principal"] + ["delete_thing"] * 3
    assert clock.sleeps == [2.0, 4.0]
    assert "dev-1" not in iot.things


def test_thing_absent_check_mode_with_force_reports_the_principals(iot):
    ensure_thing_present(iot, validate_thing(thing_params()), False)
    iot.principals["dev-1"] = ["arn:cert/1"]
    iot.calls.clear()
    detached = []
    done = ensure_thing_absent(iot, validate_thing(thing_params(state="absent", force=True)), True, detached.extend)
    changed, _before, after = done.changed, done.before, done.after
    assert changed and after is None and detached == ["arn:cert/1"]
    assert iot.mutating_calls() == []


def test_thing_delete_gives_up_after_wait_timeout_with_a_hint(iot):
    ensure_thing_present(iot, validate_thing(thing_params()), False)
    iot.fail["delete_thing"] = [aws_error("InvalidRequestException", "still attached to one or more principals")] * 20
    clock = FakeClock()
    with pytest.raises(AwsCallError) as err:
        ensure_thing_absent(
            iot, validate_thing(thing_params(state="absent", wait_timeout=10)), False, None, clock.sleep, clock
        )
    assert err.value.operation == "DeleteThing"
    assert err.value.code == "InvalidRequestException"
    assert "wait_timeout" in str(err.value)
    assert sum(clock.sleeps) == 10


def test_thing_delete_does_not_retry_other_errors(iot):
    ensure_thing_present(iot, validate_thing(thing_params()), False)
    iot.fail["delete_thing"] = [aws_error("InvalidRequestException", "something else")]
    clock = FakeClock()
    with pytest.raises(ClientError):
        ensure_thing_absent(iot, validate_thing(thing_params(state="absent")), False, None, clock.sleep, clock)
    assert clock.sleeps == []


def test_thing_absent_twice_is_a_no_op(iot):
    done = ensure_thing_absent(iot, validate_thing(thing_params(state="absent")), False)
    changed, before, after = done.changed, done.before, done.after
    assert (changed, before, after) == (False, None, None)
    assert iot.mutating_calls() == []


def test_retry_backoff_is_capped():
    clock = FakeClock()
    attempts = []

    def call():
        attempts.append(1)
        if len(attempts) < 8:
            raise aws_error("X")
        return "ok"

    assert until_deadline(call, lambda e: True, 1000, lambda e: RuntimeError(), clock.sleep, clock) == "ok"
    assert clock.sleeps == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


# ---------------------------------------------------------------------------
# thing types


def type_params(**overrides):
    params = dict(name="sensor", state="present", description=None, searchable_attributes=None, wait_timeout=360)
    params.update(overrides)
    return params


def test_validate_thing_type_refuses_four_searchable_attributes():
    with pytest.raises(ValidationError) as err:
        validate_thing_type(type_params(searchable_attributes=["a", "b", "c", "d"]))
    assert str(err.value) == "searchable_attributes: a thing type can have at most 3 searchable attributes, got 4"
    with pytest.raises(ValidationError, match="searchable_attributes: must match"):
        validate_thing_type(type_params(searchable_attributes=["has space"]))
    with pytest.raises(ValidationError, match="description: must match"):
        validate_thing_type(type_params(description="two\nlines"))


def test_thing_type_lifecycle(iot):
    desired = validate_thing_type(type_params(description="d", searchable_attributes=["m", "s"]))
    done = ensure_thing_type_present(iot, desired, True)
    changed, before, after = done.changed, done.before, done.after
    assert changed and before is None and after["searchable_attributes"] == ["m", "s"]
    assert iot.mutating_calls() == []

    done = ensure_thing_type_present(iot, desired, False)
    changed, _before, after = done.changed, done.before, done.after
    assert changed and after["arn"] == "arn:tt/sensor" and after["description"] == "d" and not after["deprecated"]

    iot.calls.clear()
    reordered = validate_thing_type(type_params(searchable_attributes=["s", "m"]))
    assert ensure_thing_type_present(iot, reordered, False).changed is False
    assert iot.mutating_calls() == []

    done = ensure_thing_type_present(iot, validate_thing_type(type_params(state="deprecated")), False)
    changed, before, after = done.changed, done.before, done.after
    assert changed and not before["deprecated"] and after["deprecated"]
    assert iot.mutating_calls() == ["deprecate_thing_type"]

    iot.calls.clear()
    done = ensure_thing_type_present(iot, validate_thing_type(type_params()), False)
    changed, _before, after = done.changed, done.before, done.after
    assert changed and not after["deprecated"]
    assert iot.calls[-2] == ("deprecate_thing_type", {"thingTypeName": "sensor", "undoDeprecate": True})


def test_thing_type_update_keeps_unmanaged_properties(iot):
    iot.create_thing_type(
        thingTypeName="sensor",
        thingTypeProperties={
            "thingTypeDescription": "old",
            "searchableAttributes": ["m"],
            "mqtt5Configuration": {"propagatingAttributes": [{"userPropertyKey": "k", "thingAttribute": "m"}]},
        },
    )
    plan = plan_thing_type(iot.describe_thing_type("sensor"), validate_thing_type(type_params(description="new")))
    assert plan["update"] == {
        "thingTypeName": "sensor",
        "thingTypeProperties": {
            "thingTypeDescription": "new",
            "searchableAttributes": ["m"],
            "mqtt5Configuration": {"propagatingAttributes": [{"userPropertyKey": "k", "thingAttribute": "m"}]},
        },
    }
    assert plan["deprecate"] is None


def test_thing_type_absent_deprecates_then_waits_for_delete(iot):
    ensure_thing_type_present(iot, validate_thing_type(type_params()), False)
    too_soon = aws_error("InvalidRequestException", "Thing type sensor was deprecated less than 5 minutes ago")
    iot.fail["delete_thing_type"] = [too_soon, copy.deepcopy(too_soon)]
    iot.calls.clear()
    clock = FakeClock()
    done = ensure_thing_type_absent(iot, validate_thing_type(type_params(state="absent")), False, clock.sleep, clock)
    changed, before, after = done.changed, done.before, done.after
    assert changed and before["name"] == "sensor" and after is None
    assert iot.mutating_calls() == [
        "deprecate_thing_type",
        "delete_thing_type",
        "delete_thing_type",
        "delete_thing_type",
    ]
    assert "sensor" not in iot.types


def test_thing_type_absent_timeout_message(iot):
    ensure_thing_type_present(iot, validate_thing_type(type_params(state="deprecated")), False)
    iot.fail["delete_thing_type"] = [aws_error("InvalidRequestException", "too soon")] * 50
    iot.calls.clear()
    clock = FakeClock()
    with pytest.raises(AwsCallError) as err:
        ensure_thing_type_absent(
            iot, validate_thing_type(type_params(state="absent", wait_timeout=30)), False, clock.sleep, clock
        )
    assert err.value.operation == "DeleteThingType"
    assert "5 minutes" in str(err.value) and "wait_timeout" in str(err.value)
    assert "deprecate_thing_type" not in iot.mutating_calls()  # already deprecated


def test_thing_type_absent_refuses_a_type_in_use(iot):
    ensure_thing_type_present(iot, validate_thing_type(type_params()), False)
    iot.create_thing(thingName="dev-1", thingTypeName="sensor")
    iot.calls.clear()
    with pytest.raises(ValidationError, match="still has things of this type \\(dev-1\\)"):
        ensure_thing_type_absent(iot, validate_thing_type(type_params(state="absent")), True)
    assert iot.mutating_calls() == []


# ---------------------------------------------------------------------------
# thing groups


def group_params(**overrides):
    params = dict(
        name="site",
        state="present",
        parent=None,
        description=None,
        attributes=None,
        purge_attributes=True,
        tags=None,
        purge_tags=True,
    )
    params.update(overrides)
    return params


def test_thing_group_lifecycle(iot):
    desired = validate_thing_group(group_params(parent="g1", description="d", attributes={"a": "1"}, tags={"t": "1"}))
    done = ensure_thing_group_present(iot, desired, True)
    changed, before, after = done.changed, done.before, done.after
    assert changed and before is None and after["parent"] == "g1" and after["tags"] == {"t": "1"}
    assert iot.mutating_calls() == []

    done = ensure_thing_group_present(iot, desired, False)
    changed, _before, after = done.changed, done.before, done.after
    assert (
        changed and after["arn"] == "arn:g/site" and after["attributes"] == {"a": "1"} and after["tags"] == {"t": "1"}
    )
    assert iot.mutating_calls() == ["create_thing_group"]

    iot.calls.clear()
    assert ensure_thing_group_present(iot, desired, False).changed is False
    assert iot.mutating_calls() == []

    desired = validate_thing_group(group_params(attributes={"b": "2"}, purge_attributes=False, tags={"u": "2"}))
    done = ensure_thing_group_present(iot, desired, False)
    changed, before, after = done.changed, done.before, done.after
    assert changed and after["attributes"] == {"a": "1", "b": "2"} and after["tags"] == {"u": "2"}
    assert iot.mutating_calls() == ["update_thing_group", "untag_resource", "tag_resource"]


def test_thing_group_parent_cannot_change(iot):
    ensure_thing_group_present(iot, validate_thing_group(group_params(parent="g1")), False)
    with pytest.raises(ValidationError) as err:
        ensure_thing_group_present(iot, validate_thing_group(group_params(parent="g2")), True)
    assert err.value.field == "parent" and "cannot change" in err.value.rule
    with pytest.raises(ValidationError, match="at the top level"):
        ensure_thing_group_present(iot, validate_thing_group(group_params(parent="")), True)


def test_thing_group_tags_keep_aws_tags(iot):
    ensure_thing_group_present(iot, validate_thing_group(group_params()), False)
    iot.tags["arn:g/site"] = {"aws:iot:owner": "x", "old": "1"}
    current = {
        "name": "site",
        "arn": "arn:g/site",
        "thing_group_id": "id",
        "parent": None,
        "description": None,
        "attributes": {},
        "version": 1,
        "tags": iot.tags["arn:g/site"],
    }
    plan = plan_thing_group(current, validate_thing_group(group_params(tags={"new": "2"})))
    assert plan["tags_to_set"] == {"new": "2"}
    assert plan["tags_to_remove"] == ["old"]
    assert plan["after"]["tags"] == {"aws:iot:owner": "x", "new": "2"}


def test_thing_group_tags_unset_are_not_read(iot):
    ensure_thing_group_present(iot, validate_thing_group(group_params(description="d")), False)
    assert "list_tags_for_resource" not in [name for name, _kwargs in iot.calls]


def test_dynamic_group_is_refused():
    current = {"name": "dyn", "parent": None, "description": None, "attributes": {}, "query_string": "attributes.a:1"}
    with pytest.raises(ValidationError, match="dynamic thing group"):
        plan_thing_group(current, validate_thing_group(group_params(name="dyn")))


def test_thing_group_with_children_is_not_deleted(iot):
    ensure_thing_group_present(iot, validate_thing_group(group_params(name="child", parent="g1")), False)
    iot.calls.clear()
    with pytest.raises(ValidationError) as err:
        ensure_thing_group_absent(iot, validate_thing_group(group_params(name="g1", state="absent")), False)
    assert err.value.field == "state" and "child" in err.value.rule
    assert iot.mutating_calls() == []
    assert ensure_thing_group_absent(
        iot, validate_thing_group(group_params(name="child", state="absent")), False
    ).changed
    assert (
        ensure_thing_group_absent(iot, validate_thing_group(group_params(name="child", state="absent")), False).changed
        is False
    )


def test_thing_group_attribute_limit():
    with pytest.raises(ValidationError, match="a thing group can have at most 50 attributes, got 51"):
        validate_thing_group(group_params(attributes={f"a{i}": "v" for i in range(51)}))


# ---------------------------------------------------------------------------
# thing info


def info_params(**overrides):
    params = dict(name=None, thing_type=None, attribute=None, thing_group=None, recursive=False, include_groups=False)
    params.update(overrides)
    return params


def test_validate_thing_info():
    assert validate_thing_info(info_params(attribute="k=a=b"))["attribute"] == ("k", "a=b")
    with pytest.raises(ValidationError, match="attribute: must be NAME=VALUE"):
        validate_thing_info(info_params(attribute="novalue"))
    with pytest.raises(ValidationError, match="name: cannot be combined with thing_type"):
        validate_thing_info(info_params(name="a", thing_type="t"))
    with pytest.raises(ValidationError, match="recursive: applies to thing_group only"):
        validate_thing_info(info_params(recursive=True))


def test_find_things(iot):
    iot.create_thing(thingName="b", thingTypeName="sensor", attributePayload={"attributes": {"Model": "x"}})
    iot.create_thing(thingName="a", attributePayload={"attributes": {"Model": "y"}})
    iot.groups["g1"]["things"] = {"a", "b", "gone"}
    assert find_things(iot, validate_thing_info(info_params(name="missing"))) == []
    found = find_things(iot, validate_thing_info(info_params(name="b")))
    assert found[0]["thing_name"] == "b" and found[0]["thing_id"] == "id-b" and found[0]["attributes"] == {"Model": "x"}
    assert [t["thing_name"] for t in find_things(iot, validate_thing_info(info_params()))] == ["a", "b"]
    assert [t["thing_name"] for t in find_things(iot, validate_thing_info(info_params(thing_type="sensor")))] == ["b"]
    by_attr = find_things(iot, validate_thing_info(info_params(attribute="Model=y")))
    assert [t["thing_name"] for t in by_attr] == ["a"]
    in_group = find_things(
        iot, validate_thing_info(info_params(thing_group="g1", thing_type="sensor", include_groups=True))
    )
    assert [(t["thing_name"], t["thing_groups"]) for t in in_group] == [("b", ["g1"])]
    assert iot.mutating_calls() == ["create_thing", "create_thing"]


def test_find_things_follows_every_page_asking_for_pages_of_250(iot):
    for i in range(7):
        iot.create_thing(thingName=f"t{i}")
    iot.page_size = 3
    iot.calls.clear()
    found = find_things(iot, validate_thing_info(info_params()))
    assert [t["thing_name"] for t in found] == [f"t{i}" for i in range(7)]
    list_calls = [kw for name, kw in iot.calls if name == "list_things"]
    assert len(list_calls) == 3
    assert all(kw["maxResults"] == 250 for kw in list_calls)
    assert [kw.get("nextToken") for kw in list_calls] == [None, "3", "6"]


def test_diff_view_keeps_managed_fields_only():
    assert diff_view(None, ("name",)) == {}
    assert diff_view(existing(attributes={"a": "1"}), ("name", "attributes")) == {
        "name": "dev-1",
        "attributes": {"a": "1"},
    }
