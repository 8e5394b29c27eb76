/* The frame parser the medialb XDP programs share: the steering program
 * (steer.c) and the benchmark references in perf/xdpref, so that the
 * reference forwards exactly the frames medialb steers.
 *
 * parse reads a frame's destination address, IP protocol and destination
 * port into a struct vip_key (the key of a program's VIP map), or says why the
 * frame goes to the kernel. */
#pragma once

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

/* vip_key identifies a steered destination. addr is the IPv6 address, or the
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d) for IPv4; port is in host byte
 * order; port 0 means "non-first fragment of this VIP and protocol". */
struct vip_key {
	__u8 addr[16];
	__u8 proto;
	__u8 pad;
	__u16 port;
};

/* Reasons to pass a frame to the kernel that every program built on parse
 * counts. The values are indexes of the program's per-CPU stats array, whose
 * own counters follow from PARSE_STATS on; index 0 is "parsed" and is never
 * counted. The Go side names them (afxdp.ParseCounters). */
enum parse_stat {
	PARSE_OK = 0,
	STAT_PASS_NOT_IP,       /* ARP, LLDP, other ethertypes */
	STAT_PASS_NO_VIP,       /* IP, but (dst, proto, port) is not a VIP entry (counted by the caller) */
	STAT_PASS_NO_PORTS,     /* IP protocol without ports (ICMP, ND, ...) */
	STAT_PASS_MALFORMED,    /* truncated or bad headers */
	STAT_PASS_VLAN_STACKED, /* more than one VLAN tag */
	STAT_PASS_EXT_HDRS,     /* IPv6 extension header chain too long */
	PARSE_STATS,
};

/* stat_inc adds one to counter idx of a per-CPU stats array. */
static __always_inline void stat_inc(void *stats, __u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(stats, &idx);
	if (v)
		*v += 1;
}

/* parse fills key from the frame. It returns PARSE_OK (0) when the key is complete and
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
