"""Unit tests for what a JITP CA rotation asks of ca_certificate: the removal guard, ownership, planned second CAs.

The fake AWS IoT is test_ca.py's (its rules: an ACTIVE CA cannot be deleted, ListCertificatesByCA in pages of
two), with ListCACertificates added for the other-CA check.
"""

from __future__ import annotations

import pytest
from test_ca import FakeIoT, absent, build, der_id, key_file, new_key, params, present

from ansible_collections.iotfleet.provisioning.plugins.module_utils import ca
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

TEMPLATE = {"template_name": "fleet-jitp"}


class ListingIoT(FakeIoT):
    def list_ca_certificates(self, **params):
        self.calls.append(("list_ca_certificates", dict(params)))
        items = [
            {k: entry["certificateDescription"][k] for k in ("certificateId", "certificateArn", "status")}
            for entry in self.cas.values()
            if params.get("templateName") in (None, (entry.get("registrationConfig") or {}).get("templateName"))
        ]
        return self._page(items, "certificates", "marker", "nextMarker", params)


def authority(tmp_path, label):
    key = new_key()
    pem = build("Fleet CA", "Fleet CA", key.public_key(), key, ca=True)
    return {"pem": pem, "id": der_id(pem), "key_path": key_file(tmp_path, key, f"{label}.key")}


@pytest.fixture
def old_and_new(tmp_path):
    iot = ListingIoT()
    old, new = authority(tmp_path, "old"), authority(tmp_path, "new")
    present(
        iot,
        ca_certificate_pem=old["pem"],
        ca_private_key_path=old["key_path"],
        status="ACTIVE",
        registration_config=TEMPLATE,
    )
    iot.calls.clear()
    return iot, old, new


def register_new(iot, new, **overrides):
    return present(
        iot,
        ca_certificate_pem=new["pem"],
        ca_private_key_path=new["key_path"],
        status="ACTIVE",
        auto_registration=True,
        registration_config=TEMPLATE,
        fail_on_other_template_ca=True,
        **overrides,
    )


def test_a_second_ca_for_the_template_needs_the_first_one_declared(old_and_new, tmp_path):
    iot, old, new = old_and_new
    with pytest.raises(ValidationError) as error:
        register_new(iot, new)
    assert error.value.field == "fail_on_other_template_ca" and old["id"] in error.value.rule
    assert iot.mutating() == []
    # Declared (a planned rotation): registered beside it.
    done = register_new(iot, new, allowed_template_ca_ids=[old["id"].upper()])
    changed, before, after = done.changed, done.before, done.after
    assert changed and before is None and after["status"] == "ACTIVE"
    assert sorted(iot.cas) == sorted([old["id"], new["id"]])
    # A third CA (say the new one's files were lost and a fresh CA made) is refused: the new one is not declared.
    stray = authority(tmp_path, "stray")
    with pytest.raises(ValidationError) as error:
        register_new(iot, stray, allowed_template_ca_ids=[old["id"]])
    assert new["id"] in error.value.rule


def test_allowed_ids_are_checked_offline(old_and_new):
    iot, _old, new = old_and_new
    with pytest.raises(ValidationError) as error:
        register_new(iot, new, allowed_template_ca_ids=["not-an-id"])
    assert error.value.field == "allowed_template_ca_ids[0]"
    with pytest.raises(ValidationError) as error:
        ca.validate_ca_certificate(params(ca_certificate_pem=new["pem"], allowed_template_ca_ids=[new["id"]]))
    assert error.value.field == "allowed_template_ca_ids" and "fail_on_other_template_ca" in error.value.rule
    assert iot.calls == []


def test_the_guard_counts_active_device_certificates_and_refuses(old_and_new):
    iot, old, _new = old_and_new
    active = [iot.add_device(old["id"], index) for index in range(3)]
    inactive = iot.add_device(old["id"], 9, status="INACTIVE")
    iot.calls.clear()
    retire = dict(
        ca_certificate_pem=old["pem"],
        ca_private_key_path=old["key_path"],
        registration_config=TEMPLATE,
        keep_inactive_device_certificates=True,
    )
    # Check mode predicts; the run sets the CA INACTIVE (auto-registration off) at once, then refuses to delete it.
    for check_mode, verb in ((True, "would be"), (False, "was")):
        with pytest.raises(ValidationError) as error:
            absent(iot, check_mode=check_mode, **retire)
        assert error.value.field == "keep_inactive_device_certificates"
        assert "3 device certificates it signed are still ACTIVE" in error.value.rule
        assert "run again" in error.value.rule and f"the CA {verb} set INACTIVE" in error.value.rule
        if check_mode:
            assert iot.mutating() == []
    assert iot.mutating() == ["update_ca_certificate"] and old["id"] in iot.cas
    assert [kwargs for op, kwargs in iot.calls if op == "update_ca_certificate"] == [
        {"certificateId": old["id"], "newStatus": "INACTIVE"}
    ]
    # Again: already INACTIVE, so nothing changes and the refusal says only the count.
    iot.calls.clear()
    with pytest.raises(ValidationError) as error:
        absent(iot, **retire)
    assert "set INACTIVE" not in error.value.rule and iot.mutating() == []
    # Every page of ListCertificatesByCA was read (two per page).
    assert [kwargs.get("marker") for op, kwargs in iot.calls if op == "list_certificates_by_ca"][:2] == [None, "2"]

    for device in active:
        iot.update_certificate(certificateId=device, newStatus="INACTIVE")
    iot.calls.clear()
    done = absent(iot, check_mode=True, **retire)
    changed, before, after, removed = done.changed, done.before, done.after, done.extra["removed_device_certificates"]
    assert changed and before["status"] == "INACTIVE" and after is None and removed == [] and iot.mutating() == []
    done = absent(iot, **retire)
    changed, removed = done.changed, done.extra["removed_device_certificates"]
    assert changed and removed == [] and old["id"] not in iot.cas
    # The CA was already INACTIVE: one call, the delete; the device certificates stay registered.
    assert iot.mutating() == ["delete_ca_certificate"]
    assert inactive in iot.devices and all(device in iot.devices for device in active)
    iot.calls.clear()
    done = absent(iot, **retire)
    assert (done.changed, done.before, done.after, done.extra["removed_device_certificates"]) == (False, None, None, [])
    assert iot.mutating() == []


def test_a_ca_of_another_template_is_not_removed(old_and_new):
    iot, old, _new = old_and_new
    for check_mode in (True, False):
        with pytest.raises(ValidationError) as error:
            absent(
                iot,
                check_mode=check_mode,
                ca_certificate_pem=old["pem"],
                registration_config={"template_name": "other-jitp"},
                keep_inactive_device_certificates=True,
            )
        assert error.value.field == "registration_config.template_name"
        assert "fleet-jitp, not other-jitp" in error.value.rule and "does not remove it" in error.value.rule
    assert iot.mutating() == [] and old["id"] in iot.cas


def test_removal_needs_the_matching_key_when_one_is_given(old_and_new):
    iot, old, new = old_and_new
    with pytest.raises(ValidationError) as error:
        absent(iot, ca_certificate_pem=old["pem"], ca_private_key_path=new["key_path"])
    assert error.value.field == "ca_private_key_path" and "does not match" in error.value.rule
    with pytest.raises(ValidationError) as error:
        absent(iot, certificate_id=old["id"], ca_private_key_path=old["key_path"])
    assert error.value.field == "ca_private_key_path"
    with pytest.raises(ValidationError) as error:
        absent(iot, ca_certificate_pem=old["pem"], force=True, keep_inactive_device_certificates=True)
    assert error.value.field == "force, keep_inactive_device_certificates"
    with pytest.raises(ValidationError) as error:
        absent(iot, ca_certificate_pem=old["pem"], registration_config={"template_body": {}, "role_arn": "x"})
    assert error.value.field == "registration_config"
    with pytest.raises(ValidationError) as error:
        present(iot, ca_certificate_pem=old["pem"], keep_inactive_device_certificates=True)
    assert error.value.field == "keep_inactive_device_certificates"
    assert iot.calls == []
