"""The local endpoint's traffic switches: quotas, latency and faults (traffic.py, TRAFFIC.md).

One endpoint for the module (started with launcher.py, no switches on the command line); before every test
the switches go back to the command-line settings (``DELETE /_local/traffic``) and moto's state is reset. The
switches are turned on through the control path, as a benchmark would. Clients are plain boto3 with botocore's
retries off, so every throttle and fault reaches the test. The quota arithmetic itself is checked against a
fake clock at the end of the file.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any, Iterator

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import endpoint_testing
import traffic
from endpoint_testing import module_endpoint

NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with module_endpoint("traffic") as url:
        yield url


def control(endpoint: str, method: str = "GET", payload: Any = None) -> tuple[int, dict[str, Any]]:
    data = None if payload is None else (payload if isinstance(payload, bytes) else json.dumps(payload).encode())
    request = urllib.request.Request(f"{endpoint}/_local/traffic", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def switch(endpoint: str, **settings: Any) -> dict[str, Any]:
    status, answer = control(endpoint, "POST", settings)
    assert status == 200, answer
    return answer


def client(endpoint: str, service: str = "iot") -> Any:
    return endpoint_testing.client(endpoint, service, config=NO_RETRIES)


@pytest.fixture
def iot(endpoint: str) -> Any:
    control(endpoint, "DELETE")
    endpoint_testing.reset(endpoint)
    iot = client(endpoint)
    iot.list_things()  # the first call builds moto's app; keep that out of timed sections
    control(endpoint, "DELETE")  # and out of the counters
    return iot


def outcome(call: Any, **kwargs: Any) -> str:
    """ "ok", the AWS error code, or "dropped"."""
    try:
        call(**kwargs)
    except ClientError as error:
        return error.response["Error"]["Code"]
    except ConnectionClosedError:
        return "dropped"
    return "ok"


def thing_names(iot: Any) -> list[str]:
    return sorted(thing["thingName"] for thing in iot.list_things(maxResults=250)["things"])


# --------------------------------------------------------------------------- defaults and the control path


def test_switches_are_off_by_default(endpoint: str, iot: Any) -> None:
    status, answer = control(endpoint)
    assert status == 200
    assert answer["settings"] == {
        "quotas": "off",
        "quota_scale": 1.0,
        "latency_ms": 0.0,
        "latency_jitter_ms": 0.0,
        "fault_rate": 0.0,
        "fault_kinds": ["throttle", "500", "503", "drop"],
        "fault_seed": None,
        "fault_operations": [],
    }
    assert answer["quota_tps"] is None
    # ListThings is 10 TPS on AWS: 25 calls in a tight loop all pass when quotas are off.
    assert [outcome(iot.list_things) for _attempt in range(25)] == ["ok"] * 25
    assert control(endpoint)[1]["counters"] == {"ListThings": {"calls": 25, "throttles": 0, "faults": 0}}


def test_control_path_changes_settings_at_run_time_and_refuses_bad_ones(endpoint: str, iot: Any) -> None:
    answer = switch(endpoint, quotas="aws-default", quota_scale=0.5, latency_ms=5, fault_kinds="500,drop-after")
    assert answer["settings"]["quotas"] == "aws-default"
    assert answer["settings"]["quota_scale"] == 0.5
    assert answer["settings"]["latency_ms"] == 5.0
    assert answer["settings"]["fault_kinds"] == ["500", "drop-after"]
    assert answer["quota_tps"]["ListThings"] == 5.0
    assert answer["quota_tps"]["DescribeThing"] == 175.0
    assert answer["unlisted_tps"] == 5.0

    before = control(endpoint)[1]["settings"]
    for bad, field, rule in (
        ({"quotas": "unlimited"}, "quotas", "must be one of off, aws-default"),
        ({"quota_scale": 0}, "quota_scale", "must be > 0.0"),
        ({"fault_rate": 1.5}, "fault_rate", "<= 1.0"),
        ({"fault_kinds": ["throttle", "timeout"]}, "fault_kinds", "each must be one of"),
        ({"latency_ms": "slow"}, "latency_ms", "must be a number"),
        ({"fault_seed": 1.5}, "fault_seed", "must be an integer"),
        ({"latency": 5}, "unknown settings ['latency']", ""),
    ):
        status, answer = control(endpoint, "POST", bad)
        assert status == 400, bad
        assert answer["error"].startswith(field) and rule in answer["error"], answer
    status, answer = control(endpoint, "POST", b"not json")
    assert status == 400
    # A refused change changes nothing, not even part of it.
    status, answer = control(endpoint, "POST", {"latency_ms": 50, "fault_rate": 2})
    assert status == 400
    assert control(endpoint)[1]["settings"] == before

    # DELETE: back to the command-line settings (all off here).
    assert control(endpoint, "DELETE")[1]["settings"]["quotas"] == "off"
    assert control(endpoint)[1]["settings"]["latency_ms"] == 0.0


def test_command_line_flags_set_the_startup_settings() -> None:
    flags = ["--quotas", "aws-default", "--quota-scale", "0.2", "--latency-ms", "7", "--latency-jitter-ms", "2"]
    flags += ["--fault-rate", "0.25", "--fault-kinds", "503,drop", "--fault-seed", "11"]
    with module_endpoint("traffic_flags", flags) as url:
        settings = control(url)[1]["settings"]
        assert settings == {
            "quotas": "aws-default",
            "quota_scale": 0.2,
            "latency_ms": 7.0,
            "latency_jitter_ms": 2.0,
            "fault_rate": 0.25,
            "fault_kinds": ["503", "drop"],
            "fault_seed": 11,
            "fault_operations": [],
        }
        switch(url, quotas="off", fault_rate=0)
        assert control(url, "DELETE")[1]["settings"] == settings  # DELETE returns to the flags, not to "off"


def test_fault_operations_limit_faults_to_the_operations_named(endpoint: str, iot: Any) -> None:
    switch(endpoint, fault_rate=1.0, fault_kinds="500", fault_operations=["ListThingTypes"])
    assert [outcome(iot.list_things) for _attempt in range(5)] == ["ok"] * 5
    assert [outcome(iot.list_thing_types) for _attempt in range(3)] == ["InternalFailureException"] * 3
    status, answer = control(endpoint, "POST", {"fault_operations": "ListThings"})
    assert status == 400 and "fault_operations" in json.dumps(answer)


# --------------------------------------------------------------------------- quotas


def test_quota_throttles_beyond_the_token_bucket(endpoint: str, iot: Any) -> None:
    # ListThings: 10 TPS on AWS; scaled by 0.2 a bucket of 2 tokens refilled at 2 per second. A slow rate, so
    # that a loaded machine (each call slower) still outruns the refill and meets throttles.
    switch(endpoint, quotas="aws-default", quota_scale=0.2)
    started = time.monotonic()
    results = [outcome(iot.list_things) for _attempt in range(20)]
    elapsed = time.monotonic() - started
    passed = results.count("ok")
    # 2 from the full bucket, plus what refilled meanwhile (one more for rounding).
    assert 2 <= passed <= int(2 + 2 * elapsed) + 1, (passed, elapsed, results)
    assert results[:2] == ["ok"] * 2
    assert set(results) == {"ok", "ThrottlingException"}
    counters = control(endpoint)[1]["counters"]["ListThings"]
    assert counters == {"calls": 20, "throttles": 20 - passed, "faults": 0}

    # AWS's answer: HTTP 400, the code in x-amzn-ErrorType, {"message": "Rate exceeded"}.
    with pytest.raises(ClientError) as caught:
        iot.list_things()
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "ThrottlingException"
    assert response["Error"] == {"Code": "ThrottlingException", "Message": "Rate exceeded"}

    # Each operation has its own bucket (DescribeThing: 70 TPS here), and S3 is never limited.
    iot.create_thing(thingName="t1")
    assert [outcome(iot.describe_thing, thingName="t1") for _attempt in range(10)] == ["ok"] * 10
    s3 = client(endpoint, "s3")
    assert [outcome(s3.list_buckets) for _attempt in range(15)] == ["ok"] * 15

    # The bucket refills continuously: 1 s later there are 2 tokens again.
    time.sleep(1.0)
    assert outcome(iot.list_things) == "ok"
    assert outcome(iot.list_things) == "ok"


def test_throttled_calls_are_not_executed_but_are_recorded(endpoint: str, iot: Any) -> None:
    # CreateThing: 100 TPS on AWS; scaled by 0.02 a bucket of 2 (rate 2/s).
    switch(endpoint, quotas="aws-default", quota_scale=0.02)
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/_local/calls", method="DELETE"), timeout=10)
    results = [outcome(iot.create_thing, thingName=f"q{i}") for i in range(6)]
    switch(endpoint, quotas="off")
    created = [f"q{i}" for i, result in enumerate(results) if result == "ok"]
    assert 2 <= len(created) <= 3, results
    assert thing_names(iot) == sorted(created)
    with urllib.request.urlopen(f"{endpoint}/_local/calls", timeout=10) as response:
        calls = json.loads(response.read())["calls"]
    assert calls.count("CreateThing") == 6  # the call recorder sees every call made, throttled or not


def test_an_unlisted_operation_gets_the_conservative_default(endpoint: str, iot: Any) -> None:
    # ListThingTypes is not in the table: 10 TPS, scaled by 0.3 a bucket of 3.
    switch(endpoint, quotas="aws-default", quota_scale=0.3)
    results = [outcome(iot.list_thing_types) for _attempt in range(8)]
    assert results[:3] == ["ok"] * 3
    assert 3 <= results.count("ok") <= 4, results


# --------------------------------------------------------------------------- latency


def test_latency_is_applied_and_calls_are_not_serialised(endpoint: str, iot: Any) -> None:
    switch(endpoint, latency_ms=400)
    started = time.monotonic()
    iot.list_things()
    assert time.monotonic() - started >= 0.4

    clients = [client(endpoint) for _attempt in range(4)]
    switch(endpoint, latency_ms=0)
    for each in clients:  # let each client set itself up outside the timed part
        each.list_things()
    switch(endpoint, latency_ms=400)
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda each: each.list_things(), clients))
    elapsed = time.monotonic() - started
    # Serialised, four calls would take at least 1.6 s; concurrent, about 0.4 s.
    assert 0.4 <= elapsed < 1.0, elapsed


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("kind", "expected", "status"),
    [
        ("throttle", "ThrottlingException", 400),
        ("500", "InternalFailureException", 500),
        ("503", "ServiceUnavailableException", 503),
    ],
)
def test_error_faults_happen_before_the_call(endpoint: str, iot: Any, kind: str, expected: str, status: int) -> None:
    switch(endpoint, fault_rate=1, fault_kinds=[kind])
    with pytest.raises(ClientError) as caught:
        iot.create_thing(thingName="faulted")
    response = caught.value.response
    assert response["Error"]["Code"] == expected
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == expected
    counters = control(endpoint)[1]
    assert counters["counters"]["CreateThing"] == {"calls": 1, "throttles": 0, "faults": 1}
    assert counters["fault_kinds"] == {kind: 1}
    switch(endpoint, fault_rate=0)
    assert thing_names(iot) == []  # never half-applied


def test_drop_closes_the_connection_before_the_call(endpoint: str, iot: Any) -> None:
    switch(endpoint, fault_rate=1, fault_kinds=["drop"])
    with pytest.raises(ConnectionClosedError):
        iot.create_thing(thingName="dropped")
    switch(endpoint, fault_rate=0)
    assert thing_names(iot) == []


def test_drop_after_applies_the_change_and_loses_the_answer(endpoint: str, iot: Any) -> None:
    switch(endpoint, fault_rate=1, fault_kinds=["drop-after"])
    with pytest.raises(ConnectionClosedError):
        iot.create_thing(thingName="applied", attributePayload={"attributes": {"a": "1"}})
    switch(endpoint, fault_rate=0)
    assert thing_names(iot) == ["applied"]
    assert iot.describe_thing(thingName="applied")["attributes"] == {"a": "1"}


def test_fault_rate_and_seed(endpoint: str, iot: Any) -> None:
    switch(endpoint, fault_rate=0.5, fault_kinds=["500", "503"], fault_seed=7)
    first = [outcome(iot.list_things) for _attempt in range(40)]
    faults = len(first) - first.count("ok")
    assert 8 <= faults <= 32, first  # binomial(40, 0.5): outside this range with probability < 1e-4
    assert set(first) == {"ok", "InternalFailureException", "ServiceUnavailableException"}
    switch(endpoint, fault_seed=7)  # the same seed: the same sequence of faults
    assert [outcome(iot.list_things) for _attempt in range(40)] == first


# --------------------------------------------------------------------------- the arithmetic, with a fake clock


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_refills_continuously_up_to_its_burst() -> None:
    clock = FakeClock()
    bucket = traffic.TokenBucket(rate=4.0, capacity=4.0, now=clock())
    assert [bucket.try_take(clock()) for _attempt in range(5)] == [True] * 4 + [False]
    assert bucket.wait_time(clock()) == pytest.approx(0.25)
    clock.now += 0.25
    assert bucket.try_take(clock()) is True
    assert bucket.try_take(clock()) is False
    clock.now += 60  # never more than the burst
    assert [bucket.try_take(clock()) for _attempt in range(5)] == [True] * 4 + [False]


def test_quota_table_scale_and_small_quotas() -> None:
    clock = FakeClock()
    shaper = traffic.Traffic(traffic.Settings(quotas="aws-default", quota_scale=0.05), clock=clock)
    # RegisterThing: 10 TPS * 0.05 = 0.5 TPS; the burst is at least one call.
    assert [shaper.admit("RegisterThing") for _attempt in range(2)] == ["pass", "quota"]
    clock.now += 1.0
    assert shaper.admit("RegisterThing") == "quota"
    clock.now += 1.0
    assert shaper.admit("RegisterThing") == "pass"
    assert traffic.quota_tps("DescribeThing", shaper.settings) == pytest.approx(17.5)
    assert traffic.quota_tps("SomethingNew", shaper.settings) == pytest.approx(0.5)
    assert traffic.quota_tps("DescribeThing", traffic.Settings()) is None


def test_latency_jitter_stays_within_its_bounds() -> None:
    shaper = traffic.Traffic(traffic.Settings(latency_ms=100, latency_jitter_ms=40))
    delays = [shaper.decide("ListThings").delay for _attempt in range(200)]
    assert all(0.06 <= delay <= 0.14 for delay in delays)
    assert max(delays) - min(delays) > 0.04  # it does vary
    # Jitter larger than the latency: never a negative sleep, and often none at all.
    shaper = traffic.Traffic(traffic.Settings(latency_ms=10, latency_jitter_ms=50))
    delays = [shaper.decide("ListThings").delay for _attempt in range(200)]
    assert min(delays) == 0.0
    assert max(delays) <= 0.06
