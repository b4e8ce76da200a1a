# headnat: two commands on a new machine, both as root:
#   make lab    the local two-AZ lab: NAT, failover, fail-back and the tailnet, live
#   make test   everything, real-kernel tests included
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
export CHECKPOINT_DISABLE := 1

# Debian packages the tests and the lab need (command:package).
DEB_NEEDS := iptables:iptables ip:iproute2 conntrack:conntrack iperf3:iperf3 socat:socat \
	curl:curl ping:iputils-ping sysctl:procps ss:iproute2 ssh:openssh-client \
	debootstrap:debootstrap zstd:zstd shellcheck:shellcheck qemu-aarch64-static:qemu-user-static \
	systemd-nspawn:systemd-container nsenter:util-linux

.PHONY: all build deps tools packer ami ami-base ami-bins ami-validate test-arm64 test test-unit test-cdk vet lab cdk-deps synth diff deploy bootstrap cost bench-dataplane bench-failover bench-tailnet bench-lifecycle bench-footprint clean

all: build

deps:
	@missing=""; for pair in $(DEB_NEEDS); do cmd=$${pair%%:*}; pkg=$${pair##*:}; \
		command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y --no-install-recommends $$missing >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y --no-install-recommends $$missing; }; \
	fi
	@command -v node >/dev/null && command -v npm >/dev/null || \
		{ echo "make test-cdk needs Node.js 20 or newer and npm (Debian 12's nodejs is 18)"; exit 1; }

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# The real third-party binaries the tests and the lab run, pinned in tools/go.mod: headscale,
# tailscaled, tailscale and ec2-metadata-mock. One build shares the compile of their common
# dependencies (cold: about 6 minutes on 2 cores; the Go build cache makes later builds fast).
TOOL_BINS := $(BIN)/headscale $(BIN)/tailscaled $(BIN)/tailscale $(BIN)/ec2-metadata-mock
$(BIN)/.tools: tools/go.mod tools/go.sum
	cd tools && $(GO) build -o $(BIN)/ tool
	@for b in $(TOOL_BINS); do test -x $$b || { echo "missing $$b after the tools build"; exit 1; }; done
	touch $@

tools: $(BIN)/.tools

# Packer and its amazon plugin, pinned in their own module (tools/packer/go.mod) so that their
# old dependencies never touch headscale's and tailscale's.
PACKER := $(BIN)/packer
PACKER_ENV := CHECKPOINT_DISABLE=1 PACKER_PLUGIN_PATH=$(BIN)/packer-plugins
$(BIN)/.packer: tools/packer/go.mod tools/packer/go.sum
	cd tools/packer && $(GO) build -o $(BIN)/ tool
	$(PACKER_ENV) $(PACKER) plugins install --path $(BIN)/packer-plugin-amazon github.com/hashicorp/amazon
	touch $@

packer: $(BIN)/.packer

# The AMI (ami/, docs/AMI.md): the appliance's binaries for linux/arm64, then Packer.
# make ami needs AWS credentials; AMI_VARS passes -var settings (region, subnet_id, ...).
ARM64_BIN := $(BIN)/linux-arm64
ARM64_ENV := GOOS=linux GOARCH=arm64 CGO_ENABLED=0
AMI_VARS ?=
ami-bins:
	$(ARM64_ENV) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(ARM64_BIN)/ ./cmd/headnat
	cd tools && $(ARM64_ENV) $(GO) build -trimpath -o $(ARM64_BIN)/ \
		tailscale.com/cmd/tailscaled tailscale.com/cmd/tailscale github.com/juanfont/headscale/cmd/headscale

ami: packer ami-bins
	cd ami && $(PACKER_ENV) $(PACKER) init headnat.pkr.hcl
	cd ami && $(PACKER_ENV) $(PACKER) build -var version=$(VERSION) -var bin_dir=$(ARM64_BIN) $(AMI_VARS) headnat.pkr.hcl

# Offline: the template against the pinned plugin, with empty stand-ins for the binaries.
ami-validate: packer
	@set -euo pipefail; d=$$(mktemp -d); trap 'rm -rf "$$d"' EXIT; \
	touch "$$d/headnat" "$$d/tailscaled" "$$d/tailscale" "$$d/headscale"; \
	cd ami && $(PACKER_ENV) $(PACKER) fmt -check -diff headnat.pkr.hcl && \
	$(PACKER_ENV) $(PACKER) init headnat.pkr.hcl && \
	$(PACKER_ENV) $(PACKER) validate -var bin_dir="$$d" headnat.pkr.hcl

vet:
	$(GO) vet ./...

# The Debian 13 tree test/ami provisions and boots: made once with debootstrap, then cached in
# /var/cache/headnat. make test makes it beside the Go builds (download against compile).
ami-base: deps
	$(GO) run ./test/ami/cmd/ami-base

# The pinned tools build beside the agent (their downloads overlap its compile). The two long
# end-to-end packages are named first so that go test builds and starts them first; four
# packages run at a time, since the long ones mostly wait on namespaces and timers. The
# lifecycle end-to-end tests count every failed request at 20 requests/s, so they run after
# the others, on a machine that is not also pushing iperf3 through namespaces.
LONG_TESTS := ./test/labtailnet/ ./test/lab/
ALONE_TESTS := ./test/lablifecycle/
test: deps
	$(MAKE) -j3 tools build ami-base
	$(MAKE) vet
	$(MAKE) ami-validate test-arm64
	$(MAKE) test-cdk
	HEADNAT_BIN=$(BIN) $(GO) test -race -count=1 -p 4 -timeout 40m $(LONG_TESTS) $$($(GO) list ./... | grep -v -F -e /test/lablifecycle)
	HEADNAT_BIN=$(BIN) $(GO) test -race -count=1 -timeout 20m $(ALONE_TESTS)

# The agent's unit tests as linux/arm64 binaries under qemu-aarch64-static (binfmt is not
# registered here, hence -exec): the agent's packages whose tests need no root or namespaces.
# Left out: a test that re-executes its own binary (no binfmt for it) and a race that needs
# both claimants to see the address free at once (qemu's timing rarely lets them).
ARM64_SKIP := TestNonRootPeerIsRefused|TestClaimRaceOneAddress
ARM64_TEST_PKGS := ./agent/ ./agent/api/ ./agent/cloud/... ./agent/config/ ./agent/control/ \
	./agent/dataplane/ ./agent/eip/ ./agent/failover/ ./agent/health/ ./agent/lifecycle/ \
	./agent/rendezvous/ ./agent/server/ ./policy/
test-arm64: deps
	$(ARM64_ENV) $(GO) test -count=1 -exec qemu-aarch64-static -skip '$(ARM64_SKIP)' $(ARM64_TEST_PKGS)

# The CDK app (cdk/, its own Go module): the pinned CDK CLI and cfn-guard from npm, the
# assertion tests, a synth of four configurations (every fleet option on; with a headscale
# server; the bare minimum; the platform stack of cdk/examples/conference.yaml), then
# cfn-guard on each template: our rules (cdk/guard/headnat.guard, unit-tested first) and the
# AWS Control Tower rules listed in cdk/guard/control-tower.txt. Offline but for the two
# registries; the stacks are environment-agnostic, so synth looks nothing up.
CDK_ENV := JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 CDK_DISABLE_CLI_TELEMETRY=true
CFNGUARD_PKG := node_modules/@cdklabs/cdk-validator-cfnguard
CFN_GUARD := $(CFNGUARD_PKG)/bin/ubuntu/$(shell uname -m)/cfn-guard
CT_RULES := $(CFNGUARD_PKG)/rules/control-tower/cfn-guard
test-cdk: deps
	cd cdk && npm ci --no-fund --no-audit --loglevel=error
	cd cdk && $(CDK_ENV) $(GO) test -count=1 ./...
	@set -euo pipefail; out=$$(mktemp -d); trap 'rm -rf "$$out"' EXIT; cd cdk; \
	echo "cdk synth: every option"; \
	$(CDK_ENV) npx cdk synth --quiet -o "$$out/full" -c cluster=full -c ami-ssm-parameter=/headnat/ami/arm64 \
		-c eip-pool=true -c headscale-url=https://headscale.example.com \
		-c auth-key-ssm-parameter=/headnat/full/tailnet-auth-key -c alarm-email=ops@example.org; \
	echo "cdk synth: with a headscale server"; \
	$(CDK_ENV) npx cdk synth --quiet -o "$$out/headscale" -c cluster=hs -c ami-id=ami-0123456789abcdef0 \
		-c headscale-domain=headscale.example.org -c headscale-admins=alice@,bob@ \
		-c headscale-acme-email=ops@example.org -c auth-key-ssm-parameter=/headnat/hs/tailnet-auth-key; \
	echo "cdk synth: minimal"; \
	$(CDK_ENV) npx cdk synth --quiet -o "$$out/minimal" -c cluster=minimal -c ami-id=ami-0123456789abcdef0; \
	echo "cdk synth: the platform stack (examples/conference.yaml)"; \
	$(CDK_ENV) npx cdk synth --quiet -o "$$out/platform" -c cluster=conf -c ami-id=ami-0123456789abcdef0 \
		-c platform-config=examples/conference.yaml; \
	$(CFN_GUARD) test -r guard/headnat.guard -t guard/headnat_tests.yaml >"$$out/guard-test.txt" || \
		{ cat "$$out/guard-test.txt"; echo "cdk/guard/headnat.guard fails its own tests"; exit 1; }; \
	rules="-r guard/headnat.guard"; \
	for r in $$(sed 's/#.*//' guard/control-tower.txt); do rules="$$rules -r $(CT_RULES)/$$r"; done; \
	n=0; for t in "$$out"/*/*.template.json; do n=$$((n+1)); \
		$(CFN_GUARD) validate $$rules -d "$$t" -S fail || { echo "cfn-guard: $$t violates the rules above"; exit 1; }; \
	done; \
	test $$n -eq 6 || { echo "expected 6 synthesized templates, found $$n"; exit 1; }; \
	echo "cfn-guard: $$n templates pass headnat.guard and $$(sed 's/#.*//' guard/control-tower.txt | grep -c .) Control Tower rules"

# Deploying to AWS (README: "Deploy to AWS"). The settings are the CDK app's context keys in
# $(DEPLOY_SETTINGS) (see cdk/deploy.example.json); AWS credentials come from the usual AWS
# environment (AWS_PROFILE, ...). Needs Go, Node.js 20+ and npm; not root, not Debian.
DEPLOY_SETTINGS ?= deploy.json
CDK_RUN = cd cdk && $(CDK_ENV) HEADNAT_DEPLOY_SETTINGS=$(abspath $(DEPLOY_SETTINGS)) npx cdk
cdk-deps:
	@command -v node >/dev/null && command -v npm >/dev/null || \
		{ echo "the CDK app needs Node.js 20 or newer and npm"; exit 1; }
	@test -f $(DEPLOY_SETTINGS) || { echo "no $(DEPLOY_SETTINGS): copy cdk/deploy.example.json there and fill it in (README: Deploy to AWS)"; exit 1; }
	@cd cdk && { test node_modules/.package-lock.json -nt package-lock.json || npm ci --no-fund --no-audit --loglevel=error; }

synth: cdk-deps
	$(CDK_RUN) synth --quiet
	@echo "templates in cdk/cdk.out/"

diff: cdk-deps
	$(CDK_RUN) diff --all

# Once per account and region: the CDK's own S3 bucket and roles that deploy uses.
bootstrap: cdk-deps
	$(CDK_RUN) bootstrap

deploy: cdk-deps
	$(CDK_RUN) deploy --all --require-approval broadening

# The monthly cost of what make synth wrote, with headnat and with NAT Gateways (docs/COST.md).
COST_FLAGS ?=
cost: build
	$(BIN)/headnat cost --dir cdk/cdk.out $(COST_FLAGS)

lab: deps tools build
	$(BIN)/headnat-lab demo

bench-dataplane: deps build
	$(GO) run ./bench/dataplane --runs 7 --seconds 5 --conns 5000 --out docs/BENCHMARKS.md

bench-failover: deps tools build
	$(GO) run ./bench/failover -n 20 -idle 10m -loaded-idle 5m -idle-load 4 -failback-after 5s -out docs/BENCHMARKS.md

# Admin access through the tailnet when the primary subnet router dies (12 runs) or drains (12
# runs), and 10 drains with headscale's default batching for comparison: about 12 minutes.
bench-tailnet: deps tools build
	$(GO) run ./bench/tailnet -unplanned 12 -planned 12 -baseline-planned 10 -out docs/BENCHMARKS.md

# Planned replacements with 20 requests/s from each private subnet: 5 instance refreshes (every NAT
# replaced, one at a time) and 6 spot interruptions (20s notice), each followed by a relaunch and
# the fail-back: about 5 minutes on a quiet machine.
bench-lifecycle: deps tools build
	$(GO) run ./bench/lifecycle -refreshes 5 -spots 6 -spot-delay 20s -failback-after 5s -out docs/BENCHMARKS.md

# The agent's memory, natively and as linux/arm64 under qemu, in the lab with the tailnet:
# about 4 minutes. It says whether the agent stays within the AMI's 30 MB budget.
bench-footprint: deps tools build ami-bins
	$(GO) run ./bench/footprint -settle 30s -out docs/BENCHMARKS.md

clean:
	rm -rf $(BIN)
