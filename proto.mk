# proto.mk: protobuf generation for the plugin SDK. Included from the root
# Makefile (`include proto.mk`); `make proto` regenerates the Go code of
# every .proto under sdk/ with pinned generators.
#
# protoc itself comes from the system (Debian: apt-get install
# protobuf-compiler libprotobuf-dev: libprotoc 3.21.12 and the well-known
# types the store's proto imports); the Go generators are
# installed at the pinned versions below into $(PROTO_TOOLS_BIN), which is
# under the git-ignored bin/. sdk/target/proto_test.go reads these version
# variables and fails when the checked-in code is stale.

PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1

PROTO_ROOT      := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
PROTO_TOOLS_BIN := $(abspath $(PROTO_ROOT))/bin/tools
PROTO_MODULE    := github.com/saltpeter/saltpeter
PROTOC          ?= protoc
PROTO_FILES      = $(shell find $(PROTO_ROOT)/sdk -name '*.proto' | sort)

.PHONY: proto proto-tools

# The stamp files name the version, so changing a version reinstalls.
$(PROTO_TOOLS_BIN)/.protoc-gen-go-$(PROTOC_GEN_GO_VERSION):
	mkdir -p $(PROTO_TOOLS_BIN)
	GOBIN=$(PROTO_TOOLS_BIN) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	touch $@

$(PROTO_TOOLS_BIN)/.protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION):
	mkdir -p $(PROTO_TOOLS_BIN)
	GOBIN=$(PROTO_TOOLS_BIN) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	touch $@

proto-tools: $(PROTO_TOOLS_BIN)/.protoc-gen-go-$(PROTOC_GEN_GO_VERSION) \
             $(PROTO_TOOLS_BIN)/.protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION)
	@command -v $(PROTOC) >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler" >&2; exit 1; }

# Each file is compiled with -I sdk, so its registered name is
# <kind>/proto/<file>.proto; module= puts the output at its go_package path.
proto: proto-tools
	@for f in $(PROTO_FILES); do \
		echo "protoc $$f"; \
		$(PROTOC) -I $(PROTO_ROOT)/sdk \
			--plugin=protoc-gen-go=$(PROTO_TOOLS_BIN)/protoc-gen-go \
			--plugin=protoc-gen-go-grpc=$(PROTO_TOOLS_BIN)/protoc-gen-go-grpc \
			--go_out=$(PROTO_ROOT) --go_opt=module=$(PROTO_MODULE) \
			--go-grpc_out=$(PROTO_ROOT) --go-grpc_opt=module=$(PROTO_MODULE) \
			$$f || exit 1; \
	done
