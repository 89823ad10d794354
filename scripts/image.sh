#!/usr/bin/env bash
# make image: builds the Dockerfile into IMAGE (default switchyard:<version>) with docker
# when a Docker engine answers, else with podman (scripts/podman: the settings this kind
# of machine needs). The base is the official Python image where it can be pulled; where
# it cannot (no Docker Hub), a Debian bookworm base made here with debootstrap
# (localhost/debian-python:bookworm, made once and reused). Prints the tag and size.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
image=${IMAGE:-switchyard:$version}
official=${PYTHON_IMAGE:-python:3.11-slim-bookworm}
local_base=localhost/debian-python:bookworm
ca=/etc/ssl/certs/ca-certificates.crt

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  engine=(docker)
else
  engine=(scripts/podman)
fi

# A Debian root with python3 and venv, trimmed (apt lists and caches, docs, man pages,
# locales), imported as an image.
make_local_base() {
  local root
  root=$(mktemp -d)
  trap 'rm -rf "$root"' RETURN
  echo "making $local_base with debootstrap (a few minutes)"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$root" http://deb.debian.org/debian >"$root.log" 2>&1 \
    || { tail -20 "$root.log"; exit 1; }
  rm -f "$root.log"
  ln -sf python3 "$root/usr/bin/python"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
    "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/info "$root"/usr/share/locale
  tar -C "$root" -c . | "${engine[@]}" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' - "$local_base" >/dev/null 2>&1 \
    || { echo "importing the base into ${engine[0]##*/} failed"; exit 1; }
}

if "${engine[@]}" image inspect "$official" >/dev/null 2>&1 \
   || "${engine[@]}" pull -q "$official" >/dev/null 2>&1; then
  base=$official
else
  base=$local_base
  "${engine[@]}" image inspect "$base" >/dev/null 2>&1 || make_local_base
fi

args=(build --network host -t "$image" --build-arg "PYTHON_IMAGE=$base")
# The machine's CA bundle, for pip inside the build (see the Dockerfile).
[ -s "$ca" ] && args+=(--secret "id=ca,src=$ca")

echo "building $image with ${engine[0]##*/} on $base"
mkdir -p build
start=$(date +%s)
"${engine[@]}" "${args[@]}" . >build/image-build.log 2>&1 \
  || { tail -40 build/image-build.log; echo "image build failed: build/image-build.log"; exit 1; }
size=$("${engine[@]}" image inspect --format '{{.Size}}' "$image")
echo "built $image ($((size / 1000000)) MB, base $base) in $(($(date +%s) - start)) s"
