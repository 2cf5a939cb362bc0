# Entry points of the single-node Kubernetes lab (see lab/README.md).
.PHONY: lab-up e2e lab-down chaos measure-dependencies

lab-up:
	lab/scripts/up.sh

e2e:
	lab/scripts/e2e.sh

lab-down:
	lab/scripts/down.sh

# The adversarial suite alone (scripts/test.sh runs it after the unit tests).
chaos:
	go test -count=1 -timeout 15m ./test/chaos/

# Both readiness policies for a shared Redis, measured behind the Ingress
# (minutes; the figures in docs/dependencies.md).
measure-dependencies:
	go test -count=1 -timeout 10m -run TestRedisReadinessPolicies -v ./test/chaos/ -args -measure

# The gRPC schemas' generated Go, checked in. The generators are pinned
# here and installed into ./.bin; protoc is the system's 3.21.12.
PROTOC ?= /usr/bin/protoc
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
PROTOS := proto/shoal/thumbnailer/v1/thumbnailer.proto

.PHONY: proto proto-tools proto-check
proto-tools:
	@mkdir -p .bin
	@.bin/protoc-gen-go --version 2>/dev/null | grep -qF " $(PROTOC_GEN_GO_VERSION)" || \
		GOBIN=$(CURDIR)/.bin go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	@.bin/protoc-gen-go-grpc --version 2>/dev/null | grep -qF " $(PROTOC_GEN_GO_GRPC_VERSION:v%=%)" || \
		GOBIN=$(CURDIR)/.bin go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

# PROTO_OUT is where the Go lands: the module's root, so each file goes
# to its go_package's directory.
PROTO_OUT ?= .
proto: proto-tools
	$(PROTOC) -I proto \
		--plugin=protoc-gen-go=.bin/protoc-gen-go --go_out=$(PROTO_OUT) --go_opt=module=github.com/shoal-dev/shoal \
		--plugin=protoc-gen-go-grpc=.bin/protoc-gen-go-grpc --go-grpc_out=$(PROTO_OUT) --go-grpc_opt=module=github.com/shoal-dev/shoal \
		$(PROTOS)

# Regenerates into a temporary directory and fails if the checked-in code
# differs (needs protoc, so it is a make target, not a unit test).
proto-check:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
		$(MAKE) --no-print-directory proto PROTO_OUT=$$tmp && \
		diff -r -x doc.go $$tmp/internal/refsvc/thumbnailer/thumbnailerpb internal/refsvc/thumbnailer/thumbnailerpb && \
		echo "proto-check: generated code is up to date"
