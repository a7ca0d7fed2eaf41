#!/usr/bin/python
# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: endpoint_info
short_description: Get the account's AWS IoT endpoint addresses
version_added: 0.1.0
description:
  - Returns the account-specific AWS IoT endpoint that devices connect to.
  - C(iot:Data-ATS) (the default) is the MQTT/HTTPS data endpoint signed by Amazon Trust Services,
    C(iot:CredentialProvider) issues temporary AWS credentials to devices, C(iot:Jobs) serves the jobs API.
options:
  endpoint_type:
    description:
      - Which endpoint to return.
      - V(iot:Data) is the legacy VeriSign-signed endpoint; AWS recommends V(iot:Data-ATS).
    type: str
    default: iot:Data-ATS
    choices: [iot:Data-ATS, iot:Data, iot:CredentialProvider, iot:Jobs]
extends_documentation_fragment:
  - iotfleet.provisioning.aws
  - iotfleet.provisioning.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
notes:
  - "IAM permission: C(iot:DescribeEndpoint)."
author:
  - iotfleet.provisioning developers (@iotfleet)
"""

EXAMPLES = r"""
- name: Find the data endpoint devices connect to
  iotfleet.provisioning.endpoint_info:
  register: iot_endpoint

- name: Find the credential provider endpoint
  iotfleet.provisioning.endpoint_info:
    endpoint_type: iot:CredentialProvider
  register: credentials_endpoint
"""

RETURN = r"""
endpoint_address:
  description: The endpoint host name.
  returned: success
  type: str
  sample: a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com
endpoint_type:
  description: The endpoint type that was asked for.
  returned: success
  type: str
  sample: iot:Data-ATS
"""

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import IoTModule


def main() -> None:
    module = IoTModule(
        argument_spec=dict(
            endpoint_type=dict(
                type="str",
                default="iot:Data-ATS",
                choices=["iot:Data-ATS", "iot:Data", "iot:CredentialProvider", "iot:Jobs"],
            ),
        ),
    )
    endpoint_type = module.params["endpoint_type"]

    def describe() -> dict:
        response = module.client("iot").describe_endpoint(endpointType=endpoint_type)
        return dict(changed=False, endpoint_address=response["endpointAddress"], endpoint_type=endpoint_type)

    module.run(describe)


if __name__ == "__main__":
    main()
