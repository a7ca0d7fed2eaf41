# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The connection options every module of this collection takes. The names and
    # aliases match amazon.aws so that module_defaults and habits carry over.
    DOCUMENTATION = r"""
options:
  region:
    description:
      - The AWS region to use.
      - When unset, the first of E(AWS_REGION), E(AWS_DEFAULT_REGION) and E(EC2_REGION) that is set, else the
        region of the AWS profile.
    type: str
    aliases: [aws_region, ec2_region]
  access_key:
    description:
      - AWS access key ID. When unset, boto3's own credential resolution applies
        (environment, profile, instance or task role).
    type: str
    aliases: [aws_access_key_id, aws_access_key, ec2_access_key]
  secret_key:
    description:
      - AWS secret access key. See O(access_key).
    type: str
    aliases: [aws_secret_access_key, aws_secret_key, ec2_secret_key]
  session_token:
    description:
      - AWS STS session token for temporary credentials.
    type: str
    aliases: [aws_session_token, security_token, aws_security_token]
  profile:
    description:
      - A named profile from the AWS shared config and credentials files.
    type: str
    aliases: [aws_profile]
  endpoint_url:
    description:
      - Use this URL instead of the AWS endpoint, for example a local AWS IoT endpoint used for testing.
    type: str
    aliases: [aws_endpoint_url, ec2_url, s3_url]
  validate_certs:
    description:
      - When V(false), TLS certificates of the endpoint are not validated.
    type: bool
    default: true
  aws_ca_bundle:
    description:
      - A CA bundle to validate the endpoint's TLS certificate with.
    type: path
  aws_config:
    description:
      - Extra botocore client configuration, as the keyword arguments of C(botocore.config.Config).
    type: dict
  max_attempts:
    description:
      - How many times a call is attempted in total when AWS throttles or fails transiently.
      - Retries use botocore's adaptive mode, which also slows the request rate after throttling.
      - C(LimitExceededException), an AWS hard limit, is never retried.
    type: int
    default: 10
  debug_botocore_endpoint_logs:
    description:
      - When V(true), the result includes C(resource_actions), the AWS actions the module called
        (for example C(iot:DescribeThing)), to help write least-privilege IAM policies.
    type: bool
    default: false
notes:
  - The user agent names this collection and its version.
  - Failed AWS calls report the operation, the AWS error code and message, and the request id.
"""
