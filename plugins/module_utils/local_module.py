# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the local-crypto modules (csr, local_ca, device_certificate) end: one place for errors and diff.

Each module's ``main()`` declares its options and hands an ``action`` to ``run_local``. The action returns
``(result, before, after)``; ``run_local`` adds the diff when asked and turns the three failures these
modules know (a broken rule of the input, unusable key or certificate material, a file that cannot be
written) into a message that names the field or the file.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.iotfleet.provisioning.plugins.module_utils import crypto
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

LocalAction = Callable[[], Tuple[Dict[str, Any], Optional[Dict[str, Any]], Optional[Dict[str, Any]]]]


def run_local(module: AnsibleModule, action: LocalAction, files: str, crypto_field: str = "") -> None:
    """Run ``action`` and exit the module; ``files`` names what an OSError could not write."""
    if not crypto.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=crypto.CRYPTOGRAPHY_IMPORT_ERROR)
    try:
        result, before, after = action()
    except ValidationError as error:
        module.fail_json(msg=str(error))
    except crypto.CryptoError as error:
        module.fail_json(msg=f"{crypto_field}: {error}" if crypto_field else str(error))
    except OSError as error:
        module.fail_json(msg=f"Could not write {files}: {error}")
    if module._diff:
        result["diff"] = {"before": before or {}, "after": after or {}}
    module.exit_json(**result)
