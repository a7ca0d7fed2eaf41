"""The certificate module's creating calls: never repeated blindly, recorded before they run, recovered after.

Two kinds of tests:

* against a scripted HTTP server with a real botocore client, to see what botocore's retry handler does to a
  CreateKeysAndCertificate whose answer is lost or fails with a server error;
* against ``FakeIoT`` (test_certificates.py), for runs that stop half-way (a process killed right after the call,
  a certificate file that cannot be written) and the run after them.
"""

from __future__ import annotations

import datetime
import http.server
import json
import os
import stat
import threading
import time
from typing import Iterator

import pytest
from botocore.exceptions import ClientError
from test_certificates import FakeIoT, client_error, csr_pem, key_pem, new_key, params

from ansible_collections.iotfleet.provisioning.plugins.module_utils import aws, crypto, errors
from ansible_collections.iotfleet.provisioning.plugins.module_utils import certificates as certs
from ansible_collections.iotfleet.provisioning.plugins.module_utils.certificates.intent import _write_intent
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import AwsCallError, ValidationError

# --- a scripted endpoint -------------------------------------------------------------------------------------


class _Scripted(http.server.BaseHTTPRequestHandler):
    """Each request takes the next step of ``script`` (the last one repeats): ``drop`` closes the connection
    without an answer (as if the answer were lost), ``(status, code)`` answers that error, ``ok`` answers a
    CreateKeysAndCertificate result."""

    script: list = []
    requests: list = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        cls = type(self)
        cls.requests.append(self.path)
        step = cls.script[min(len(cls.requests), len(cls.script)) - 1]
        if step == "drop":
            self.close_connection = True
            self.connection.close()
            return
        if step == "ok":
            status, body, error = 200, {"certificateId": "a" * 64, "certificateArn": "arn", "certificatePem": "x"}, ""
        else:
            status, error = step
            body = {"message": error}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("x-amzn-RequestId", "req-1")
        if error:
            self.send_header("x-amzn-ErrorType", error)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture()
def scripted() -> Iterator[tuple]:
    handler = type("Handler", (_Scripted,), {"requests": [], "script": ["ok"]})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = aws.make_client(
            "iot",
            region="us-east-1",
            access_key="testing",
            secret_key="testing",
            endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
            max_attempts=5,
            aws_config={"connect_timeout": 2, "read_timeout": 5},
        )
        yield client, handler
    finally:
        server.shutdown()
        server.server_close()


def _creates(handler) -> int:
    return sum(1 for path in handler.requests if path.startswith("/keys-and-certificate"))


@pytest.mark.parametrize(
    "script, kind",
    [(["drop"], "the answer was lost"), ([(500, "InternalFailureException")], "a server error")],
)
def test_create_keys_is_not_repeated_after_an_answer_that_may_have_run(scripted, tmp_path, script, kind):
    """botocore's retry handler repeats a call whose answer was lost; each repeat made a certificate whose
    private key nobody ever saw (4 such certificates were seen in one fault run)."""
    client, handler = scripted
    handler.script = script
    desired = certs.validate_certificate(
        params(create_keys=True, private_key_path=str(tmp_path / "dev.key"), certificate_path=str(tmp_path / "d.pem"))
    )
    with pytest.raises(AwsCallError) as caught:
        certs.ensure_present(client, desired, False)
    assert _creates(handler) == 1, f"CreateKeysAndCertificate was sent {_creates(handler)} times after {kind}"
    message = str(caught.value)
    assert "CreateKeysAndCertificate" in message and "not retried" in message
    assert desired.intent_path in message
    with open(desired.intent_path) as handle:
        record = json.loads(handle.read())
    assert record["operation"] == "CreateKeysAndCertificate" and record["ended"] >= record["started"]
    assert stat.S_IMODE(os.stat(desired.intent_path).st_mode) == 0o600
    assert not (tmp_path / "dev.key").exists()


def test_call_once_still_retries_throttling(scripted):
    """A throttled call did not run: retrying it is safe, and the only way through a busy account."""
    client, handler = scripted
    handler.script = [(400, "ThrottlingException"), (400, "ThrottlingException"), "ok"]
    response = aws.call_once(client, "create_keys_and_certificate", setAsActive=False)
    assert response["certificateId"] == "a" * 64
    assert _creates(handler) == 3


def test_call_once_stops_at_other_errors_and_leaves_other_calls_retried(scripted):
    client, handler = scripted
    handler.script = [(503, "ServiceUnavailableException")]
    with pytest.raises(ClientError) as caught:
        aws.call_once(client, "create_keys_and_certificate", setAsActive=False)
    assert errors.error_code(caught.value) == "ServiceUnavailableException"
    assert _creates(handler) == 1
    # The hook is gone afterwards: the same call made normally is retried as before.
    with pytest.raises(ClientError):
        client.create_keys_and_certificate(setAsActive=False)
    assert _creates(handler) == 1 + 5


# --- runs that stop half-way, and the run after ----------------------------------------------------------------


class Killed(BaseException):
    """The process dies: nothing after this point of the run happens (no except clause catches it)."""


class TimedIoT(FakeIoT):
    """FakeIoT whose certificates are created now (the intent records hold real times)."""

    def _add(self, pem, status, ca_id=None):
        cert = super()._add(pem, status, ca_id)
        now = datetime.datetime.now(datetime.timezone.utc)
        cert["creationDate"] = now + datetime.timedelta(microseconds=self._clock)
        return cert


@pytest.fixture
def iot():
    fake = TimedIoT()
    fake.things.update({"dev-1", "dev-2"})
    fake.policies.update({"pol-a"})
    return fake


def run(iot, check_mode=False, state="present", **kwargs):
    warnings = []
    desired = certs.validate_certificate(params(state=state, **kwargs))
    func = certs.ensure_present if state == "present" else certs.ensure_absent
    extra = {} if state == "present" else {"sleep": lambda _s: None}
    result = func(iot, desired, check_mode, warnings.append, **extra)
    return result, dict(result.extra), warnings


def kill_after(iot, operation):
    """The next ``operation`` runs on the fake AWS, then the process is killed before its answer is used."""
    real = getattr(iot, operation)

    def killed(*args, **kwargs):
        setattr(iot, operation, real)
        real(*args, **kwargs)
        raise Killed(operation)

    setattr(iot, operation, killed)


def keys_opts(tmp_path, **extra):
    return dict(
        create_keys=True,
        private_key_path=str(tmp_path / "dev.key"),
        certificate_path=str(tmp_path / "dev.pem"),
        thing="dev-1",
        policies=["pol-a"],
        **extra,
    )


def test_unwritable_certificate_file_is_completed_by_the_rerun(iot, tmp_path, monkeypatch):
    """The key is on disk, the certificate file could not be written (disk full): the message says a re-run
    completes it, and the re-run does (it used to refuse: "refusing to overwrite the key")."""
    opts = keys_opts(tmp_path)
    real_commit = crypto.PendingFile.commit

    def full_disk(self, data):
        if self.path.endswith(".pem"):
            raise OSError(28, "No space left on device")
        return real_commit(self, data)

    monkeypatch.setattr(crypto.PendingFile, "commit", full_disk)
    with pytest.raises(ValidationError) as caught:
        run(iot, **opts)
    (cert_id,) = iot.certificates
    assert caught.value.field == "certificate_path"
    assert "No space left on device" in caught.value.rule and "run the task again" in caught.value.rule
    assert cert_id in caught.value.rule
    assert iot.certificates[cert_id]["status"] == "INACTIVE"
    assert (tmp_path / "dev.key").exists() and not (tmp_path / "dev.pem").exists()

    monkeypatch.setattr(crypto.PendingFile, "commit", real_commit)
    iot.calls.clear()
    done, report, _w = run(iot, **opts)
    changed, before, after = done.changed, done.before, done.after
    assert changed and before["certificate_id"] == cert_id and before["status"] == "INACTIVE"
    assert after["certificate_id"] == cert_id and after["status"] == "ACTIVE"
    assert after["things"] == ["dev-1"] and after["policies"] == ["pol-a"]
    assert (tmp_path / "dev.pem").read_text() == iot.certificates[cert_id]["certificatePem"]
    assert "create_keys_and_certificate" not in iot.mutating_calls()
    assert list(iot.certificates) == [cert_id]
    assert report == {"orphaned_certificates_deleted": [], "orphaned_certificates_suspected": []}
    # The message named what the re-run used.
    assert "intent record" in caught.value.rule

    # Completed: the record is gone and a third run reads only what it always read.
    assert not any(name.endswith(".create-intent.json") for name in os.listdir(tmp_path))
    iot.calls.clear()
    done, _r, _w = run(iot, **opts)
    changed, again = done.changed, done.after
    assert not changed and again == after and iot.mutating_calls() == []
    assert "list_certificates" not in [op for op, _unused in iot.calls]


def test_key_is_on_disk_0600_before_any_further_call(iot, tmp_path):
    key_path = tmp_path / "dev.key"
    seen = []
    real_record = iot._record

    def record(op, **kwargs):
        if any(done == "create_keys_and_certificate" for done, _unused in iot.calls):
            seen.append((op, key_path.exists() and stat.S_IMODE(os.stat(key_path).st_mode)))
        return real_record(op, **kwargs)

    iot._record = record
    old = os.umask(0o022)
    try:
        run(iot, **keys_opts(tmp_path))
    finally:
        os.umask(old)
    assert seen and all(mode == 0o600 for _op, mode in seen), seen


def test_killed_right_after_create_keys_the_rerun_reports_the_certificate(iot, tmp_path):
    """The key of a certificate whose answer never arrived is lost. Nothing proves whose it is, so it is reported
    (result and warning), never deleted; the re-run makes the device's certificate."""
    opts = keys_opts(tmp_path)
    kill_after(iot, "create_keys_and_certificate")
    with pytest.raises(Killed):
        run(iot, **opts)
    (orphan,) = iot.certificates
    assert iot.certificates[orphan]["status"] == "INACTIVE"
    assert not (tmp_path / "dev.key").exists()
    assert os.listdir(tmp_path) == [".dev.key.create-intent.json"]

    done, report, warnings = run(iot, **opts)
    changed, after = done.changed, done.after
    assert changed and after["status"] == "ACTIVE" and after["certificate_id"] != orphan
    assert report["orphaned_certificates_suspected"] == [orphan]
    assert report["orphaned_certificates_deleted"] == []
    assert any(orphan in w and "CreateKeysAndCertificate" in w for w in warnings)
    assert orphan in iot.certificates  # left alone
    assert sorted(os.listdir(tmp_path)) == ["dev.key", "dev.pem"]

    iot.calls.clear()
    done, report, warnings = run(iot, **opts)
    changed = done.changed
    assert not changed and iot.mutating_calls() == [] and warnings == []
    assert report["orphaned_certificates_suspected"] == []


def test_a_lost_answer_reports_only_certificates_attached_to_nothing_in_the_window(iot, tmp_path):
    opts = keys_opts(tmp_path)
    busy = iot.create_keys_and_certificate(setAsActive=False)["certificateId"]  # someone else's, attached
    iot.attach_thing_principal(thingName="dev-2", principal=iot.certificates[busy]["certificateArn"])
    active = iot.create_keys_and_certificate(setAsActive=True)["certificateId"]
    kill_after(iot, "create_keys_and_certificate")
    with pytest.raises(Killed):
        run(iot, **opts)
    (orphan,) = set(iot.certificates) - {busy, active}
    iot.calls.clear()
    _done, report, _w = run(iot, **opts)
    assert report["orphaned_certificates_suspected"] == [orphan]
    assert {busy, active, orphan} <= set(iot.certificates)
    assert "delete_certificate" not in iot.mutating_calls()


def test_killed_right_after_create_from_csr_the_rerun_completes_that_certificate(iot, tmp_path):
    """A CSR's certificate carries the CSR's public key: that proves it is this task's, so the re-run completes it
    instead of making a second one."""
    opts = dict(csr=csr_pem(new_key()), certificate_path=str(tmp_path / "dev.pem"), thing="dev-1")
    kill_after(iot, "create_certificate_from_csr")
    with pytest.raises(Killed):
        run(iot, **opts)
    (cert_id,) = iot.certificates
    assert os.listdir(tmp_path) == [".dev.pem.create-intent.json"]

    iot.calls.clear()
    done, report, _w = run(iot, **opts)
    changed, before, after = done.changed, done.before, done.after
    assert changed and before["certificate_id"] == cert_id and after["certificate_id"] == cert_id
    assert after["status"] == "ACTIVE" and after["things"] == ["dev-1"]
    assert "create_certificate_from_csr" not in iot.mutating_calls()
    assert list(iot.certificates) == [cert_id]
    assert report["orphaned_certificates_deleted"] == []
    assert os.listdir(tmp_path) == ["dev.pem"]


def test_duplicates_proven_by_the_public_key_are_deleted_others_are_not(iot, tmp_path):
    """Two certificates for the CSR (made by an earlier run whose answers were lost and repeated): one is
    completed, the other deleted. A certificate of another key made meanwhile is left alone and not reported."""
    key = new_key()
    opts = dict(csr=csr_pem(key), certificate_path=str(tmp_path / "dev.pem"), thing="dev-1")
    desired = certs.validate_certificate(params(**opts))
    _write_intent(desired, {"operation": "CreateCertificateFromCsr", "started": time.time()})
    first = iot.create_certificate_from_csr(certificateSigningRequest=opts["csr"])["certificateId"]
    second = iot.create_certificate_from_csr(certificateSigningRequest=opts["csr"])["certificateId"]
    other = iot.create_certificate_from_csr(certificateSigningRequest=csr_pem(new_key()))["certificateId"]

    # Check mode predicts the deletion and changes nothing, the record included.
    iot.calls.clear()
    done, report, _w = run(iot, check_mode=True, **opts)
    changed = done.changed
    assert changed and report["orphaned_certificates_deleted"] == [first]
    assert iot.mutating_calls() == [] and os.path.exists(desired.intent_path)

    done, report, _w = run(iot, **opts)
    changed, after = done.changed, done.after
    assert changed and after["certificate_id"] == second  # the newest of the two is completed
    assert report == {"orphaned_certificates_deleted": [first], "orphaned_certificates_suspected": []}
    assert set(iot.certificates) == {second, other}
    assert iot.certificates[other]["status"] == "INACTIVE"
    assert not os.path.exists(desired.intent_path)


def test_a_recorded_certificate_whose_key_is_gone_is_deleted(iot, tmp_path, monkeypatch):
    """The key could not be written and deleting the certificate failed too: the record holds its id (proof),
    so the next run deletes it, then makes the device's certificate."""
    opts = keys_opts(tmp_path)
    real_commit = crypto.PendingFile.commit

    def failing(self, data):
        if self.path.endswith(".key"):
            raise OSError(28, "No space left on device")
        return real_commit(self, data)

    monkeypatch.setattr(crypto.PendingFile, "commit", failing)
    iot.fail["delete_certificate"] = client_error("ServiceUnavailableException", "try later", "DeleteCertificate")
    with pytest.raises(ValidationError) as caught:
        run(iot, **opts)
    (lost,) = iot.certificates
    assert "next run deletes it" in caught.value.rule
    monkeypatch.setattr(crypto.PendingFile, "commit", real_commit)

    done, report, _w = run(iot, **opts)
    changed, after = done.changed, done.after
    assert changed and report["orphaned_certificates_deleted"] == [lost]
    assert list(iot.certificates) == [after["certificate_id"]] and after["certificate_id"] != lost


def test_a_definite_refusal_removes_the_record(iot, tmp_path):
    """A 4xx answer (other than throttling) proves nothing was made: no record is kept, no listing next time."""
    iot.fail["create_keys_and_certificate"] = client_error("UnauthorizedException", "no", "CreateKeysAndCertificate")
    with pytest.raises(ClientError):
        run(iot, **keys_opts(tmp_path))
    assert os.listdir(tmp_path) == []


def test_absent_finds_the_certificate_through_the_record(iot, tmp_path, monkeypatch):
    opts = keys_opts(tmp_path)
    real_commit = crypto.PendingFile.commit

    def commit_but_the_certificate(self, data):
        if self.path.endswith(".pem"):
            raise OSError(28, "full")
        return real_commit(self, data)

    monkeypatch.setattr(crypto.PendingFile, "commit", commit_but_the_certificate)
    with pytest.raises(ValidationError):
        run(iot, **opts)
    monkeypatch.setattr(crypto.PendingFile, "commit", real_commit)
    (cert_id,) = iot.certificates
    done, _r, _w = run(iot, state="absent", **opts)
    changed, before = done.changed, done.before
    assert changed and before["certificate_id"] == cert_id and iot.certificates == {}
    assert os.listdir(tmp_path) == ["dev.key"]


def test_an_existing_key_without_certificate_or_record_is_still_never_overwritten(iot, tmp_path):
    key_path = tmp_path / "dev.key"
    key_path.write_text(key_pem(new_key()))
    with pytest.raises(ValidationError) as caught:
        run(iot, **keys_opts(tmp_path))
    assert "refusing to overwrite the key" in caught.value.rule
    assert iot.mutating_calls() == []


def test_temporary_files_of_a_killed_run_are_removed(iot, tmp_path):
    """A SIGKILL skips the clean-up of the temporary key and certificate files (PendingFile); the next run
    removes them, and only them."""
    for name in (".dev.key.ab12cd_3.tmp", ".dev.pem.zz99yy88.tmp", ".other.key.ab12cd34.tmp", "notes.tmp"):
        (tmp_path / name).write_text("")
    run(iot, **keys_opts(tmp_path))
    assert sorted(os.listdir(tmp_path)) == [".other.key.ab12cd34.tmp", "dev.key", "dev.pem", "notes.tmp"]


def test_a_lost_csr_answer_is_found_by_its_public_key_in_the_same_run(iot, tmp_path):
    """CreateCertificateFromCsr ran but its answer was a server error: the run finds the certificate by the CSR's
    public key and completes it (no retry, no second certificate, no failure)."""
    opts = dict(csr=csr_pem(new_key()), certificate_path=str(tmp_path / "dev.pem"), thing="dev-1")
    real = iot.create_certificate_from_csr

    def ran_then_failed(**kwargs):
        real(**kwargs)
        raise client_error("InternalFailureException", "internal error", "CreateCertificateFromCsr")

    iot.create_certificate_from_csr = ran_then_failed
    done, _r, _w = run(iot, **opts)
    changed, after = done.changed, done.after
    (cert_id,) = iot.certificates
    assert changed and after["certificate_id"] == cert_id and after["status"] == "ACTIVE"
    assert iot.mutating_calls().count("create_certificate_from_csr") == 1
    assert os.listdir(tmp_path) == ["dev.pem"]


def test_a_csr_call_that_did_not_run_fails_and_keeps_the_record(iot, tmp_path):
    opts = dict(csr=csr_pem(new_key()), certificate_path=str(tmp_path / "dev.pem"), thing="dev-1")
    iot.fail["create_certificate_from_csr"] = client_error("InternalFailureException", "x", "CreateCertificateFromCsr")
    with pytest.raises(AwsCallError) as caught:
        run(iot, **opts)
    assert "not retried" in str(caught.value) and iot.certificates == {}
    assert os.listdir(tmp_path) == [".dev.pem.create-intent.json"]
    done, _r, _w = run(iot, **opts)
    changed, after = done.changed, done.after
    assert changed and list(iot.certificates) == [after["certificate_id"]]
    assert os.listdir(tmp_path) == ["dev.pem"]


def test_an_unreadable_record_still_finds_by_key_and_reports_nothing_unproven(iot, tmp_path):
    key = new_key()
    opts = dict(csr=csr_pem(key), certificate_path=str(tmp_path / "dev.pem"), thing="dev-1")
    mine = iot.create_certificate_from_csr(certificateSigningRequest=opts["csr"])["certificateId"]
    iot.create_keys_and_certificate(setAsActive=False)  # someone else's, INACTIVE, attached to nothing
    (tmp_path / ".dev.pem.create-intent.json").write_text("{not json")
    done, report, warnings = run(iot, **opts)
    changed, after = done.changed, done.after
    assert changed and after["certificate_id"] == mine
    assert report == {"orphaned_certificates_deleted": [], "orphaned_certificates_suspected": []}
    assert warnings == [] and len(iot.certificates) == 2

    # create_keys with an unreadable record and no key: nothing is reported from an unknown window either.
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    (keys_dir / ".dev.key.create-intent.json").write_text("garbage")
    opts = keys_opts(keys_dir)
    opts["thing"] = "dev-2"
    done, report, warnings = run(iot, **opts)
    changed = done.changed
    assert changed and report["orphaned_certificates_suspected"] == [] and warnings == []


def test_a_lost_csr_answer_without_certificate_path_is_found_in_the_same_run(iot, tmp_path):
    """No file, so no record on disk: the start time kept in memory still finds the certificate by its key."""
    opts = dict(csr=csr_pem(new_key()), thing="dev-1")
    real = iot.create_certificate_from_csr

    def ran_then_failed(**kwargs):
        real(**kwargs)
        raise client_error("ServiceUnavailableException", "later", "CreateCertificateFromCsr")

    iot.create_certificate_from_csr = ran_then_failed
    done, _r, _w = run(iot, **opts)
    changed, after = done.changed, done.after
    (cert_id,) = iot.certificates
    assert changed and after["certificate_id"] == cert_id and after["things"] == ["dev-1"]
    assert os.listdir(tmp_path) == []


def test_a_registration_repeated_after_a_lost_answer_is_not_a_failure(iot, tmp_path):
    """botocore repeats RegisterCertificateWithoutCA after a lost answer; the repeat answers "already exists"
    for the certificate the first attempt registered. That is the certificate asked for: the task goes on."""
    from test_certificates import self_signed

    pem = self_signed(new_key())
    real = iot.register_certificate_without_ca

    def registered_then_repeated(**kwargs):
        real(**kwargs)  # the first attempt ran, its answer was lost
        return real(**kwargs)  # botocore's retry

    iot.register_certificate_without_ca = registered_then_repeated
    done, _r, _w = run(iot, certificate_pem=pem, thing="dev-1")
    changed, after = done.changed, done.after
    (cert_id,) = iot.certificates
    assert changed and after["certificate_id"] == cert_id and after["status"] == "ACTIVE"
    assert after["things"] == ["dev-1"]
