package xdpref

// The BPF objects are generated and committed, so `make build` needs no clang;
// `make generate` (clang, llvm, libbpf-dev) rebuilds them from bpf/ref.c, which
// includes afxdp's bpf/parse.h: the references parse frames as medialb does.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -tags linux -target bpfel -type fwd_value ref bpf/ref.c -- -I../../afxdp/bpf -O2 -g -Wall -Werror
