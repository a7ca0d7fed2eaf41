"""Unit tests of the fleet engine's pure parts: input, validation, planner, rate budget, prune guard."""

from __future__ import annotations

import json
import time

import pytest

from ansible_collections.iotfleet.provisioning.plugins.module_utils import fleet
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet_progress import Progress
from ansible_collections.iotfleet.provisioning.plugins.module_utils.fleet_rate import (
    DEFAULT_TPS,
    Caller,
    OperationBudget,
    RateBudget,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.retry import backoff_delay

try:
    from botocore.exceptions import ClientError, ConnectionClosedError
except ImportError:  # pragma: no cover
    pytest.skip("botocore is needed", allow_module_level=True)

ARN = "arn:aws:iot:us-east-1:123456789012:cert/"


# ---------------------------------------------------------------------------
# Input parsing
# ---------------------------------------------------------------------------


def test_csv_rows_lists_and_attribute_columns(tmp_path):
    path = tmp_path / "fleet.csv"
    path.write_text(
        "name,thing_type,thing_groups,policies,attributes.site,attributes.rev,certificate\n"
        "s-1,sensor,a;b,p1,berlin,2,csr\n"
        "s-2,,,,,,\n"
    )
    rows = fleet.load_device_rows(str(path))
    assert rows == [
        {
            "name": "s-1",
            "thing_type": "sensor",
            "thing_groups": ["a", "b"],
            "policies": ["p1"],
            "attributes": {"site": "berlin", "rev": "2"},
            "certificate": "csr",
        },
        {"name": "s-2"},
    ]


@pytest.mark.parametrize(
    "line, cells",
    [
        ("s-2,site a, b,x", 4),  # an unquoted comma would shift "b" into thing_groups
        ("s-2,berlin", 2),  # a truncated line would silently drop thing_groups
    ],
)
def test_csv_row_with_another_number_of_cells_is_refused_with_its_line(tmp_path, line, cells):
    path = tmp_path / "fleet.csv"
    path.write_text(f"name,attributes.site,thing_groups\ns-1,berlin,a\n\n{line}\n")
    with pytest.raises(ValidationError) as error:
        fleet.load_device_rows(str(path))
    assert str(error.value).startswith(f"devices_file line 4: has {cells} cells, the header has 3")


def test_csv_quoted_comma_and_empty_cells_mean_not_given(tmp_path):
    path = tmp_path / "fleet.csv"
    path.write_text('name,attributes.site,attributes.rev,thing_groups\ns-1,"site a, b",,\n')
    assert fleet.load_device_rows(str(path)) == [{"name": "s-1", "attributes": {"site": "site a, b"}}]


def test_yaml_list_and_devices_key(tmp_path):
    plain = tmp_path / "a.yml"
    plain.write_text("- name: x\n  attributes: {k: 1}\n")
    keyed = tmp_path / "b.yaml"
    keyed.write_text("devices:\n  - name: y\n")
    assert fleet.load_device_rows(str(plain)) == [{"name": "x", "attributes": {"k": 1}}]
    assert fleet.load_device_rows(str(keyed)) == [{"name": "y"}]


def test_jsonl_and_json_list(tmp_path):
    lines = tmp_path / "a.jsonl"
    lines.write_text('{"name": "a"}\n\n{"name": "b", "thing_groups": ["g"]}\n')
    whole = tmp_path / "b.json"
    whole.write_text(json.dumps([{"name": "c"}]))
    assert fleet.load_device_rows(str(lines)) == [{"name": "a"}, {"name": "b", "thing_groups": ["g"]}]
    assert fleet.load_device_rows(str(whole)) == [{"name": "c"}]


def test_jsonl_bad_line_names_the_line(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"name": "a"}\n{broken\n')
    with pytest.raises(ValidationError) as err:
        fleet.load_device_rows(str(path))
    assert err.value.field == "devices_file line 2"


def test_unknown_extension_refused(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("x")
    with pytest.raises(ValidationError, match=r"devices_file: must end in \.csv"):
        fleet.load_device_rows(str(path))


def test_defaults_merge_under_device_attributes_key_by_key():
    merged = fleet.merge_defaults(
        {"thing_type": "t", "attributes": {"a": "1", "b": "2"}, "policies": ["p"]},
        {"name": "n", "attributes": {"b": "3"}, "policies": []},
    )
    assert merged == {"name": "n", "thing_type": "t", "attributes": {"a": "1", "b": "3"}, "policies": []}


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def params(devices, **extra):
    base = {"devices": devices, "fleet_group": "fg", "output_dir": None}
    base.update(extra)
    return base


def test_validation_names_device_and_field_attribute_count():
    devices = [{"name": "ok"}, {"name": "s-2", "attributes": {"a": 1, "b": 2, "c": 3, "d": 4}}]
    with pytest.raises(ValidationError) as err:
        fleet.validate_fleet(params(devices))
    assert str(err.value) == (
        "devices[1] (s-2).attributes: a thing without a thing type can have at most 3 attributes, got 4"
    )


def test_validation_with_thing_type_allows_more_attributes():
    devices = [{"name": "s", "thing_type": "t", "attributes": {str(i): "v" for i in range(10)}}]
    spec = fleet.validate_fleet(params(devices))
    assert spec.devices[0].attributes == {str(i): "v" for i in range(10)}


@pytest.mark.parametrize(
    ("device", "field", "rule"),
    [
        ({"name": "bad name"}, "devices[0] (bad name).name", "must match"),
        ({"name": "d", "certificate": "magic"}, "devices[0] (d).certificate", "must be one of aws_keys, csr"),
        ({"name": "d", "certificate": "pem"}, "devices[0] (d).certificate", "pem needs exactly one"),
        ({"name": "d", "policies": ["p"]}, "devices[0] (d).policies", "certificate is none"),
        ({"name": "d", "colour": "red"}, "devices[0] (d).colour", "is not a device option"),
        ({"name": "d", "attributes": {"k": "a b"}}, "devices[0] (d).attributes.k", "must match"),
        ({"thing_type": "t"}, "devices[0].name", "is required"),
        (
            {"name": "d", "thing_groups": [f"g{i}" for i in range(10)]},
            "devices[0] (d).thing_groups",
            "at most 10 thing groups (the fleet group included), got 11",
        ),
    ],
)
def test_validation_messages(device, field, rule):
    with pytest.raises(ValidationError) as err:
        fleet.validate_fleet(params([device]))
    assert err.value.field == field
    assert rule in err.value.rule


def test_validation_duplicate_names():
    with pytest.raises(ValidationError, match=r"devices\[1\] \(a\)\.name: 'a' is listed twice"):
        fleet.validate_fleet(params([{"name": "a"}, {"name": "a"}]))


def test_output_dir_required_for_keys():
    with pytest.raises(ValidationError, match="output_dir: is required"):
        fleet.validate_fleet(params([{"name": "a", "certificate": "csr"}]))


def test_defaults_apply_and_file_label(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_text('{"name": "a"}\n{"name": "b", "attributes": {"x": "1", "y": "2"}}\n')
    with pytest.raises(ValidationError) as err:
        fleet.validate_fleet(
            {"devices_file": str(path), "fleet_group": "fg", "defaults": {"attributes": {"z": "1", "w": "2"}}}
        )
    assert str(err.value).startswith("devices_file[1] (b).attributes: a thing without a thing type")


def test_devices_and_file_exclusive():
    with pytest.raises(ValidationError, match="devices, devices_file: give exactly one"):
        fleet.validate_fleet({"fleet_group": "fg"})


@pytest.mark.parametrize(
    ("value", "expected"), [(5, ("count", 5.0)), ("7", ("count", 7.0)), ("10%", ("percent", 10.0))]
)
def test_parse_max_prune(value, expected):
    assert fleet.parse_max_prune(value) == expected


@pytest.mark.parametrize("value", ["ten", "150%", -1, True])
def test_parse_max_prune_refuses(value):
    with pytest.raises(ValidationError, match="max_prune"):
        fleet.parse_max_prune(value)


def test_prune_allowance():
    assert fleet.prune_allowance(("percent", 10.0), 12) == 1
    assert fleet.prune_allowance(("percent", 10.0), 9) == 0
    assert fleet.prune_allowance(("count", 3.0), 1000) == 3


# ---------------------------------------------------------------------------
# Planner (pure function over a snapshot)
# ---------------------------------------------------------------------------


def spec_of(devices, **extra):
    return fleet.validate_fleet(params(devices, **extra))


def test_plan_creates_missing_device_and_groups():
    spec = spec_of([{"name": "a", "attributes": {"k": "v"}, "thing_groups": ["g"]}])
    snap = fleet.Snapshot(groups={"fg": None, "g": None})
    plan = fleet.plan_fleet(spec, snap)
    device = plan.devices[0]
    assert device.action == "create"
    assert device.create_thing == {"thingName": "a", "attributePayload": {"attributes": {"k": "v"}}}
    assert device.groups_to_add == ["fg", "g"]
    assert plan.groups_to_create == ["fg", "g"]


def test_plan_unchanged_when_state_matches():
    spec = spec_of([{"name": "a", "attributes": {"k": "v"}, "thing_groups": ["g"]}])
    snap = fleet.Snapshot(
        groups={"fg": {"a"}, "g": {"a"}},
        things={"a": {"thing_type": None, "attributes": {"k": "v"}, "version": 3}},
    )
    plan = fleet.plan_fleet(spec, snap)
    assert plan.devices[0].action == "unchanged"
    assert plan.devices[0].changes == []
    assert plan.groups_to_create == []


def test_plan_update_attributes_and_groups_only_named_groups():
    spec = spec_of(
        [{"name": "a", "attributes": {"k": "new"}, "thing_groups": []}, {"name": "b", "thing_groups": ["g"]}]
    )
    snap = fleet.Snapshot(
        groups={"fg": {"a", "b"}, "g": {"a", "b"}},
        things={
            "a": {"thing_type": None, "attributes": {"k": "old", "gone": "x"}, "version": 3},
            "b": {"thing_type": None, "attributes": {}, "version": 1},
        },
    )
    plan = fleet.plan_fleet(spec, snap)
    a = plan.devices[0]
    assert a.action == "update"
    assert a.update_thing == {
        "thingName": "a",
        "expectedVersion": 3,
        "attributePayload": {"attributes": {"k": "new", "gone": ""}, "merge": True},
    }
    assert a.groups_to_remove == ["g"]
    assert plan.devices[1].action == "unchanged"


def test_plan_certificate_found_by_file_needs_activation_only():
    spec = spec_of([{"name": "a", "certificate": "csr", "policies": ["p"]}], output_dir="/nonexistent-ok")
    snap = fleet.Snapshot(
        groups={"fg": {"a"}},
        things={"a": {"thing_type": None, "attributes": {}, "version": 1}},
        principals={"a": [ARN + "c1"]},
        certificates={"c1": {"arn": ARN + "c1", "status": "INACTIVE", "created": 0}},
        policy_targets={"p": {ARN + "c1"}},
        local={"a": fleet.LocalDevice(key_public=b"K", cert_id="c1", cert_public=b"K")},
    )
    device = fleet.plan_fleet(spec, snap).devices[0]
    assert device.action == "update"
    assert device.new_certificate is None
    assert device.attach_certificate is False
    assert device.activate is True
    assert device.policies_to_attach == []
    assert device.changes == ["activate certificate"]


def test_plan_certificate_file_not_attached_attaches_instead_of_creating():
    spec = spec_of([{"name": "a", "certificate": "aws_keys", "policies": ["p"]}], output_dir="/x")
    snap = fleet.Snapshot(
        groups={"fg": {"a"}},
        things={"a": {"thing_type": None, "attributes": {}, "version": 1}},
        principals={"a": []},
        certificates={"c1": {"arn": ARN + "c1", "status": "INACTIVE", "created": 0}},
        policy_targets={"p": set()},
        local={"a": fleet.LocalDevice(key_public=b"K", cert_id="c1", cert_public=b"K")},
    )
    device = fleet.plan_fleet(spec, snap).devices[0]
    assert (device.new_certificate, device.attach_certificate, device.activate) == (None, True, True)
    assert device.policies_to_attach == ["p"]


def test_plan_new_certificate_when_file_certificate_is_gone():
    # csr: a new certificate for the same key; aws_keys: that would replace the key file, so the device fails.
    for source, action, new in (("csr", "update", "csr"), ("aws_keys", "failed", None)):
        spec = spec_of([{"name": "a", "certificate": source}], output_dir="/x")
        snap = fleet.Snapshot(
            groups={"fg": {"a"}},
            things={"a": {"thing_type": None, "attributes": {}, "version": 1}},
            principals={"a": []},
            local={"a": fleet.LocalDevice(key_public=b"K", cert_id="deleted", cert_public=b"K")},
        )
        device = fleet.plan_fleet(spec, snap).devices[0]
        assert (device.action, device.new_certificate) == (action, new)
    assert "/x/a/private.pem.key exists but its certificate deleted" in device.error


def test_plan_mismatched_key_and_certificate_fails_the_device_only():
    spec = spec_of([{"name": "a", "certificate": "aws_keys"}, {"name": "b"}], output_dir="/x")
    snap = fleet.Snapshot(
        groups={"fg": {"a", "b"}},
        things={n: {"thing_type": None, "attributes": {}, "version": 1} for n in "ab"},
        principals={"a": []},
        local={"a": fleet.LocalDevice(key_public=b"K1", cert_id="c", cert_public=b"K2")},
    )
    plan = fleet.plan_fleet(spec, snap)
    assert plan.devices[0].action == "failed"
    assert "does not match" in plan.devices[0].error
    assert plan.devices[1].action == "unchanged"


def test_plan_missing_policy_fails_device():
    spec = spec_of([{"name": "a", "certificate": "csr", "policies": ["nope"]}], output_dir="/x")
    snap = fleet.Snapshot(groups={"fg": set()}, policy_targets={"nope": None})
    device = fleet.plan_fleet(spec, snap).devices[0]
    assert device.action == "failed"
    assert device.error.startswith("policies: policy nope does not exist; create it first")


def test_plan_attribute_limit_checked_against_remote_type():
    spec = spec_of([{"name": "a", "attributes": {"x": "1"}, "purge_attributes": False}])
    snap = fleet.Snapshot(
        groups={"fg": {"a"}},
        things={"a": {"thing_type": None, "attributes": {"p": "1", "q": "2", "r": "3"}, "version": 1}},
    )
    device = fleet.plan_fleet(spec, snap).devices[0]
    assert device.action == "failed"
    assert "at most 3 attributes, got 4" in device.error


# ---------------------------------------------------------------------------
# Prune guard
# ---------------------------------------------------------------------------


def managed_snapshot(count):
    names = {f"d{i}" for i in range(count)}
    return fleet.Snapshot(
        groups={"fg": names},
        things={n: {"thing_type": None, "attributes": {}, "version": 1} for n in names},
        principals={n: [ARN + n] for n in names},
    )


def test_prune_guard_refuses_beyond_percentage():
    spec = spec_of([{"name": f"d{i}"} for i in range(8)], prune=True, max_prune="10%")
    with pytest.raises(ValidationError) as err:
        fleet.plan_fleet(spec, managed_snapshot(12))
    assert err.value.field == "max_prune"
    assert "remove 4 of the 12 devices" in err.value.rule
    assert "allows 1" in err.value.rule


def test_prune_within_guard_lists_devices_in_safe_order_data():
    spec = spec_of([{"name": f"d{i}"} for i in range(11)], prune=True, max_prune=1)
    plan = fleet.plan_fleet(spec, managed_snapshot(12))
    pruned = [d for d in plan.devices if d.action == "prune"]
    assert [d.name for d in pruned] == ["d11"]
    assert pruned[0].prune_principals == [ARN + "d11"]
    assert pruned[0].groups_to_remove == ["fg"]


def test_no_prune_without_flag():
    spec = spec_of([{"name": "d0"}])
    plan = fleet.plan_fleet(spec, managed_snapshot(12))
    assert [d.action for d in plan.devices] == ["unchanged"]


def test_plan_result_is_bounded():
    spec = spec_of([{"name": f"n{i}"} for i in range(60)])
    plan = fleet.plan_fleet(spec, fleet.Snapshot(groups={"fg": set()}))
    result = fleet.plan_result(plan)
    assert result["counts"]["create"] == 60
    assert len(result["devices"]) == 50
    assert result["devices_not_listed"] == 10


# ---------------------------------------------------------------------------
# Rate budget (fake clock)
# ---------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_budget_paces_at_the_default_rate():
    clock = FakeClock()
    budget = RateBudget({"ListThings": 10}, clock=clock, sleep=clock.sleep)
    for _unused in range(30):
        budget.acquire("ListThings")
    # 5 in the initial burst (half a second of quota), then 25 more at 10 per second.
    assert clock.now == pytest.approx(2.5, abs=0.01)


def test_budget_never_bursts_more_than_half_a_second_of_quota_after_idle():
    clock = FakeClock()
    budget = RateBudget({"ListThingPrincipals": 20}, clock=clock, sleep=clock.sleep)
    budget.acquire("ListThingPrincipals")
    clock.now += 60.0  # idle: AWS's bucket is full again, ours holds only half of it
    started = clock.now
    for _unused in range(30):
        budget.acquire("ListThingPrincipals")
    # 10 at once, then 20 more at 20 per second.
    assert clock.now - started == pytest.approx(1.0, abs=0.01)


def test_budget_unlisted_operation_uses_floor_rate():
    clock = FakeClock()
    budget = RateBudget({}, clock=clock, sleep=clock.sleep, unlisted=5)
    for _unused in range(13):
        budget.acquire("Whatever")
    # 2.5 tokens at once (half a second), then 10.5 more at 5 per second.
    assert clock.now == pytest.approx(2.1, abs=0.01)


def test_budget_halves_on_throttle_and_grows_back_slowly_to_start():
    clock = FakeClock()
    op = OperationBudget(100, clock)
    op.throttled()
    assert op.rate == 50
    op.throttled()
    assert op.rate == 25
    for _unused in range(10):
        op.succeeded()
    assert 25 < op.rate < 30
    for _unused in range(100000):
        op.succeeded()
    assert op.rate == 100


def test_budget_rate_never_below_minimum():
    op = OperationBudget(1, FakeClock())
    for _unused in range(20):
        op.throttled()
    assert op.rate == 0.5


def test_backoff_is_jittered_and_capped():
    assert backoff_delay(1, rng=lambda: 1.0) == pytest.approx(0.1)
    assert backoff_delay(3, rng=lambda: 0.5) == pytest.approx(0.2)
    assert backoff_delay(30, rng=lambda: 1.0) == 5.0
    assert backoff_delay(4, rng=lambda: 0.0) == 0.0


def client_error(code, status=400, op="CreateThing"):
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, op)


class ScriptedClient:
    """A stand-in client whose create_thing answers from a script of results/exceptions."""

    class meta:
        method_to_api_mapping = {"create_thing": "CreateThing"}

    def __init__(self, script):
        self.script = list(script)
        self.calls = 0

    def create_thing(self, **_params):
        self.calls += 1
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def test_caller_retries_throttles_5xx_and_drops_and_halves_budget():
    clock = FakeClock()
    budget = RateBudget({"CreateThing": 100}, clock=clock, sleep=clock.sleep)
    client = ScriptedClient(
        [
            client_error("ThrottlingException"),
            client_error("InternalFailureException", 500),
            ConnectionClosedError(endpoint_url="http://x"),
            {"thingName": "a"},
        ]
    )
    call = Caller(client, budget, sleep=clock.sleep, rng=lambda: 0.5)
    assert call("create_thing", thingName="a") == {"thingName": "a"}
    assert client.calls == 4
    summary = call.summary()
    assert summary["api_calls"] == {"CreateThing": 4}
    assert (summary["throttles"], summary["retries"]) == (1, 3)
    assert budget.rate("CreateThing") < 100


def test_caller_does_not_retry_hard_errors():
    clock = FakeClock()
    client = ScriptedClient([client_error("ResourceAlreadyExistsException", 409), {"x": 1}])
    call = Caller(client, RateBudget(clock=clock, sleep=clock.sleep), sleep=clock.sleep)
    with pytest.raises(ClientError):
        call("create_thing", thingName="a")
    assert client.calls == 1


def test_caller_gives_up_after_max_attempts():
    clock = FakeClock()
    client = ScriptedClient([client_error("ThrottlingException")] * 5)
    call = Caller(client, RateBudget(clock=clock, sleep=clock.sleep), max_attempts=3, sleep=clock.sleep)
    with pytest.raises(ClientError):
        call("create_thing", thingName="a")
    assert client.calls == 3


# ---------------------------------------------------------------------------
# Orphan sweep (fake caller)
# ---------------------------------------------------------------------------


class FakeCall:
    """Answers the sweep's calls from a fixed account state and records the mutating ones."""

    def __init__(self, certificates, things_of):
        self.certificates = certificates
        self.things_of = things_of
        self.mutations = []

    def pages(self, method, key, **params):
        if method == "list_certificates":
            return self.certificates
        if method == "list_principal_things":
            return self.things_of.get(params["principal"], [])
        if method == "list_attached_policies":
            return []
        raise AssertionError(method)

    def __call__(self, method, **params):
        self.mutations.append((method, params.get("certificateId") or params.get("policyName")))
        return {}


def cert(cert_id, status, created):
    return {"certificateId": cert_id, "certificateArn": ARN + cert_id, "status": status, "creationDate": created}


def test_sweep_reports_only_unknown_unattached_inactive_certificates_of_a_lost_answer():
    call = FakeCall(
        [
            cert("old", "INACTIVE", 100.0),  # created long before the call: not ours
            cert("known", "INACTIVE", 1000.0),  # a device's certificate file holds it
            cert("attached", "INACTIVE", 1000.0),  # attached to a thing
            cert("revoked", "REVOKED", 1000.0),
            cert("lost", "INACTIVE", 1000.0),
            cert("new-active", "ACTIVE", 1000.0),  # ACTIVE: in use, never touched
        ],
        {ARN + "attached": ["thing-1"]},
    )
    lost = fleet.CallRecord(device="d", source="aws_keys", started=1000.0 - 1, ended=1000.0 + 1, lost=1)
    result = fleet.sweep_orphans(call, [lost], {"known"}, {}, sleep=lambda _s: None)
    # AWS-made keys: the lost answer's certificate cannot be proven this fleet's, so it is reported, not deleted.
    assert (result.deleted, result.kept) == ([], ["lost"])
    assert call.mutations == []


def test_sweep_without_markers_makes_no_call():
    call = FakeCall([cert("lost", "INACTIVE", 1000.0)], {})
    assert fleet.sweep_orphans(call, [], set(), {}).deleted == []
    assert call.mutations == []


# ---------------------------------------------------------------------------
# Apply: one failing device does not stop the others; dependency order per device
# ---------------------------------------------------------------------------


class RecordingCall:
    """A fake caller: every call is recorded; CreateThing of `broken` fails with a hard error."""

    def __init__(self, broken):
        self.broken = broken
        self.calls = []

    def pages(self, method, key, **params):
        return []

    def __call__(self, method, **params):
        self.calls.append((method, params.get("thingName") or params.get("thingGroupName")))
        if method == "create_thing" and params["thingName"] == self.broken:
            raise ClientError(
                {"Error": {"Code": "InvalidRequestException", "Message": "bad"}, "ResponseMetadata": {}}, "CreateThing"
            )
        return {}


def test_apply_collects_failures_and_goes_on():
    spec = spec_of([{"name": f"n{i}", "thing_groups": ["g"]} for i in range(5)], concurrency=2)
    plan = fleet.plan_fleet(spec, fleet.Snapshot(groups={"fg": None, "g": None}))
    call = RecordingCall("n2")
    run = fleet.apply_plan(call, spec, plan)
    assert run.outcomes == {"n0": "created", "n1": "created", "n2": "failed", "n3": "created", "n4": "created"}
    assert run.failures == [
        {"name": "n2", "step": "create thing", "error": "CreateThing failed with InvalidRequestException: bad"}
    ]
    # The groups first, then per device: thing before its group memberships; nothing after the failed step.
    assert call.calls[:2] == [("create_thing_group", "fg"), ("create_thing_group", "g")]
    for name in ("n0", "n1", "n3", "n4"):
        steps = [c for c in call.calls if c[1] == name]
        assert steps == [("create_thing", name), ("add_thing_to_thing_group", name), ("add_thing_to_thing_group", name)]
    assert [c for c in call.calls if c[1] == "n2"] == [("create_thing", "n2")]


def test_apply_reports_each_device_to_progress():
    spec = spec_of([{"name": f"n{i}"} for i in range(4)], concurrency=2)
    plan = fleet.plan_fleet(spec, fleet.Snapshot(groups={"fg": None}))
    progress = Progress()
    fleet.apply_plan(RecordingCall("n1"), spec, plan, progress)
    state = progress.snapshot()
    assert (state["phase"], state["total"], state["done"]) == ("apply", 4, 4)
    assert state["outcomes"] == {"created": 3, "failed": 1}
    assert state["failed"] == 1


def test_read_reports_each_principal_listing_to_progress(tmp_path):
    spec = spec_of([{"name": f"n{i}", "certificate": "csr"} for i in range(3)], output_dir=str(tmp_path))

    class Listing(RecordingCall):
        def __call__(self, method, **params):
            if method == "list_things":
                return {"things": [{"thingName": f"n{i}", "attributes": {}} for i in range(2)]}
            return super().__call__(method, **params)

    progress = Progress()
    fleet.read_fleet_state(Listing(None), spec, progress)
    # Only the two things that exist need their principals listed.
    assert (progress.snapshot()["phase"], progress.snapshot()["total"], progress.snapshot()["done"]) == ("read", 2, 2)


# ---------------------------------------------------------------------------
# Progress file
# ---------------------------------------------------------------------------


def test_progress_snapshot_rate_and_call_counters():
    clock = FakeClock()
    progress = Progress(call_counters=lambda: {"api_calls_total": 12, "throttles": 2, "retries": 3}, clock=clock)
    progress.start_phase("apply", 10)
    clock.now = 2.0
    for outcome in ("created", "created", "unchanged", "failed"):
        progress.advance(outcome)
    state = progress.snapshot()
    assert state == {
        "phase": "apply",
        "total": 10,
        "done": 4,
        "elapsed": 2.0,
        "rate": 2.0,
        "outcomes": {"created": 2, "failed": 1, "unchanged": 1},
        "failed": 1,
        "api_calls": 12,
        "throttles": 2,
        "retries": 3,
    }


def test_progress_file_written_while_running_and_marked_done(tmp_path):
    path = tmp_path / "progress.json"
    with Progress(str(path), interval=0.01) as progress:
        progress.start_phase("apply", 3)
        progress.advance("created")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if path.exists() and json.loads(path.read_text())["done"] == 1:
                break
            time.sleep(0.01)
        assert json.loads(path.read_text())["phase"] == "apply"
        assert json.loads(path.read_text())["done"] == 1
    final = json.loads(path.read_text())
    assert (final["phase"], final["done"], final["total"]) == ("done", 1, 3)
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_progress_interval_zero_writes_nothing(tmp_path):
    path = tmp_path / "progress.json"
    with Progress(str(path), interval=0) as progress:
        progress.advance()
    assert not path.exists()


def test_progress_interval_validated():
    with pytest.raises(ValidationError, match="progress_interval: must be a number of seconds, 0 or more, got -1"):
        fleet.validate_fleet({"devices": [{"name": "a"}], "fleet_group": "fg", "progress_interval": -1})


# ---------------------------------------------------------------------------
# api_rates: raised or shared quotas
# ---------------------------------------------------------------------------


def test_api_rates_accepted_and_used_by_the_budget():
    spec = fleet.validate_fleet(
        {"devices": [{"name": "a"}], "fleet_group": "fg", "api_rates": {"ListThingPrincipals": 50, "CreateThing": "5"}}
    )
    assert spec.api_rates == {"ListThingPrincipals": 50.0, "CreateThing": 5.0}
    clock = FakeClock()
    budget = RateBudget({**DEFAULT_TPS, **spec.api_rates}, clock=clock, sleep=clock.sleep)
    for _unused in range(125):
        budget.acquire("ListThingPrincipals")
    # 25 at once (half a second of 50 TPS), then 100 at 50 per second; the default would be 20 TPS.
    assert clock.now == pytest.approx(2.0, abs=0.01)
    assert budget.rate("AttachPolicy") == DEFAULT_TPS["AttachPolicy"]


@pytest.mark.parametrize(
    ("rates", "message"),
    [
        ({"CreateThings": 5}, "api_rates.CreateThings: is not an operation the fleet engine calls; use one of"),
        ({"CreateThing": 0}, "api_rates.CreateThing: must be a number of calls per second above 0"),
        ({"CreateThing": "fast"}, "api_rates.CreateThing: must be a number"),
        ({"CreateThing": True}, "api_rates.CreateThing: must be a number"),
        ({"CreateThing": 20000}, "at most 10000, got 20000"),
        (["CreateThing"], "api_rates: must be a dictionary of operation name to TPS, got list"),
    ],
)
def test_api_rates_refused(rates, message):
    with pytest.raises(ValidationError) as raised:
        fleet.validate_fleet({"devices": [{"name": "a"}], "fleet_group": "fg", "api_rates": rates})
    assert message in str(raised.value)


# ---------------------------------------------------------------------------
# Reading the things: pages of the account, or a describe per device when that is cheaper
# ---------------------------------------------------------------------------


class Account:
    """A fake account of ``size`` things (acct-00000...) paged 250 at a time; fleet things are among them."""

    def __init__(self, size, extra=()):
        self.names = [f"acct-{i:05d}" for i in range(size)] + list(extra)
        self.calls = []

    def __call__(self, method, **params):
        self.calls.append(method)
        if method == "list_things":
            start = int(params.get("nextToken") or 0)
            page = self.names[start : start + params["maxResults"]]
            answer = {"things": [{"thingName": n, "attributes": {"k": "v"}, "version": 1} for n in page]}
            if start + params["maxResults"] < len(self.names):
                answer["nextToken"] = str(start + params["maxResults"])
            return answer
        if method == "describe_thing":
            if params["thingName"] not in self.names:
                raise ClientError(
                    {"Error": {"Code": "ResourceNotFoundException", "Message": "no"}, "ResponseMetadata": {}},
                    "DescribeThing",
                )
            return {"thingName": params["thingName"], "attributes": {"k": "v"}, "version": 1}
        raise AssertionError(method)


@pytest.mark.parametrize(("devices", "pages"), [(1, 1), (35, 1), (36, 2), (500, 15)])
def test_listing_page_budget_matches_describe_cost(devices, pages):
    assert fleet.listing_page_budget(devices) == pages


def test_small_account_is_listed_without_describes():
    # 40 devices: a budget of 2 pages; the account (which holds them all but one) fits in 2.
    names = {f"dev-{i:02d}" for i in range(40)}
    account = Account(420, extra=sorted(names - {"dev-07"}))
    things = fleet.read_things(account, names, concurrency=2)
    assert set(things) == names - {"dev-07"}
    assert things["dev-00"] == {"thing_type": None, "attributes": {"k": "v"}, "version": 1, "arn": None}
    assert account.calls == ["list_things", "list_things"]


def test_large_account_stops_paging_and_describes_the_devices_not_seen():
    # 100 devices: a budget of 3 pages (750 things) in an account of 100 000.
    account = Account(100000)
    names = {f"acct-{i:05d}" for i in range(0, 1000, 10)} | {"dev-missing"}
    things = fleet.read_things(account, names, concurrency=4)
    assert set(things) == names - {"dev-missing"}
    assert account.calls.count("list_things") == 3
    # Seen on the three pages: acct-00000 ... acct-00740 (75 devices); the other 26 are described.
    assert account.calls.count("describe_thing") == 26


def test_raised_list_quota_buys_more_pages():
    assert fleet.listing_page_budget(100, {**DEFAULT_TPS, "ListThings": 100}) == 29
