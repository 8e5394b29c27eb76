// SPDX-License-Identifier: (MIT OR GPL-2.0)
/* In-kernel references for medialb's benchmarks and labs; not part of the
 * product.
 *
 * xdp_tx_fwd: the steering program's keys (the same parse.h), but the MACs are
 *             rewritten in the kernel and the frame leaves with XDP_TX: the
 *             in-kernel reference the perf harness compares the AF_XDP
 *             pipeline with.
 * xdp_pass:   plain XDP_PASS, put on a veth peer so that frames sent with
 *             XDP_TX or redirected into the veth are received there.
 *
 * Build with `make generate` (bpf2go); the objects are committed. */
#include "parse.h"

/* The size of afxdp's VIP map, so the reference takes the same VIPs. */
#define VIP_MAX_ENTRIES 131072

/* fwd_value is what xdp_tx_fwd writes into the Ethernet header. */
struct fwd_value {
	__u8 dst_mac[6];
	__u8 src_mac[6];
};

/* Counter indexes of the per-CPU stats array after parse.h's pass reasons;
 * the Go side names them. */
enum stat {
	STAT_TX_FWD = PARSE_STATS, /* rewritten and sent with XDP_TX */
	STAT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct vip_key);
	__type(value, struct fwd_value);
	__uint(max_entries, VIP_MAX_ENTRIES);
} fwd_vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, STAT_MAX);
} stats SEC(".maps");

SEC("xdp")
int xdp_tx_fwd(struct xdp_md *ctx)
{
	struct vip_key key = {};
	struct fwd_value *fv;
	__u8 src[16] = {};
	int frag = 0;
	int reason = parse(ctx, &key, src, &frag);
	void *data, *data_end;

	if (reason) {
		stat_inc(&stats, reason);
		return XDP_PASS;
	}
	fv = bpf_map_lookup_elem(&fwd_vips, &key);
	if (!fv) {
		stat_inc(&stats, STAT_PASS_NO_VIP);
		return XDP_PASS;
	}
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + ETH_HLEN > data_end)
		return XDP_PASS;
	__builtin_memcpy(data, fv->dst_mac, 6);
	__builtin_memcpy(data + 6, fv->src_mac, 6);
	stat_inc(&stats, STAT_TX_FWD);
	return XDP_TX;
}

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char __license[] SEC("license") = "Dual MIT/GPL";
