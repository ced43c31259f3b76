.DEFAULT_GOAL := help
SHELL := bash

GOPATH_BIN := $(firstword $(subst :, ,$(shell go env GOPATH)))/bin
GOBIN := $(or $(shell go env GOBIN),$(GOPATH_BIN))
# Tools installed with `go install` (step, step-ca, staticcheck) are found first.
export PATH := $(GOBIN):$(GOPATH_BIN):$(PATH)

VERSION := $(shell git describe --always --dirty 2>/dev/null)
DATA_DIR ?= ./gwpki-data
FUZZTIME ?= 20s
STATICCHECK_VERSION := v0.8.2
BENCHFLAGS ?=
SOAKFLAGS ?=

.PHONY: help build run test bench bench-ocsp bench-provision bench-mqtt soak fuzz lint fmt-check

help: ## show this help
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z_-]+:.*## / { printf "  %-10s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

build: ## build bin/gwpki
	go build -o bin/gwpki -ldflags "-X main.version=$(VERSION)" ./cmd/gwpki

run: build ## run the server on its embedded default (data in ./gwpki-data)
	bin/gwpki serve --dir $(DATA_DIR)

test: ## install missing test tools (step, openssl, softhsm2, mosquitto clients, curl), then run all tests
	@scripts/install-test-deps.sh
	go test -race -timeout 14m ./...

bench: ## install stock step-ca if missing, then benchmark issuance: gwpki vs step-ca (BENCHFLAGS=...)
	@scripts/install-bench-deps.sh
	go run ./bench/issuance -stepca $(GOBIN)/step-ca $(BENCHFLAGS)

bench-ocsp: ## benchmark OCSP answers: gwpki's /ocsp vs openssl ocsp (BENCHFLAGS=...)
	go run ./bench/ocsp $(BENCHFLAGS)

bench-provision: ## benchmark gwpki provision vs a shell loop around step ca token/certificate (BENCHFLAGS=...)
	go run ./bench/provision $(BENCHFLAGS)

bench-mqtt: ## benchmark the MQTT broker: gwpki vs mosquitto, connect storm and QoS 1 telemetry (BENCHFLAGS=...)
	@command -v /usr/sbin/mosquitto >/dev/null 2>&1 || command -v mosquitto >/dev/null 2>&1 || \
		{ echo "mosquitto broker missing: sudo apt-get install mosquitto" >&2; exit 1; }
	go run ./bench/mqtt $(BENCHFLAGS)

soak: ## soak: 2,000 simulated gateways for 10 min, fail if the server's goroutines or memory grow (SOAKFLAGS=...)
	go run ./bench/soak $(SOAKFLAGS)

fuzz: ## run every fuzz target for FUZZTIME (default 20s) each
	@scripts/fuzz.sh $(FUZZTIME)

lint: ## go vet and staticcheck (installed when missing)
	go vet ./...
	@command -v staticcheck >/dev/null 2>&1 || { \
		echo "installing staticcheck $(STATICCHECK_VERSION) (go install)" >&2; \
		out="$$(go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) 2>&1)" || \
			{ echo "$$out" >&2; exit 1; }; }
	staticcheck ./...

fmt-check: ## fail if any Go file is not gofmt-formatted
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then \
		echo "not gofmt-formatted (run gofmt -w):" >&2; echo "$$out" >&2; exit 1; fi
