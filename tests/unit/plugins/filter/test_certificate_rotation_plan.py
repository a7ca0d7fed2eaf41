"""The certificate_rotation role's decisions: the stage read from the thing's certificates, the step a run takes,
and the confirmation file's formats (certificates/rotation.py through its filters)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.iotfleet.provisioning.plugins.filter.certificate_rotation import (
    certificate_rotation_confirmations,
    certificate_rotation_plan,
)

OLD, NEW, OTHER = "a" * 64, "b" * 64, "c" * 64
POLICY = {"expiry_days": 30, "requested": False, "minimum_rsa_size": 2048, "minimum_ec_size": 256}


def cert(cid, created, status="ACTIVE", days_left=400, key=None):
    return {
        "certificate_id": cid,
        "status": status,
        "creation_date": created,
        "validity": None if days_left is None else {"not_before": "2026-01-01", "not_after": "2027-12-31T00:00:00"},
        "days_left": days_left,
        "public_key": key or {"type": "EC", "curve": "P-256", "size": 256},
    }


def test_one_active_certificate_without_a_trigger_is_left_alone():
    plan = certificate_rotation_plan([cert(OLD, "2026-01-01T00:00:00+00:00")], "dev", POLICY)
    assert (plan["stage"], plan["action"], plan["current"], plan["reasons"]) == ("at_rest", "none", OLD, [])


@pytest.mark.parametrize(
    ("certificate", "policy", "reason"),
    [
        (cert(OLD, "t1", days_left=30), POLICY, "30 days left, window 30 days"),
        (cert(OLD, "t1", days_left=-2), POLICY, "-2 days left"),
        (cert(OLD, "t1"), {**POLICY, "requested": True}, "rotation requested"),
        (cert(OLD, "t1"), {**POLICY, "replace_ids": [OLD.upper()]}, f"certificate {OLD} is listed for replacement"),
        (cert(OLD, "t1", key={"type": "RSA", "size": 2048}), {**POLICY, "minimum_rsa_size": 3072}, "RSA key of 2048"),
        (cert(OLD, "t1", key={"type": "EC", "curve": "P-256", "size": 256}), {"minimum_ec_size": 384}, "below"),
    ],
)
def test_each_trigger_starts_step_1(certificate, policy, reason):
    plan = certificate_rotation_plan([certificate], "dev", policy)
    assert plan["action"] == "step1" and plan["current"] == OLD
    assert any(reason in r for r in plan["reasons"]), plan["reasons"]


def test_a_step_2_stopped_after_deactivation_is_finished_only_once_the_current_one_is_confirmed():
    certificates = [cert(OLD, "t1", status="INACTIVE"), cert(NEW, "t2"), cert(OTHER, "t3", status="INACTIVE")]
    plan = certificate_rotation_plan(certificates, "dev", POLICY, [NEW])
    # Only the INACTIVE certificate older than the current one is the stopped run's; a newer one is not touched.
    assert (plan["action"], plan["new"], plan["old"]) == ("step2", NEW, [OLD])
    assert "finishing a stopped run" in plan["message"]
    unconfirmed = certificate_rotation_plan(certificates, "dev", POLICY, [])
    assert (unconfirmed["action"], unconfirmed["old"]) == ("none", [])


def test_a_replace_id_left_in_place_does_not_start_the_next_rotation():
    # After the rotation away from OLD, NEW is current: the listed OLD no longer triggers anything.
    plan = certificate_rotation_plan([cert(NEW, "t2")], "dev", {**POLICY, "replace_ids": [OLD]})
    assert plan["action"] == "none" and plan["reasons"] == []


def test_a_day_outside_the_window_or_unknown_validity_is_no_expiry_trigger():
    assert certificate_rotation_plan([cert(OLD, "t1", days_left=31)], "dev", POLICY)["action"] == "none"
    plan = certificate_rotation_plan([cert(OLD, "t1", days_left=None)], "dev", POLICY)
    assert plan["action"] == "none" and plan["validity_unknown"] == [OLD]
    assert "validity could not be read, so the expiry window was not checked" in plan["message"]


def test_inactive_certificates_do_not_count():
    certs = [cert(OLD, "2026-01-01"), cert(NEW, "2026-06-01", status="INACTIVE")]
    assert certificate_rotation_plan(certs, "dev", POLICY)["stage"] == "at_rest"


def test_two_active_certificates_wait_for_the_new_ones_id():
    certs = [cert(NEW, "2026-06-01T00:00:00+00:00"), cert(OLD, "2026-01-01T00:00:00+00:00")]
    waiting = certificate_rotation_plan(certs, "dev", POLICY)
    assert (waiting["stage"], waiting["action"], waiting["new"], waiting["old"]) == ("rotating", "wait", NEW, [OLD])
    # The old certificate's id (what a device still on it reports) or another id retires nothing.
    wrong = certificate_rotation_plan(certs, "dev", POLICY, [OLD, OTHER])
    assert wrong["action"] == "wait" and wrong["unmatched_confirmations"] == [OLD, OTHER]
    confirmed = certificate_rotation_plan(certs, "dev", POLICY, [NEW.upper()])
    assert (confirmed["action"], confirmed["old"]) == ("step2", [OLD])
    # Triggers play no part while rotating: a request does not start another rotation.
    assert certificate_rotation_plan(certs, "dev", {**POLICY, "requested": True})["action"] == "wait"


def test_three_active_certificates_retire_every_older_one():
    certs = [cert(OLD, "2026-01-01"), cert(OTHER, "2026-03-01"), cert(NEW, "2026-06-01")]
    plan = certificate_rotation_plan(certs, "dev", POLICY, [NEW])
    assert plan["action"] == "step2" and plan["old"] == [OLD, OTHER]


def test_no_certificate_or_a_tie_is_blocked_never_guessed():
    assert certificate_rotation_plan([], "dev", POLICY)["action"] == "blocked"
    tie = certificate_rotation_plan([cert(OLD, "2026-01-01"), cert(NEW, "2026-01-01")], "dev", POLICY, [NEW])
    assert tie["action"] == "blocked" and "same moment" in tie["message"]


def test_the_plan_input_must_be_a_list():
    with pytest.raises(AnsibleFilterError, match="certificate_info's certificates list"):
        certificate_rotation_plan({"certificates": []}, "dev")


@pytest.mark.parametrize(
    "text",
    [
        f"# confirmed by the presence rule\n{NEW.upper()}\n\n{OTHER}  # another\n",
        f'["{NEW}", "{OTHER}"]',
        f"- {NEW}\n- {OTHER}\n",
        f"dev: [{NEW}, {OTHER}]\nneighbour: {OLD}\n",
        f'{{"dev": ["{NEW}", "{OTHER}"], "neighbour": "{OLD}"}}',
    ],
)
def test_confirmation_file_formats(text):
    assert sorted(certificate_rotation_confirmations(text, "dev")) == [NEW, OTHER]


def test_a_list_as_a_task_gives_it():
    assert certificate_rotation_confirmations([NEW.upper(), OTHER], "dev", "certificate_rotation_confirmed_ids") == [
        NEW,
        OTHER,
    ]
    assert certificate_rotation_confirmations([], "dev") == []
    with pytest.raises(AnsibleFilterError, match=r"^certificate_rotation_confirmed_ids\[0\]: must be a certificate id"):
        certificate_rotation_confirmations(["dev"], "dev", "certificate_rotation_confirmed_ids")


@pytest.mark.parametrize("text", [f"- {'0' * 63}7\n", f"dev: {'0' * 63}7\n", f'["{"0" * 63}7"]', f"{'0' * 63}7\n"])
def test_an_id_of_digits_stays_a_string(text):
    assert certificate_rotation_confirmations(text, "dev") == ["0" * 63 + "7"]


def test_a_mapping_confirms_only_the_things_entry():
    assert certificate_rotation_confirmations(f"neighbour: {NEW}\n", "dev") == []
    assert certificate_rotation_confirmations(f"dev: {NEW}\n", "dev") == [NEW]
    assert certificate_rotation_confirmations("", "dev") == []
    assert certificate_rotation_confirmations(None, "dev") == []


@pytest.mark.parametrize("text", ["dev\n", "- dev\n", f"dev: dev\nother: {NEW}\n", "abc123\n"])
def test_a_device_name_or_a_short_id_is_refused_naming_the_variable(text):
    with pytest.raises(AnsibleFilterError) as caught:
        certificate_rotation_confirmations(text, "dev")
    message = str(caught.value)
    assert message.startswith("certificate_rotation_confirmation_file")
    assert "64 hexadecimal characters" in message and "device name alone" in message
