#!/usr/bin/env bash
# Installs what `make image` and `make test-image` need, each only when missing:
# podman with runc (crun fails on this kind of machine) and debootstrap (the local
# Debian base where the official Python image cannot be pulled). A machine whose
# Docker engine answers needs none of them. Needs root (CI and dev machines are).
set -euo pipefail

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  exit 0
fi
missing=()
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || missing+=(runc)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
