"""keys.py on the ensure contract: the csr module's key and CSR, and what a result built from them may carry."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto, ensure, keys
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError


@pytest.fixture
def csr_params(tmp_path):
    return {
        "private_key_path": str(tmp_path / "device.key"),
        "key_type": "EC",
        "curve": "P-256",
        "key_size": 2048,
        "subject": {"common_name": "sensor-1", "organization": "Example"},
        "csr_path": str(tmp_path / "device.csr"),
        "force": False,
    }


def test_check_mode_predicts_then_the_run_makes_then_the_rerun_keeps(csr_params):
    desired = keys.validate_csr(csr_params)

    predicted = keys.ensure_key_and_csr(desired, check_mode=True)
    assert predicted.changed and predicted.extra["key_action"] == "create" and predicted.extra["csr"] is None
    assert predicted.before == {"private_key": "absent"}
    assert not os.path.exists(desired.private_key_path) and not os.path.exists(desired.csr_path)

    made = keys.ensure_key_and_csr(desired, check_mode=False)
    assert made.changed and made.extra["key_action"] == "created"
    assert made.extra["key"] == {"type": "EC", "curve": "P-256"}
    assert made.after == {"private_key": "created", "csr_written": True}
    assert stat.S_IMODE(os.stat(desired.private_key_path).st_mode) == crypto.PRIVATE_KEY_MODE
    with open(desired.csr_path, encoding="ascii") as handle:
        assert handle.read() == made.extra["csr"]
    key = crypto.load_private_key(crypto.read_file(desired.private_key_path))
    assert keys.csr_matches(made.extra["csr"].encode(), key, desired.subject)

    again = keys.ensure_key_and_csr(desired, check_mode=False)
    assert not again.changed and again.extra["key_action"] == "kept" and again.extra["csr"] == made.extra["csr"]
    assert again.before == {"private_key": "present"} and again.after == {"private_key": "kept", "csr_written": False}


def test_a_result_never_carries_the_key(csr_params):
    made = keys.ensure_private_key(csr_params["private_key_path"], {"type": "EC", "curve": "P-256"}, False, False)
    assert made.key is not None and made.before is None and made.after == {"type": "EC", "curve": "P-256"}
    result = ensure.result(made, diff_mode=True)
    assert result == {
        "changed": True,
        "key_action": "created",
        "diff": {"before": {}, "after": {"type": "EC", "curve": "P-256"}},
    }
    assert "PRIVATE KEY" not in repr(result)


def test_a_key_of_another_type_is_refused_without_force(csr_params):
    keys.ensure_private_key(csr_params["private_key_path"], {"type": "EC", "curve": "P-256"}, False, False)
    with pytest.raises(ValidationError) as caught:
        keys.ensure_private_key(csr_params["private_key_path"], {"type": "EC", "curve": "P-384"}, False, False)
    assert caught.value.field == "private_key_path" and "never replaced silently" in caught.value.rule
    replaced = keys.ensure_private_key(csr_params["private_key_path"], {"type": "EC", "curve": "P-384"}, True, False)
    assert replaced.before == {"type": "EC", "curve": "P-256"} and replaced.after == {"type": "EC", "curve": "P-384"}
    assert replaced.extra == {"key_action": "replaced"}
