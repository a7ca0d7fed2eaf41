"""Unit tests of the fleet's safety rules (issue 9): the orphan sweep deletes only what the fleet can prove it
made, an empty input never prunes, a device key is never replaced and is kept 0600, the CSV report is safe to
open in a spreadsheet."""

from __future__ import annotations

import csv
import datetime
import json
import os
import stat

import pytest

from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto, fleet
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
except ImportError:  # pragma: no cover
    pytest.skip("cryptography is needed", allow_module_level=True)

ARN = "arn:aws:iot:us-east-1:123456789012:cert/"


def new_key():
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def cert_pem(key, name="dev") -> str:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def spki(key) -> bytes:
    return crypto.private_key_public_key(key_pem(key))


class Account:
    """The sweep's view of an account: certificates (id -> status, created, pem, things); records mutations."""

    def __init__(self, certificates):
        self.certificates = certificates
        self.mutations = []

    def pages(self, method, key, **params):
        if method == "list_certificates":
            return [
                {"certificateId": i, "certificateArn": ARN + i, "status": c["status"], "creationDate": c["created"]}
                for i, c in self.certificates.items()
            ]
        if method == "list_principal_things":
            return self.certificates[params["principal"][len(ARN) :]].get("things", [])
        if method == "list_attached_policies":
            return []
        raise AssertionError(method)

    def __call__(self, method, **params):
        if method == "describe_certificate":
            c = self.certificates[params["certificateId"]]
            return {"certificateDescription": {"certificatePem": c.get("pem")}}
        self.mutations.append((method, params.get("certificateId")))
        if method == "delete_certificate":
            del self.certificates[params["certificateId"]]
        return {}


def record(source, started=1000.0, ended=1002.0, lost=1, attempts=2, made=()):
    return fleet.CallRecord(
        device="d",
        source=source,
        started=started,
        last=started,
        attempts=attempts,
        lost=lost,
        ended=ended,
        made=list(made),
    )


def sweep(account, records, known=(), keys=None):
    return fleet.sweep_orphans(account, records, set(known), keys or {}, sleep=lambda _s: None, now=5000.0)


# ---------------------------------------------------------------------------
# Orphan sweep: only what the fleet can prove it made
# ---------------------------------------------------------------------------


def test_sweep_never_touches_an_active_certificate_it_cannot_prove_by_a_csr_key():
    """Issue 9: an ACTIVE certificate of the certificate module (no thing) was deleted by a fleet run."""
    mine = new_key()
    account = Account(
        {
            "cert-module": {"status": "ACTIVE", "created": 1001.0, "pem": cert_pem(new_key())},
            "mine-in-use": {"status": "ACTIVE", "created": 1001.0, "pem": cert_pem(mine), "things": ["d"]},
        }
    )
    result = sweep(account, [record("csr"), record("aws_keys", lost=5)], keys={spki(mine): "d"})
    assert result.deleted == []
    assert account.mutations == []
    # Only a CSR call makes an ACTIVE certificate: within an aws_keys window alone it is never a candidate.
    account = Account({"mine-active": {"status": "ACTIVE", "created": 1001.0, "pem": cert_pem(mine)}})
    assert sweep(account, [record("aws_keys", lost=5)], keys={spki(mine): "d"}).deleted == []
    assert account.mutations == []


def test_sweep_deactivates_then_deletes_an_active_csr_certificate_carrying_a_device_key():
    # Issue 11: CSR certificates are made ACTIVE; a lost answer's one is proven by the device key, never used.
    mine = new_key()
    account = Account({"mine-active": {"status": "ACTIVE", "created": 1001.0, "pem": cert_pem(mine)}})
    result = sweep(account, [record("csr")], keys={spki(mine): "d"})
    assert result.deleted == ["mine-active"]
    assert account.mutations == [("update_certificate", "mine-active"), ("delete_certificate", "mine-active")]


def test_sweep_deletes_a_csr_certificate_by_its_public_key_only():
    mine, theirs = new_key(), new_key()
    account = Account(
        {
            "lost": {"status": "INACTIVE", "created": 1001.0, "pem": cert_pem(mine)},
            "other-fleet": {"status": "INACTIVE", "created": 1001.0, "pem": cert_pem(theirs)},
            "attached": {"status": "INACTIVE", "created": 1001.0, "pem": cert_pem(mine), "things": ["t"]},
            "known": {"status": "INACTIVE", "created": 1001.0, "pem": cert_pem(mine)},
            "revoked": {"status": "REVOKED", "created": 1001.0, "pem": cert_pem(mine)},
        }
    )
    result = sweep(account, [record("csr")], known={"known"}, keys={spki(mine): "d"})
    assert result.deleted == ["lost"]
    assert result.kept == []
    assert account.mutations == [("delete_certificate", "lost")]


def test_sweep_stays_within_the_records_window():
    mine = new_key()
    account = Account(
        {
            "before": {"status": "INACTIVE", "created": 1000.0 - 121, "pem": cert_pem(mine)},
            "after": {"status": "INACTIVE", "created": 1002.0 + 121, "pem": cert_pem(mine)},
            "inside": {"status": "INACTIVE", "created": 1002.0 + 119, "pem": cert_pem(mine)},
        }
    )
    assert sweep(account, [record("csr")], keys={spki(mine): "d"}).deleted == ["inside"]


def test_sweep_never_deletes_a_certificate_of_a_lost_aws_keys_answer_it_cannot_prove():
    # One lost attempt, one candidate: it may be that attempt's, or another fleet's not yet attached (the
    # lost attempt may have made nothing). Nothing proves it ours: kept and reported.
    account = Account({"lost": {"status": "INACTIVE", "created": 1001.0}})
    result = sweep(account, [record("aws_keys", lost=1)])
    assert (result.deleted, result.kept) == ([], ["lost"])
    account = Account({"a": {"status": "INACTIVE", "created": 1001.0}, "b": {"status": "INACTIVE", "created": 1001.5}})
    result = sweep(account, [record("aws_keys", lost=1)])
    assert (result.deleted, result.kept) == ([], ["a", "b"])
    assert account.mutations == []


def test_sweep_without_a_lost_attempt_deletes_nothing():
    """Two fleets at once: every call of the fast one was answered, so the slow one's new certificates stay."""
    account = Account({f"slow-{i}": {"status": "INACTIVE", "created": 1001.0} for i in range(7)})
    result = sweep(account, [record("aws_keys", lost=0, attempts=1)])
    assert result.deleted == []
    assert account.mutations == []


def test_sweep_deletes_a_certificate_whose_id_was_returned_but_not_written():
    account = Account({"made": {"status": "INACTIVE", "created": 50.0}})
    assert sweep(account, [record("aws_keys", lost=0, made=["made"])]).deleted == ["made"]


def test_sweep_without_records_makes_no_call():
    account = Account({"lost": {"status": "INACTIVE", "created": 1000.0}})
    assert sweep(account, []).deleted == []
    assert account.mutations == []


# ---------------------------------------------------------------------------
# Records: written before the call, dropped when every attempt was answered
# ---------------------------------------------------------------------------


class HTTP:
    def __init__(self, status):
        self.status_code = status


class EventCaller:
    """Stands for the Caller over botocore: fires the events botocore fires around each attempt."""

    def __init__(self, attempts, output_dir, name):
        self.attempts = attempts  # per attempt: an HTTP status, or None for a dropped connection
        self.output_dir = output_dir
        self.name = name
        self.on_disk_before_first = None

    def __call__(self, method, **params):
        for status in self.attempts:
            if self.on_disk_before_first is None:
                self.on_disk_before_first = fleet._device_records(self.output_dir, self.name)
            fleet._before_attempt()
            if status is not None:
                fleet._after_attempt(http_response=HTTP(status))
        key = new_key()
        return {
            "certificateId": "c" * 64,
            "certificateArn": ARN + "c" * 64,
            "certificatePem": cert_pem(key),
            "keyPair": {"PrivateKey": key_pem(key).decode()},
        }


def _create(tmp_path, attempts, source="aws_keys"):
    spec = fleet.validate_fleet(
        {"devices": [{"name": "d", "certificate": source}], "fleet_group": "fg", "output_dir": str(tmp_path)}
    )
    plan = fleet.DevicePlan(name="d", new_certificate=source)
    call = EventCaller(attempts, str(tmp_path), "d")
    fleet._create_certificate(call, spec, spec.devices[0], plan)
    return call, fleet._device_records(str(tmp_path), "d")


def test_a_call_answered_at_once_leaves_no_record(tmp_path):
    call, records = _create(tmp_path, [200])
    assert [r.source for r in call.on_disk_before_first] == ["aws_keys"]  # written before the call
    assert records == []
    assert not os.path.exists(tmp_path / "d" / fleet.MARKER_FILE)


def test_a_lost_answer_leaves_a_record_with_its_attempts(tmp_path):
    _call, records = _create(tmp_path, [None, 503, 200], source="csr")
    assert len(records) == 1
    assert (records[0].source, records[0].attempts, records[0].lost) == ("csr", 3, 2)
    assert records[0].ended is not None


def test_a_throttled_attempt_is_not_a_lost_answer(tmp_path):
    _call, records = _create(tmp_path, [400, 200])
    assert records == []


def test_old_and_unreadable_markers_are_told_by_public_key_only(tmp_path):
    (tmp_path / "d").mkdir()
    marker = tmp_path / "d" / fleet.MARKER_FILE
    marker.write_text(json.dumps({"started": [1000.0]}))
    assert [r.source for r in fleet._device_records(str(tmp_path), "d")] == ["unknown"]
    marker.write_text("{not json")
    assert [r.source for r in fleet._device_records(str(tmp_path), "d")] == ["unknown"]
    # Such a record alone deletes nothing a device key does not prove.
    account = Account({"x": {"status": "INACTIVE", "created": 1.0, "pem": cert_pem(new_key())}})
    assert sweep(account, fleet._device_records(str(tmp_path), "d"), keys={spki(new_key()): "d"}).deleted == []


# ---------------------------------------------------------------------------
# An empty input never prunes without prune_all
# ---------------------------------------------------------------------------


def managed(count):
    names = {f"d{i}" for i in range(count)}
    return fleet.Snapshot(
        groups={"fg": names},
        things={n: {"thing_type": None, "attributes": {}, "version": 1} for n in names},
        principals={n: [] for n in names},
    )


def spec_of(**params):
    base = {"fleet_group": "fg", "output_dir": None}
    base.update(params)
    return fleet.validate_fleet(base)


@pytest.mark.parametrize(
    ("content", "suffix", "why"),
    [
        (b"", ".jsonl", "is empty (0 bytes)"),
        (b"", ".csv", "is empty (0 bytes)"),
        (b"name\n", ".csv", "holds no devices"),
        (b"devices: []\n", ".yml", "holds no devices"),
    ],
)
def test_empty_devices_file_never_prunes_whatever_max_prune_says(tmp_path, content, suffix, why):
    path = tmp_path / f"fleet{suffix}"
    path.write_bytes(content)
    spec = spec_of(devices_file=str(path), prune=True, max_prune="100%")
    with pytest.raises(ValidationError) as err:
        fleet.plan_fleet(spec, managed(180))
    assert err.value.field == "prune"
    assert why in err.value.rule
    assert "prune_all" in err.value.rule
    assert "nothing was changed" in err.value.rule


def test_empty_list_never_prunes_and_prune_all_retires_the_fleet():
    with pytest.raises(ValidationError) as err:
        fleet.plan_fleet(spec_of(devices=[], prune=True, max_prune=1000), managed(5))
    assert "devices is an empty list" in err.value.rule
    plan = fleet.plan_fleet(spec_of(devices=[], prune=True, prune_all=True), managed(5))
    assert [d.action for d in plan.devices] == ["prune"] * 5


def test_input_with_none_of_the_members_never_prunes_all_of_them():
    spec = spec_of(devices=[{"name": "new-1"}], prune=True, max_prune="100%")
    with pytest.raises(ValidationError) as err:
        fleet.plan_fleet(spec, managed(3))
    assert "prune_all" in err.value.rule
    # With devices in the input, prune_all still leaves max_prune in force (a truncated file stays guarded).
    with pytest.raises(ValidationError) as err:
        fleet.plan_fleet(spec_of(devices=[{"name": "new-1"}], prune=True, prune_all=True), managed(30))
    assert err.value.field == "max_prune"
    plan = fleet.plan_fleet(
        spec_of(devices=[{"name": "new-1"}], prune=True, prune_all=True, max_prune="100%"), managed(3)
    )
    assert sorted(d.action for d in plan.devices) == ["create", "prune", "prune", "prune"]


def test_unreadable_devices_file_fails_before_anything(tmp_path):
    (tmp_path / "binary.csv").write_bytes(b"name\n\xff\xfe\n")
    (tmp_path / "dir.csv").mkdir()
    for name in ("missing.csv", "binary.csv", "dir.csv"):
        with pytest.raises(ValidationError) as err:
            spec_of(devices_file=str(tmp_path / name), prune=True, max_prune="100%")
        assert err.value.field == "devices_file"
        assert "cannot read" in err.value.rule


def test_prune_all_needs_prune():
    with pytest.raises(ValidationError) as err:
        spec_of(devices=[], prune_all=True)
    assert err.value.field == "prune_all"


def test_empty_input_without_members_is_fine():
    plan = fleet.plan_fleet(spec_of(devices=[], prune=True), fleet.Snapshot(groups={"fg": None}))
    assert plan.devices == []


# ---------------------------------------------------------------------------
# Device keys: never replaced, kept 0600
# ---------------------------------------------------------------------------


def _device_dir(tmp_path, mode=0o600):
    directory = tmp_path / "d"
    directory.mkdir()
    key = directory / fleet.KEY_FILE
    key.write_bytes(key_pem(new_key()))
    os.chmod(key, mode)
    return key


def _snapshot(tmp_path, thing=True):
    return fleet.Snapshot(
        groups={"fg": {"d"} if thing else None},
        things={"d": {"thing_type": None, "attributes": {}, "version": 1}} if thing else {},
        principals={"d": []},
        local={"d": fleet.read_local_device(str(tmp_path), "d")},
    )


def test_aws_keys_device_with_a_key_but_no_certificate_fails_and_keeps_the_key(tmp_path):
    key = _device_dir(tmp_path)
    before = key.read_bytes()
    spec = spec_of(devices=[{"name": "d", "certificate": "aws_keys"}], output_dir=str(tmp_path))
    plan = fleet.plan_fleet(spec, _snapshot(tmp_path))
    device = plan.devices[0]
    assert device.action == "failed"
    assert str(key) in device.error
    assert "never replaced" in device.error
    assert "move" in device.error
    assert device.new_certificate is None
    run = fleet.apply_plan(Account({}), spec, plan)
    assert run.outcomes == {"d": "failed"}
    assert key.read_bytes() == before


def test_aws_keys_certificate_call_refuses_an_existing_key(tmp_path):
    key = _device_dir(tmp_path)
    before = key.read_bytes()
    spec = spec_of(devices=[{"name": "d", "certificate": "aws_keys"}], output_dir=str(tmp_path))
    with pytest.raises(ValidationError):
        fleet._create_certificate(
            EventCaller([200], str(tmp_path), "d"),
            spec,
            spec.devices[0],
            fleet.DevicePlan(name="d", new_certificate="aws_keys"),
        )
    assert key.read_bytes() == before


def test_csr_device_keeps_its_key_for_a_new_certificate(tmp_path):
    _device_dir(tmp_path)
    spec = spec_of(devices=[{"name": "d", "certificate": "csr"}], output_dir=str(tmp_path))
    device = fleet.plan_fleet(spec, _snapshot(tmp_path)).devices[0]
    assert device.new_certificate == "csr"


@pytest.mark.parametrize("source", ["csr", "aws_keys"])
def test_key_file_readable_by_others_is_made_0600_and_reported(tmp_path, source):
    key = _device_dir(tmp_path, mode=0o644)
    k = fleet.crypto.load_private_key(key.read_bytes())
    (tmp_path / "d" / fleet.CERT_FILE).write_text(cert_pem(k))
    cert_id = fleet.crypto.certificate_id(cert_pem(k))
    spec = spec_of(devices=[{"name": "d", "certificate": source}], output_dir=str(tmp_path))
    snap = _snapshot(tmp_path)
    snap.local["d"] = fleet.read_local_device(str(tmp_path), "d")
    cert_id = snap.local["d"].cert_id
    snap.principals = {"d": [ARN + cert_id]}
    snap.certificates = {cert_id: {"arn": ARN + cert_id, "status": "ACTIVE", "created": 0}}
    plan = fleet.plan_fleet(spec, snap)
    device = plan.devices[0]
    # Predicted (as check mode shows it), nothing done yet.
    assert device.action == "update"
    assert device.changes == [f"set {fleet.KEY_FILE} mode to 0600 (was 0644)"]
    assert (device.before["key_file_mode"], device.after["key_file_mode"]) == ("0644", "0600")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o644
    run = fleet.apply_plan(Account({}), spec, plan)
    assert run.outcomes == {"d": "updated"}
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    # And then nothing is left to do.
    again = fleet.plan_fleet(spec, _snapshot_with(tmp_path, cert_id))
    assert again.devices[0].action == "unchanged"


def _snapshot_with(tmp_path, cert_id):
    snap = _snapshot(tmp_path)
    snap.principals = {"d": [ARN + cert_id]}
    snap.certificates = {cert_id: {"arn": ARN + cert_id, "status": "ACTIVE", "created": 0}}
    return snap


# ---------------------------------------------------------------------------
# A killed run's key without its certificate: found again by public key
# ---------------------------------------------------------------------------


class ReadAccount:
    """The read calls of read_fleet_state over a small account."""

    def __init__(self, certificates, things):
        self.certificates = certificates
        self.things = things

    def pages(self, method, key, **params):
        if method == "list_things_in_thing_group":
            return sorted(self.things)
        if method == "list_certificates":
            return [
                {"certificateId": i, "certificateArn": ARN + i, "status": c["status"], "creationDate": c["created"]}
                for i, c in self.certificates.items()
            ]
        if method == "list_thing_principals":
            return []
        raise AssertionError(method)

    def __call__(self, method, **params):
        if method == "list_things":
            return {"things": [{"thingName": n, "attributes": {}, "version": 1} for n in self.things]}
        if method == "describe_certificate":
            return {"certificateDescription": {"certificatePem": self.certificates[params["certificateId"]]["pem"]}}
        raise AssertionError(method)


def test_key_written_certificate_not_is_recovered_by_public_key(tmp_path):
    key = _device_dir(tmp_path)
    k = fleet.crypto.load_private_key(key.read_bytes())
    started = 1_000_000.0
    fleet.write_records(str(tmp_path), "d", [fleet.CallRecord(device="d", source="aws_keys", started=started)])
    pem = cert_pem(k)
    cert_id = fleet.crypto.certificate_id(pem)
    account = ReadAccount(
        {
            cert_id: {"status": "INACTIVE", "created": started + 1, "pem": pem},
            "other": {"status": "INACTIVE", "created": started + 1, "pem": cert_pem(new_key())},
        },
        {"d"},
    )
    spec = spec_of(devices=[{"name": "d", "certificate": "aws_keys"}], output_dir=str(tmp_path))
    snap = fleet.read_fleet_state(account, spec)
    device = fleet.plan_fleet(spec, snap).devices[0]
    assert device.error is None
    assert device.new_certificate is None
    assert device.certificate_id == cert_id
    assert device.write_certificate_pem == pem
    assert (device.attach_certificate, device.activate) == (True, True)


# ---------------------------------------------------------------------------
# CSV report: no cell a spreadsheet runs as a formula
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["=1+1", "+1", "-2", "@SUM(A1)", "\tx", "\rx"])
def test_csv_cell_quotes_formula_starts(text):
    assert fleet.csv_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["dev-1", "", "a=b", 3, None])
def test_csv_cell_leaves_other_values(value):
    assert fleet.csv_cell(value) == value


def test_report_csv_quotes_formula_cells(tmp_path):
    plan = fleet.FleetPlan(
        devices=[fleet.DevicePlan(name="-dev", action="failed", changes=['=HYPERLINK("x")'])],
        groups_to_create=[],
        records=[],
    )
    run = fleet.RunOutcome(
        outcomes={"-dev": "failed"},
        failures=[{"name": "-dev", "step": "@step", "error": "+cmd|' /C calc'!A0"}],
    )
    path = tmp_path / "report.json"
    fleet.write_report(str(path), {"created": 0}, run, plan)
    with open(tmp_path / "report.csv", newline="", encoding="utf-8") as handle:
        row = next(csv.DictReader(handle))
    assert row["name"] == "'-dev"
    assert row["changes"] == '\'=HYPERLINK("x")'
    assert row["failed_step"] == "'@step"
    assert row["error"] == "'+cmd|' /C calc'!A0"
    # The JSON report keeps the values as they are.
    assert json.loads(path.read_text())["devices"][0]["name"] == "-dev"
