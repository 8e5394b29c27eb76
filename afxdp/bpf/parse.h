/* The frame parser the medialb XDP programs share: the steering program
 * (steer.c) and the benchmark references in perf/xdpref, so that the
 * reference forwards exactly the frames medialb steers.
 *
 * parse reads a frame's destination address, IP protocol and destination
 * port into a struct vip_key (the key of a program's VIP map), or says why the
 * frame goes to the kernel. For an ICMP error quoting a TCP/UDP packet from
 * the error's destination (a DR flow's packet from VIP:port to a client), the
 * key is the quoted packet's source (VIP, protocol, source port) and the
 * client its destination. pipeline/parse.go and pipeline/icmp.go decide the
 * same for every frame; a differential test runs both. */
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
#define IPPROTO_ICMP 1
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_ROUTING 43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_AH 51
#define IPPROTO_ICMPV6 58
#define IPPROTO_DSTOPTS 60

/* VLAN tags skipped (pipeline.MaxVLANTags); more go to the kernel. */
#define MAX_VLAN_TAGS 2
/* Largest IPv6 extension header chain walked (pipeline.MaxIPv6ExtHeaders);
 * longer chains go to the kernel. */
#define MAX_EXT_HDRS 8
/* Headers deeper than this are not parsed (the offset bound keeps the verifier
 * happy; frames up to this size are parsed exactly as the pipeline does). */
#define MAX_L4_OFF 4096

/* Kinds of vip_key. */
#define KEY_PORT 0 /* (VIP, protocol, destination port) */
#define KEY_FRAG 1 /* (VIP, protocol): non-first fragments, which carry no port */

/* vip_key identifies a steered destination. addr is the IPv6 address, or the
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d) for IPv4; port is in host byte
 * order (0 in a KEY_FRAG key; a KEY_PORT key never has port 0, so TCP/UDP to
 * port 0 is the kernel's). */
struct vip_key {
	__u8 addr[16];
	__u8 proto;
	__u8 kind;
	__u16 port;
};

/* Flags parse sets in *frag. */
#define PARSED_FRAG 1 /* a non-first fragment: the key is KEY_FRAG */
#define PARSED_ICMP 2 /* an ICMP error: the key and src are the quoted packet's */

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
	STAT_PASS_ICMP_MALFORMED, /* an ICMP error whose quoted header is cut or bad
	                           * (key->addr: the error's destination; the steering
	                           * program takes it when that is a layer-4 VIP) */
	PARSE_STATS,
};

/* stat_inc adds one to counter idx of a per-CPU stats array. */
static __always_inline void stat_inc(void *stats, __u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(stats, &idx);
	if (v)
		*v += 1;
}

/* bytes_differ compares n bytes (n a constant; the loop is unrolled). */
static __always_inline int bytes_differ(const __u8 *a, const __u8 *b, int n)
{
	__u8 d = 0;
	int i;

#pragma unroll
	for (i = 0; i < 16; i++) {
		if (i < n)
			d |= a[i] ^ b[i];
	}
	return d != 0;
}

/* frag_key makes key the KEY_FRAG key of protocol l4 (a non-first fragment, or an
 * ICMP error quoting one: flags), or says the frame is the kernel's. */
static __always_inline int frag_key(struct vip_key *key, __u8 l4, int flags, int *frag)
{
	if (l4 != IPPROTO_TCP && l4 != IPPROTO_UDP)
		return STAT_PASS_NO_PORTS;
	key->proto = l4;
	key->kind = KEY_FRAG;
	key->port = 0;
	*frag = flags;
	return PARSE_OK;
}

/* walk_ext walks the IPv6 extension headers from frame offset *off (next header
 * *l4), at most MAX_EXT_HDRS of them, within lim (the IP payload's end). It
 * returns PARSE_OK with *l4 the upper-layer protocol and *off its offset, or
 * with *later set for a non-first fragment (*l4 is then the fragment's
 * protocol); err_long for a chain too long or beyond MAX_L4_OFF, err_cut for
 * one cut short. */
static __always_inline int walk_ext(void *data, void *data_end, __u32 *off, __u8 *l4, __u32 lim,
				    int *later, int err_long, int err_cut)
{
	__u8 *p = data;
	int i;

#pragma unroll
	for (i = 0; i < MAX_EXT_HDRS + 1; i++) {
		__u8 nh = *l4;
		__u8 *h;

		if (nh != IPPROTO_HOPOPTS && nh != IPPROTO_ROUTING && nh != IPPROTO_DSTOPTS &&
		    nh != IPPROTO_AH && nh != IPPROTO_FRAGMENT)
			return PARSE_OK;
		if (i == MAX_EXT_HDRS || *off > MAX_L4_OFF)
			return err_long;
		if (*off + 8 > lim)
			return err_cut;
		h = p + *off;
		if ((void *)(h + 8) > data_end)
			return err_cut;
		*l4 = h[0];
		if (nh == IPPROTO_FRAGMENT) {
			*off += 8;
			if (bpf_ntohs(*(__u16 *)(h + 2)) & 0xfff8) {
				*later = 1;
				return PARSE_OK;
			}
		} else if (nh == IPPROTO_AH) {
			*off += ((__u32)h[1] + 2) * 4;
		} else {
			*off += ((__u32)h[1] + 1) * 8;
		}
	}
	return err_long;
}

/* icmp_error says whether ICMP (v6: ICMPv6) type typ is an error about a flow
 * that goes to the flow's real server: destination unreachable (frag needed /
 * packet too big included), time exceeded, parameter problem. */
static __always_inline int icmp_error(int v6, __u8 typ)
{
	if (v6)
		return typ >= 1 && typ <= 4;
	return typ == 3 || typ == 11 || typ == 12;
}

/* parse_icmp parses an ICMP error at frame offset off whose IP payload ends
 * at lim (the IP length fields; the packet bounds are checked too). key->addr
 * is the error's destination on entry. */
static __always_inline int parse_icmp(void *data, void *data_end, __u32 off, __u32 lim,
				      int v6, struct vip_key *key, __u8 *src, int *frag)
{
	__u8 *p = data;
	__u8 *h, *q;
	__u32 at;
	__u8 l4;
	int ret, later = 0;

	if (off > MAX_L4_OFF || off + 8 > lim)
		return STAT_PASS_NO_PORTS; /* not an ICMP error we know: the kernel's */
	h = p + off;
	if ((void *)(h + 8) > data_end)
		return STAT_PASS_NO_PORTS;
	if (!icmp_error(v6, h[0]))
		return STAT_PASS_NO_PORTS;
	off += 8;
	q = p + off;
	if (!v6) {
		__u32 ihl;

		if (off + 20 > lim || (void *)(q + 20) > data_end)
			return STAT_PASS_ICMP_MALFORMED;
		if ((q[0] >> 4) != 4)
			return STAT_PASS_ICMP_MALFORMED;
		ihl = (q[0] & 0x0f) * 4;
		if (ihl < 20)
			return STAT_PASS_ICMP_MALFORMED;
		if (bytes_differ(q + 12, &key->addr[12], 4))
			return STAT_PASS_NO_PORTS; /* about another source's packet */
		l4 = q[9];
		if (l4 != IPPROTO_TCP && l4 != IPPROTO_UDP)
			return STAT_PASS_NO_PORTS;
		key->proto = l4;
		__builtin_memcpy(&src[12], q + 16, 4);
		if (bpf_ntohs(*(__u16 *)(q + 6)) & 0x1fff)
			return frag_key(key, l4, PARSED_FRAG | PARSED_ICMP, frag);
		at = off + ihl;
	} else {
		if (off + 40 > lim || (void *)(q + 40) > data_end)
			return STAT_PASS_ICMP_MALFORMED;
		if ((q[0] >> 4) != 6)
			return STAT_PASS_ICMP_MALFORMED;
		if (bytes_differ(q + 8, key->addr, 16))
			return STAT_PASS_NO_PORTS;
		__builtin_memcpy(src, q + 24, 16);
		l4 = q[6];
		at = off + 40;
		ret = walk_ext(data, data_end, &at, &l4, lim, &later, STAT_PASS_ICMP_MALFORMED,
			       STAT_PASS_ICMP_MALFORMED);
		if (ret)
			return ret;
		if (later)
			return frag_key(key, l4, PARSED_FRAG | PARSED_ICMP, frag);
		if (l4 != IPPROTO_TCP && l4 != IPPROTO_UDP)
			return STAT_PASS_NO_PORTS;
		key->proto = l4;
	}
	/* The quoted L4 header: RFC 792 promises its first 8 bytes. */
	if (at > MAX_L4_OFF || at + 8 > lim)
		return STAT_PASS_ICMP_MALFORMED;
	{
		__u8 *l4h = p + at;
		if ((void *)(l4h + 8) > data_end)
			return STAT_PASS_ICMP_MALFORMED;
		key->kind = KEY_PORT;
		key->port = bpf_ntohs(*(__u16 *)l4h); /* the VIP's port: the source */
	}
	*frag = PARSED_ICMP;
	return PARSE_OK;
}

/* parse fills key from the frame. It returns PARSE_OK (0) when the key is complete and
 * should be looked up, or the stat index of the reason to pass the frame.
 * *frag gets PARSED_FRAG for a non-first fragment (a KEY_FRAG key) and
 * PARSED_ICMP for an ICMP error (see parse_icmp). */
static __always_inline int parse(struct xdp_md *ctx, struct vip_key *key, __u8 *src, int *frag)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *p = data;
	__u32 off = ETH_HLEN;
	__u32 lim;
	__u16 h_proto;
	__u8 l4;
	int i, ret, later = 0;

	if (data + ETH_HLEN > data_end)
		return STAT_PASS_MALFORMED;
	h_proto = *(__u16 *)(p + 12);

#pragma unroll
	for (i = 0; i < MAX_VLAN_TAGS + 1; i++) {
		if (h_proto != bpf_htons(ETH_P_8021Q) && h_proto != bpf_htons(ETH_P_8021AD))
			break;
		if (i == MAX_VLAN_TAGS)
			return STAT_PASS_VLAN_STACKED;
		if (data + off + 4 > data_end)
			return STAT_PASS_MALFORMED;
		h_proto = *(__u16 *)(p + off + 2);
		off += 4;
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
		if (frag_off != 0)
			return frag_key(key, l4, PARSED_FRAG, frag);
		lim = off + bpf_ntohs(*(__u16 *)(ip + 2));
		off += ihl;
		if (l4 == IPPROTO_ICMP)
			return parse_icmp(data, data_end, off, lim, 0, key, src, frag);
	} else if (h_proto == bpf_htons(ETH_P_IPV6)) {
		__u8 *ip6 = p + off;

		if ((void *)(ip6 + 40) > data_end)
			return STAT_PASS_MALFORMED;
		__builtin_memcpy(key->addr, ip6 + 24, 16);
		__builtin_memcpy(src, ip6 + 8, 16);
		l4 = ip6[6];
		lim = off + 40 + bpf_ntohs(*(__u16 *)(ip6 + 4));
		off += 40;
		/* The outer chain is not bounded by lim: the pipeline finds such
		 * frames malformed, the kernel drops them too. */
		ret = walk_ext(data, data_end, &off, &l4, 0xffffffff, &later, STAT_PASS_EXT_HDRS,
			       STAT_PASS_MALFORMED);
		if (ret)
			return ret;
		if (later)
			return frag_key(key, l4, PARSED_FRAG, frag);
		key->proto = l4;
		if (l4 == IPPROTO_ICMPV6)
			return parse_icmp(data, data_end, off, lim, 1, key, src, frag);
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
		key->kind = KEY_PORT;
		key->port = bpf_ntohs(*(__u16 *)(l4h + 2));
	}
	return PARSE_OK;
}
