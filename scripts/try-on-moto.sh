#!/usr/bin/env bash
# Deploys the CloudFormation templates to moto's server (a local AWS stand-in, installed by
# scripts/setup-interop.sh) as far as it goes, and reports, stack by stack, what moto could
# create. moto implements CloudFormation for only some resource types; this shows which of ours.
# Not part of the test run. Usage: scripts/try-on-moto.sh
set -euo pipefail
case "${1:-}" in
  "") ;;
  -h | --help)
    printf '%s\n' "usage: scripts/try-on-moto.sh

Creates every stack of templates/ in moto's CloudFormation (a local stand-in for AWS; installed
by scripts/setup-interop.sh) and reports, stack by stack, which resources moto could create.
Needs no AWS account and changes nothing outside this machine."
    exit 0
    ;;
  *)
    echo "try-on-moto.sh: unknown argument $1 (see --help)" >&2
    exit 2
    ;;
esac
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup.sh
. scripts/lib/setup.sh

scripts/setup-interop.sh
port=18650
.local/interop/venv/bin/moto_server -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
moto=$!
trap 'kill "$moto" 2>/dev/null || true' EXIT
wait_for_port "$port" 30

AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 \
  .local/interop/venv/bin/python - "$port" <<'PYTHON'
import json, sys, time
import boto3, yaml

endpoint = f"http://127.0.0.1:{sys.argv[1]}"
cfn = boto3.client("cloudformation", endpoint_url=endpoint)

class Loader(yaml.SafeLoader):
    pass
def tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {name: value}
Loader.add_multi_constructor("!", tag)

def deploy(name, template, parameters):
    try:
        cfn.create_stack(StackName=name, TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_NAMED_IAM"],
                         Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()])
    except Exception as error:
        return f"refused: {str(error).splitlines()[0][:160]}"
    for _ in range(50):
        status = cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
        if not status.endswith("IN_PROGRESS"):
            return status
        time.sleep(0.2)
    return "timed out"

params = {"AppId": "xray-ecs", "EnvId": "dev"}
stacks = [("vpc", "templates/0-vpc.yml", {}), ("svc-base", "templates/1-svc-base.yml", {"ComponentDeployerArn": "arn:aws:iam::123456789012:role/deployer"}),
          ("svc-backend2", "templates/2-svc-backend2.yml", {"ImageDigest": "sha256:" + "0" * 64}),
          ("svc-backend1", "templates/2-svc-backend1.yml", {"ImageDigest": "sha256:" + "0" * 64}),
          ("svc-bff", "templates/2-svc-bff.yml", {"ImageDigest": "sha256:" + "0" * 64}),
          ("svc-frontend", "templates/2-svc-frontend.yml", {"ImageDigest": "sha256:" + "0" * 64})]
for suffix, path, extra in stacks:
    template = yaml.load(open(path), Loader=Loader)
    result = deploy(f"xray-ecs-dev-{suffix}-stack", template, {**params, **extra})
    print(f"{suffix:14s} {result}")
    if result == "CREATE_COMPLETE":
        continue
    # Which resources moto did not create.
    try:
        for resource in cfn.describe_stack_resources(StackName=f"xray-ecs-dev-{suffix}-stack")["StackResources"]:
            if resource["ResourceStatus"] != "CREATE_COMPLETE":
                print(f"    {resource['LogicalResourceId']:32s} {resource['ResourceType']:45s} {resource['ResourceStatus']}")
    except Exception as error:
        print(f"    (no resources to report: {str(error).splitlines()[0][:120]})")
PYTHON
