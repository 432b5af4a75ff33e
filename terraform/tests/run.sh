#!/usr/bin/env bash
# The Terraform checks: HCL rules, checkov, the Dockerfile, terraform fmt and
# validate against the offline provider mirror, and apply/destroy of the whole
# stack against moto_server on loopback. Without terraform (or its provider
# mirror) the terraform tests skip loudly; the rest still run.
#
#   terraform/tests/run.sh [pytest arguments]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

# Installs pytest, moto, python-hcl2 and checkov when missing (cheap when present).
# shellcheck source=../../scripts/setup.sh
source "$root/scripts/setup.sh"
ensure_terraform_test_tools

export PYTHONDONTWRITEBYTECODE=1
status=0
"$VENV/bin/python" -m pytest "$here" \
  --rootdir "$here" -c /dev/null -p no:cacheprovider \
  -ra --durations=5 "$@" || status=$?

if [ "$status" -eq 5 ]; then
  echo "terraform checks: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$status"
