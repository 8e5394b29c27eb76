# medialb: `make demo` runs the main job in a namespace lab, `make test` runs every test.
# Both install what they need (Debian packages via scripts/deps.sh) on a fresh machine.

GO        ?= go
BIN       := bin
GOFLAGS   ?=
TESTFLAGS ?= -count=1 -timeout=20m
FUZZTIME  ?= 30s

# Debian packages: scripts/packages.list names every program the targets run, with its
# package and the targets that need it; scripts/deps.sh installs from it.

.PHONY: all build test test-vm bench-vm demo bench bench-ecmp fuzz generate vet clean deps-demo deps-test deps-bench deps-gen deps-vm soak

all: build

build:
	$(GO) build $(GOFLAGS) -o $(BIN)/ ./cmd/...

deps-demo:
	@scripts/deps.sh demo

deps-test:
	@scripts/deps.sh test

deps-bench:
	@scripts/deps.sh bench

deps-gen:
	@scripts/deps.sh gen

deps-vm:
	@scripts/deps.sh vm

deps-vagrant:
	@scripts/deps.sh vagrant

vet:
	$(GO) vet ./...

# Unit tests, fuzz seed corpora (run as ordinary tests), and the root-only namespace lab
# tests (they skip with a reason when not root). MEDIALB_BIN tells lab tests where the
# freshly built binaries are.
test: deps-test build vet
	MEDIALB_BIN=$(CURDIR)/$(BIN) $(GO) test $(TESTFLAGS) ./...
	$(MAKE) test-vm

# The VM lab (lab/vm): the load balancer, a client and two real servers as QEMU TCG guests
# with virtio-net (native XDP, AF_XDP zero-copy on several queues), booted from the pinned
# Debian kernel (downloaded once into /var/tmp/medialb-vm) and an initramfs of static
# binaries. Part of `make test` (about 1-2 minutes here, the guest kernel's download
# once); `make test-vm` runs it alone.
VMBIN := $(BIN)/static
test-vm: deps-vm
	CGO_ENABLED=0 $(GO) build $(GOFLAGS) -o $(VMBIN)/ ./cmd/medialb ./cmd/vossim ./cmd/medialb-vmagent ./cmd/medialb-perf
	MEDIALB_VM_LAB=1 MEDIALB_BIN=$(CURDIR)/$(VMBIN) $(GO) test -count=1 -timeout=40m -v -run '^TestVMLab$$' ./lab/vm/

# The VM lab's L4 bench: XDP_TX reference vs medialb (fast path, pipeline only; copy and
# zero-copy, busy poll) on 1, 2 and 4 queues of the same virtio-net NIC in a 4-vCPU guest,
# per second and per second of guest CPU; rewrites its sections of BENCHMARKS.md.
# MEDIALB_VM_BENCH_PPS (offered rate), _QUEUES, _POINTS, _ROUNDS: see lab/vm TestVMBench.
bench-vm: deps-vm
	CGO_ENABLED=0 $(GO) build $(GOFLAGS) -o $(VMBIN)/ ./cmd/medialb ./cmd/vossim ./cmd/medialb-vmagent ./cmd/medialb-perf
	MEDIALB_VM_LAB=1 MEDIALB_VM_BENCH=1 MEDIALB_VM_BENCH_OUT=$(CURDIR)/BENCHMARKS.md MEDIALB_BIN=$(CURDIR)/$(VMBIN) $(GO) test -count=1 -timeout=90m -v -run '^TestVMBench$$' ./lab/vm/

demo: deps-demo build
	$(BIN)/medialb-demo --bin $(CURDIR)/$(BIN) --config examples/harmonic-vos.yaml

# In-process benchmarks, then the lab harness (root): medialb vs in-kernel XDP_TX, same
# run, same lab; it rewrites its section of BENCHMARKS.md.
bench: deps-bench build
	$(GO) test -run=NONE -bench=. -benchmem ./tables/ ./pipeline/
	$(GO) test -run=NONE -bench=PassedFrame -benchtime=100x ./afxdp/
	$(BIN)/medialb-perf --out BENCHMARKS.md
	$(BIN)/medialb-perf --flood 5s --out BENCHMARKS.md
	$(BIN)/medialb-perf --new-clients --out BENCHMARKS.md
	$(GO) run ./cmd/medialb-l7bench --bin $(BIN) --out BENCHMARKS.md
	$(BIN)/medialb-ecmp --bin $(BIN) --out BENCHMARKS.md
	$(MAKE) bench-vm

# The BGP ECMP figures alone: nodes behind the lab's FRR router added, drained, killed, lost.
bench-ecmp: deps-bench build
	$(BIN)/medialb-ecmp --bin $(BIN) --out BENCHMARKS.md

# Ten minutes of mixed traffic through both VIPs with reloads and health flaps (not in CI);
# rewrites the soak section of BENCHMARKS.md.
soak: deps-demo build
	$(BIN)/medialb-demo --bin $(CURDIR)/$(BIN) --config examples/harmonic-vos.yaml --soak 10m --soak-out BENCHMARKS.md

# The Vagrantfile's lab brought up here (root; not in CI: see vagrant/README.md for how
# long it takes): a local box, libvirt in a network namespace, vagrant up, the checks from
# the client VM, vagrant destroy. The VMs run the static binaries from bin/.
.PHONY: deps-vagrant vagrant-check
vagrant-check: deps-vagrant
	CGO_ENABLED=0 $(GO) build $(GOFLAGS) -o $(BIN)/ ./cmd/...
	vagrant/check.sh

# Short coverage-guided runs of every fuzz target.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run=NONE -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=2s $$pkg || exit 1; \
	  done; \
	done

# Rebuild the committed BPF objects (needs clang; make build does not).
generate: deps-gen
	$(GO) generate ./afxdp/... ./perf/xdpref/...

clean:
	rm -rf $(BIN)
