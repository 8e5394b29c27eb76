package afxdp

// The BPF objects are generated and committed, so `make build` needs no clang;
// `make generate` (clang, llvm, libbpf-dev) rebuilds them from bpf/steer.c
// (and perf/xdpref's from its bpf/ref.c, which shares bpf/parse.h).
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -tags linux -target bpfel -type vip_key -type fp_key -type fp_value -type srv_count steer bpf/steer.c -- -O2 -g -Wall -Werror
