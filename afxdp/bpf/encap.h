/* Tunnelled real servers in the steering program's fast path (forwarding:
 * tunnel). The pipeline (pipeline/encap.go) encapsulates the same way; a
 * Program.Run test compares them byte for byte.
 *
 * A fast-path decision whose server counter slot has a tunnel entry (kind
 * != 0) gets, in front of the client's untouched IP packet, an outer IPv4 or
 * IPv6 header from the entry's src to its dst (and for GUE a UDP header to
 * gue_port, source port from the flow hash). Everything that does not fit
 * the simple case goes to the socket, where the pipeline handles it: VLAN
 * tags, Ethernet padding, IPv6 extension headers, packets longer than mtu
 * once encapsulated (the pipeline answers ICMP too-big), GUE over IPv6 (its
 * UDP checksum covers the whole packet), cut headers. */
#pragma once

#include "parse.h"

#define TUN_NONE 0
#define TUN_IPIP 1
#define TUN_GUE 2

#define IPPROTO_IPIP 4
#define IPPROTO_IPV6 41

/* tunnel: how to reach one real server (key: its counter slot). src and dst
 * are IPv6 addresses, or IPv4 ones in their first 4 bytes when outer6 is 0.
 * gue_port is in host order; mtu bounds the outer IP packet. */
struct tunnel {
	__u8 src[16];
	__u8 dst[16];
	__u16 gue_port;
	__u16 mtu;
	__u8 kind;
	__u8 outer6;
	__u8 pad[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct tunnel);
	__uint(max_entries, 4096); /* SRV_SLOTS */
} tunnels SEC(".maps");

/* Counters of the fast path's tunnels (per CPU; the Go side names them). */
enum tun_stat {
	TUN_STAT_ENCAP,    /* encapsulated and sent with XDP_TX */
	TUN_STAT_TOO_BIG,  /* longer than mtu once encapsulated: to the socket */
	TUN_STAT_SOCKET,   /* not the simple case (VLAN, padding, GUE over IPv6, ...): to the socket */
	TUN_STAT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, TUN_STAT_MAX);
} tun_stats SEC(".maps");

/* flow_hash is pipeline.flowHash: the client address (16 bytes, IPv4-mapped
 * for IPv4) and the ports in host order. */
static __always_inline __u32 flow_hash(const __u8 *src, __u16 sport, __u16 dport)
{
	__u32 h = 0x9e3779b9, w;
	int i;

#pragma unroll
	for (i = 0; i < 16; i += 4) {
		__builtin_memcpy(&w, src + i, 4);
		h = (h ^ w) * 0x85ebca6b;
		h ^= h >> 13;
	}
	h = (h ^ (((__u32)sport << 16) | dport)) * 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* ip4_csum returns the checksum of a 20-byte IPv4 header. */
static __always_inline __u16 ip4_csum(const __u16 *h)
{
	__u32 s = 0;
	int i;

#pragma unroll
	for (i = 0; i < 10; i++)
		s += h[i];
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return ~s;
}

/* inner_info reads the untagged frame's IP packet length and ports; it
 * returns -1 when the frame is not the simple case. */
static __always_inline int inner_info(void *data, void *data_end, __u32 *len, int *inner6,
				      __u16 *sport, __u16 *dport)
{
	__u8 *p = data;
	__u8 l4 = 0;
	__u32 l4off;

	if (data + ETH_HLEN + 40 > data_end)
		return -1;
	if (p[12] == 0x08 && p[13] == 0x00) {
		__u8 *ip = p + ETH_HLEN;
		*inner6 = 0;
		*len = ((__u32)ip[2] << 8) | ip[3];
		l4 = ip[9];
		l4off = ETH_HLEN + (ip[0] & 0xf) * 4;
	} else if (p[12] == 0x86 && p[13] == 0xdd) {
		__u8 *ip = p + ETH_HLEN;
		*inner6 = 1;
		*len = 40 + (((__u32)ip[4] << 8) | ip[5]);
		l4 = ip[6];
		l4off = ETH_HLEN + 40;
	} else {
		return -1; /* VLAN tags: the pipeline keeps them */
	}
	/* Ethernet padding or a cut packet: the pipeline trims or drops it. */
	if ((long)ETH_HLEN + *len != (long)(data_end - data))
		return -1;
	*sport = *dport = 0;
	/* IPv6 extension headers: the pipeline walks them for the ports its hash
	 * (GUE source port, flow label) takes, so the flow's outer header stays the
	 * same whichever path encapsulates it. */
	if (*inner6 && l4 != IPPROTO_TCP && l4 != IPPROTO_UDP)
		return -1;
	if (l4 == IPPROTO_TCP || l4 == IPPROTO_UDP) {
		if (l4off > 80)
			return -1;
		__u8 *l = data + l4off;
		if ((void *)(l + 4) > data_end)
			return -1;
		*sport = ((__u16)l[0] << 8) | l[1];
		*dport = ((__u16)l[2] << 8) | l[3];
	}
	return 0;
}

/* write_ip4 writes the outer IPv4 header at h (20 bytes, in bounds). */
static __always_inline void write_ip4(__u8 *h, const struct tunnel *t, __u32 total, __u8 proto)
{
	h[0] = 0x45;
	h[1] = 0;
	h[2] = total >> 8;
	h[3] = total & 0xff;
	h[4] = 0;
	h[5] = 0;
	h[6] = 0x40; /* DF */
	h[7] = 0;
	h[8] = 64;
	h[9] = proto;
	h[10] = 0;
	h[11] = 0;
	__builtin_memcpy(h + 12, t->src, 4);
	__builtin_memcpy(h + 16, t->dst, 4);
	__u16 c = ip4_csum((const __u16 *)h);
	__builtin_memcpy(h + 10, &c, 2);
}

/* write_ip6 writes the outer IPv6 header at h (40 bytes, in bounds). */
static __always_inline void write_ip6(__u8 *h, const struct tunnel *t, __u32 payload, __u8 proto, __u32 hash)
{
	__u32 flow = hash & 0xfffff;

	h[0] = 0x60;
	h[1] = flow >> 16;
	h[2] = (flow >> 8) & 0xff;
	h[3] = flow & 0xff;
	h[4] = payload >> 8;
	h[5] = payload & 0xff;
	h[6] = proto;
	h[7] = 64;
	__builtin_memcpy(h + 8, t->src, 16);
	__builtin_memcpy(h + 24, t->dst, 16);
}

/* write_udp writes the GUE UDP header at u (8 bytes, in bounds; no checksum). */
static __always_inline void write_udp(__u8 *u, const struct tunnel *t, __u32 len, __u32 hash)
{
	__u16 sport = 0xc000 | (hash & 0x3fff);

	u[0] = sport >> 8;
	u[1] = sport & 0xff;
	u[2] = t->gue_port >> 8;
	u[3] = t->gue_port & 0xff;
	u[4] = len >> 8;
	u[5] = len & 0xff;
	u[6] = 0;
	u[7] = 0;
}

/* ENCAP_HDR points h at the outer header (hl bytes) after a bounds check
 * that cannot fail once the frame grew, but which the verifier needs. */
#define ENCAP_HDR(h, hl, data, data_end)                           \
	do {                                                       \
		if ((void *)(data) + ETH_HLEN + (hl) > (data_end)) \
			goto undo;                                 \
		h = (__u8 *)(data) + ETH_HLEN;                     \
	} while (0)

/* encap puts the outer headers in front of the IP packet of the frame of a
 * client (src: 16 bytes). It returns 0 with the frame grown (its Ethernet
 * addresses are the caller's to write), or -1 with the frame unchanged. */
static __always_inline int encap(struct xdp_md *ctx, const struct tunnel *t, const __u8 *src)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 len, hash, key;
	__u16 sport, dport;
	int inner6, hl;
	__u8 proto, *h;

	key = TUN_STAT_SOCKET;
	if (inner_info(data, data_end, &len, &inner6, &sport, &dport) < 0)
		goto out;
	if (t->kind == TUN_GUE && t->outer6)
		goto out; /* the UDP checksum over the whole packet is the pipeline's */
	hl = t->outer6 ? 40 : 20;
	if (t->kind == TUN_GUE)
		hl += 8;
	if (len + hl > t->mtu) {
		key = TUN_STAT_TOO_BIG;
		goto out;
	}
	proto = inner6 ? IPPROTO_IPV6 : IPPROTO_IPIP;
	if (t->kind == TUN_GUE)
		proto = IPPROTO_UDP;
	hash = flow_hash(src, sport, dport);
	if (bpf_xdp_adjust_head(ctx, -hl))
		goto out;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (t->outer6) {
		ENCAP_HDR(h, 40, data, data_end);
		write_ip6(h, t, len, proto, hash);
		((__u8 *)data)[12] = 0x86;
		((__u8 *)data)[13] = 0xdd;
	} else if (t->kind == TUN_GUE) {
		ENCAP_HDR(h, 28, data, data_end);
		write_ip4(h, t, len + 28, proto);
		write_udp(h + 20, t, len + 8, hash);
		((__u8 *)data)[12] = 0x08;
		((__u8 *)data)[13] = 0x00;
	} else {
		ENCAP_HDR(h, 20, data, data_end);
		write_ip4(h, t, len + 20, proto);
		((__u8 *)data)[12] = 0x08;
		((__u8 *)data)[13] = 0x00;
	}
	stat_inc(&tun_stats, TUN_STAT_ENCAP);
	return 0;
undo:
	bpf_xdp_adjust_head(ctx, hl);
out:
	stat_inc(&tun_stats, key);
	return -1;
}

/* fast_tunnel encapsulates a fast-path frame when its server (counter slot)
 * is tunnelled: 1 encapsulated, 0 not tunnelled (direct routing), -1 to the
 * socket (the frame unchanged). */
static __always_inline int fast_tunnel(struct xdp_md *ctx, __u32 slot, const __u8 *src)
{
	struct tunnel *t;

	if (!slot)
		return 0;
	t = bpf_map_lookup_elem(&tunnels, &slot);
	if (!t || t->kind == TUN_NONE)
		return 0;
	return encap(ctx, t, src) < 0 ? -1 : 1;
}
