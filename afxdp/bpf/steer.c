// SPDX-License-Identifier: (MIT OR GPL-2.0)
/* medialb XDP programs.
 *
 * xdp_steer:  frames for a VIP with a matching protocol and destination port
 *             (and non-first IP fragments of a VIP's protocol, which carry no
 *             port) go to the AF_XDP socket of their RX queue; everything else
 *             (ARP, ND, ICMP, the API, health-check replies, SSH, ...) goes to
 *             the kernel with XDP_PASS. A queue without a socket also means
 *             "to the kernel", never a drop.
 *             Fast path: when the VIP entry carries a fast-path service id
 *             (its value, 0 = none) and the fastpath map holds a decision for
 *             (service id, client source address) recorded under the current
 *             generation (fp_gen, bumped by user space on every snapshot swap),
 *             the frame (if addressed to our MAC) gets the server's MAC and
 *             leaves with XDP_TX; its last-seen time is refreshed. Non-first
 *             fragments always go to the socket.
 * xdp_tx_fwd: the same steering keys, but the destination MAC is rewritten in
 *             the kernel and the frame leaves with XDP_TX: the in-kernel
 *             reference the perf harness compares the AF_XDP pipeline with.
 * xdp_pass:   plain XDP_PASS, put on a veth peer so that frames sent with
 *             XDP_TX or redirected into the veth are received there.
 *
 * Build with `make generate` (bpf2go); the objects are committed. */
#include "types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8

#define IPPROTO_HOPOPTS 0
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_ROUTING 43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_AH 51
#define IPPROTO_DSTOPTS 60

/* Largest IPv6 extension header chain walked; longer chains go to the kernel. */
#define MAX_EXT_HDRS 6
/* Headers deeper than this are not parsed (the offset bound keeps the verifier
 * happy and is far beyond any sane header chain). */
#define MAX_L4_OFF 512

/* Sized for 2 protocols x 15536 ports (50000-65535) x 4 VIPs, plus the
 * single ports and fragment keys; the control plane checks the size. */
#define VIP_MAX_ENTRIES 131072
#define MAX_QUEUES 256

/* vip_key identifies a steered destination. addr is the IPv6 address, or the
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d) for IPv4; port is in host byte
 * order; port 0 means "non-first fragment of this VIP and protocol". */
struct vip_key {
	__u8 addr[16];
	__u8 proto;
	__u8 pad;
	__u16 port;
};

/* fp_key: a client of a fast-path service (client is the IPv6 or the
 * IPv4-mapped source address). */
struct fp_key {
	__u32 svc;
	__u8 client[16];
};

/* fp_value: the pipeline's decision for a client: the server's MAC, our MAC
 * (the frame's destination on arrival and source on departure), the
 * generation it was made under and when the client was last seen
 * (bpf_ktime_get_ns, CLOCK_MONOTONIC). */
struct fp_value {
	__u8 dst_mac[6];
	__u8 src_mac[6];
	__u32 gen;
	__u64 seen_ns;
};

/* fwd_value is what xdp_tx_fwd writes into the Ethernet header. */
struct fwd_value {
	__u8 dst_mac[6];
	__u8 src_mac[6];
};

/* Counter indexes of the per-CPU stats array; the Go side names them. */
enum stat {
	STAT_REDIRECT = 0,      /* redirected to an AF_XDP socket */
	STAT_REDIRECT_FRAG,     /* ... of which non-first IP fragments */
	STAT_PASS_NO_SOCKET,    /* a VIP's frame, but no socket on this RX queue */
	STAT_PASS_NOT_IP,       /* ARP, LLDP, other ethertypes */
	STAT_PASS_NO_VIP,       /* IP, but (dst, proto, port) is not a VIP entry */
	STAT_PASS_NO_PORTS,     /* IP protocol without ports (ICMP, ND, ...) */
	STAT_PASS_MALFORMED,    /* truncated or bad headers */
	STAT_PASS_VLAN_STACKED, /* more than one VLAN tag */
	STAT_PASS_EXT_HDRS,     /* IPv6 extension header chain too long */
	STAT_TX_FWD,            /* xdp_tx_fwd: rewritten and sent with XDP_TX */
	STAT_FASTPATH_TX,       /* xdp_steer: fast path, rewritten and sent with XDP_TX */
	STAT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct vip_key);
	__type(value, __u8);
	__uint(max_entries, VIP_MAX_ENTRIES);
} vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct vip_key);
	__type(value, struct fwd_value);
	__uint(max_entries, VIP_MAX_ENTRIES);
} fwd_vips SEC(".maps");

/* Default size of the fast-path map; user space may change it before loading. */
#define FASTPATH_MAX_ENTRIES 65536
/* The last-seen time is written at most this often per client. */
#define SEEN_RESOLUTION_NS 250000000ULL

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct fp_key);
	__type(value, struct fp_value);
	__uint(max_entries, FASTPATH_MAX_ENTRIES);
} fastpath SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} fp_gen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, MAX_QUEUES);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, STAT_MAX);
} stats SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		*v += 1;
}

/* parse fills key from the frame. It returns 0 when the key is complete and
 * should be looked up, or the stat index of the reason to pass the frame.
 * *frag is set for a non-first fragment (key->port == 0). */
static __always_inline int parse(struct xdp_md *ctx, struct vip_key *key, __u8 *src, int *frag)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *p = data;
	__u32 off = ETH_HLEN;
	__u16 h_proto;
	__u8 l4;

	if (data + ETH_HLEN > data_end)
		return STAT_PASS_MALFORMED;
	h_proto = *(__u16 *)(p + 12);

	if (h_proto == bpf_htons(ETH_P_8021Q) || h_proto == bpf_htons(ETH_P_8021AD)) {
		if (data + ETH_HLEN + 4 > data_end)
			return STAT_PASS_MALFORMED;
		h_proto = *(__u16 *)(p + 16);
		off += 4;
		if (h_proto == bpf_htons(ETH_P_8021Q) || h_proto == bpf_htons(ETH_P_8021AD))
			return STAT_PASS_VLAN_STACKED;
	}

	if (h_proto == bpf_htons(ETH_P_IP)) {
		__u8 *ip = p + off;
		__u32 ihl;
		__u16 frag_off;

		if ((void *)(ip + 20) > data_end)
			return STAT_PASS_MALFORMED;
		if ((ip[0] >> 4) != 4)
			return STAT_PASS_MALFORMED;
		ihl = (ip[0] & 0x0f) * 4;
		if (ihl < 20)
			return STAT_PASS_MALFORMED;
		/* IPv4-mapped IPv6 address: ::ffff:a.b.c.d */
		__builtin_memset(key->addr, 0, 10);
		key->addr[10] = 0xff;
		key->addr[11] = 0xff;
		__builtin_memcpy(&key->addr[12], ip + 16, 4);
		__builtin_memset(src, 0, 10);
		src[10] = 0xff;
		src[11] = 0xff;
		__builtin_memcpy(&src[12], ip + 12, 4);
		l4 = ip[9];
		key->proto = l4;
		frag_off = bpf_ntohs(*(__u16 *)(ip + 6)) & 0x1fff;
		if (frag_off != 0) {
			*frag = 1;
			key->port = 0;
			return 0;
		}
		off += ihl;
	} else if (h_proto == bpf_htons(ETH_P_IPV6)) {
		__u8 *ip6 = p + off;
		int i;

		if ((void *)(ip6 + 40) > data_end)
			return STAT_PASS_MALFORMED;
		__builtin_memcpy(key->addr, ip6 + 24, 16);
		__builtin_memcpy(src, ip6 + 8, 16);
		l4 = ip6[6];
		off += 40;
#pragma unroll
		for (i = 0; i < MAX_EXT_HDRS; i++) {
			__u8 *h;
			if (l4 != IPPROTO_HOPOPTS && l4 != IPPROTO_ROUTING &&
			    l4 != IPPROTO_DSTOPTS && l4 != IPPROTO_AH &&
			    l4 != IPPROTO_FRAGMENT)
				break;
			if (off > MAX_L4_OFF)
				return STAT_PASS_EXT_HDRS;
			h = p + off;
			if ((void *)(h + 8) > data_end)
				return STAT_PASS_MALFORMED;
			if (l4 == IPPROTO_FRAGMENT) {
				__u16 fo = bpf_ntohs(*(__u16 *)(h + 2)) & 0xfff8;
				l4 = h[0];
				off += 8;
				if (fo != 0) {
					key->proto = l4;
					key->port = 0;
					*frag = 1;
					return 0;
				}
			} else if (l4 == IPPROTO_AH) {
				l4 = h[0];
				off += ((__u32)h[1] + 2) * 4;
			} else {
				l4 = h[0];
				off += ((__u32)h[1] + 1) * 8;
			}
		}
		if (l4 == IPPROTO_HOPOPTS || l4 == IPPROTO_ROUTING ||
		    l4 == IPPROTO_DSTOPTS || l4 == IPPROTO_AH || l4 == IPPROTO_FRAGMENT)
			return STAT_PASS_EXT_HDRS;
		key->proto = l4;
	} else {
		return STAT_PASS_NOT_IP;
	}

	if (l4 != IPPROTO_TCP && l4 != IPPROTO_UDP)
		return STAT_PASS_NO_PORTS;
	if (off > MAX_L4_OFF)
		return STAT_PASS_EXT_HDRS;
	{
		__u8 *l4h = p + off;
		if ((void *)(l4h + 4) > data_end)
			return STAT_PASS_MALFORMED;
		key->port = bpf_ntohs(*(__u16 *)(l4h + 2));
	}
	return 0;
}

/* fast_path forwards the frame of a client whose server is decided; it
 * returns XDP_TX, or 0 when the frame must go to the socket. */
static __always_inline int fast_path(struct xdp_md *ctx, __u32 svc, const __u8 *src)
{
	struct fp_key fk = { .svc = svc };
	struct fp_value *fv;
	__u32 zero = 0;
	__u32 *gen;
	void *data, *data_end;
	__u64 now;

	__builtin_memcpy(fk.client, src, 16);
	fv = bpf_map_lookup_elem(&fastpath, &fk);
	if (!fv)
		return 0;
	gen = bpf_map_lookup_elem(&fp_gen, &zero);
	if (!gen || fv->gen != *gen)
		return 0;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + ETH_HLEN > data_end)
		return 0;
	/* A frame flooded to us for another host is not ours to forward. */
	{
		__u8 *d = data;
		if ((d[0] ^ fv->src_mac[0]) | (d[1] ^ fv->src_mac[1]) | (d[2] ^ fv->src_mac[2]) |
		    (d[3] ^ fv->src_mac[3]) | (d[4] ^ fv->src_mac[4]) | (d[5] ^ fv->src_mac[5]))
			return 0;
	}
	__builtin_memcpy(data, fv->dst_mac, 6);
	__builtin_memcpy(data + 6, fv->src_mac, 6);
	now = bpf_ktime_get_ns();
	if (now - fv->seen_ns > SEEN_RESOLUTION_NS)
		fv->seen_ns = now;
	count(STAT_FASTPATH_TX);
	return XDP_TX;
}

SEC("xdp")
int xdp_steer(struct xdp_md *ctx)
{
	struct vip_key key = {};
	__u8 src[16] = {};
	int frag = 0;
	int reason = parse(ctx, &key, src, &frag);
	__u8 *svc;
	long act;

	if (reason) {
		count(reason);
		return XDP_PASS;
	}
	svc = bpf_map_lookup_elem(&vips, &key);
	if (!svc) {
		count(STAT_PASS_NO_VIP);
		return XDP_PASS;
	}
	if (*svc && !frag && fast_path(ctx, *svc, src) == XDP_TX)
		return XDP_TX;
	act = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	if (act == XDP_REDIRECT) {
		count(STAT_REDIRECT);
		if (frag)
			count(STAT_REDIRECT_FRAG);
	} else {
		count(STAT_PASS_NO_SOCKET);
	}
	return act;
}

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
		count(reason);
		return XDP_PASS;
	}
	fv = bpf_map_lookup_elem(&fwd_vips, &key);
	if (!fv) {
		count(STAT_PASS_NO_VIP);
		return XDP_PASS;
	}
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + ETH_HLEN > data_end)
		return XDP_PASS;
	__builtin_memcpy(data, fv->dst_mac, 6);
	__builtin_memcpy(data + 6, fv->src_mac, 6);
	count(STAT_TX_FWD);
	return XDP_TX;
}

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char __license[] SEC("license") = "Dual MIT/GPL";
