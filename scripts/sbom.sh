#!/usr/bin/env bash
# A CycloneDX SBOM (JSON) of the installed environment: out/sbom.cdx.json.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
mkdir -p out
.venv/bin/cyclonedx-py environment --output-format JSON --output-file out/sbom.cdx.json .venv/bin/python
echo "SBOM: out/sbom.cdx.json ($(grep -c '"bom-ref"' out/sbom.cdx.json) references)"
