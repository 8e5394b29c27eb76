// SPDX-License-Identifier: (MIT OR GPL-2.0)
/* medialb's XDP steering program.
 *
 * xdp_steer: frames for a VIP with a matching protocol and destination port
 *            (and non-first IP fragments of a VIP's protocol, which carry no
 *            port) go to the AF_XDP socket of their RX queue, and so do ICMP
 *            errors quoting a packet from such a VIP:port (PMTU: the pipeline
 *            sends them to the client's real server) and ICMP errors to a
 *            layer-4 VIP whose quote is cut or bad (the pipeline counts and
 *            drops them); everything else (ARP, ND, echo requests, the API,
 *            health-check replies, SSH, ...) goes to the kernel with
 *            XDP_PASS. A queue without a socket also means "to the kernel",
 *            never a drop.
 *            Fast path: when the VIP entry carries a fast-path service id
 *            (its value, 0 = none) and the fastpath map holds a decision for
 *            (service id, client source address) recorded under the current
 *            generation (fp_gen, bumped by user space on every snapshot swap),
 *            the frame (if addressed to our MAC) gets the server's MAC and
 *            leaves with XDP_TX; its last-seen time is refreshed and its
 *            server's per-CPU frame and byte counters (srv_stats, at the slot
 *            the decision carries) move. Non-first fragments and ICMP errors
 *            always go to the socket.
 *
 * The frame parser is parse.h's, which perf/xdpref's benchmark references
 * share. Build with `make generate` (bpf2go); the objects are committed. */
#include "parse.h"
#include "encap.h"
#include "multibuf.h"

/* Sized for 2 protocols x 15536 ports (50000-65535) x 4 VIPs, plus the
 * single ports and fragment keys; the control plane checks the size. */
#define VIP_MAX_ENTRIES 131072
#define MAX_QUEUES 256

/* fp_key: a client of a fast-path service (client is the IPv6 or the
 * IPv4-mapped source address). */
struct fp_key {
	__u32 svc;
	__u8 client[16];
};

/* fp_value: the pipeline's decision for a client: the server's MAC, our MAC
 * (the frame's destination on arrival and source on departure), the
 * generation it was made under, the server's counter slot in srv_stats (0:
 * not counted) and when the client was last seen (bpf_ktime_get_ns,
 * CLOCK_MONOTONIC). */
struct fp_value {
	__u8 dst_mac[6];
	__u8 src_mac[6];
	__u32 gen;
	__u32 slot;
	__u64 seen_ns;
};

/* srv_count: frames and bytes the fast path sent to one real server. */
struct srv_count {
	__u64 packets;
	__u64 bytes;
};

/* Counter slots of real servers (tables.MaxServerSlots). */
#define SRV_SLOTS 4096

/* Counter indexes of the per-CPU stats array after parse.h's pass reasons;
 * the Go side names them. */
enum stat {
	STAT_REDIRECT = PARSE_STATS, /* redirected to an AF_XDP socket */
	STAT_REDIRECT_FRAG,          /* ... of which non-first IP fragments */
	STAT_PASS_NO_SOCKET,         /* a VIP's frame, but no socket on this RX queue */
	STAT_FASTPATH_TX,            /* fast path, rewritten and sent with XDP_TX */
	STAT_REDIRECT_ICMP,          /* redirected: ICMP errors (of STAT_REDIRECT) */
	STAT_DROP_MULTIBUF,          /* a VIP's frame spanning several buffers: dropped (multibuf.h) */
	STAT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct vip_key);
	__type(value, __u8);
	__uint(max_entries, VIP_MAX_ENTRIES);
} vips SEC(".maps");

/* Default size of the fast-path map; user space may change it before loading.
 * A plain hash, not an LRU: the kernel never evicts a decision behind our back
 * (an LRU map evicts by its own approximate recency, before it is full, and
 * uncounted); when it is full a new decision is refused and counted by user
 * space, whose ager deletes idle and stale decisions. */
#define FASTPATH_MAX_ENTRIES 65536
/* The last-seen time is written at most this often per client. */
#define SEEN_RESOLUTION_NS 250000000ULL

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
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

/* Per-CPU, so that no two CPUs write one counter; user space folds them. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct srv_count);
	__uint(max_entries, SRV_SLOTS);
} srv_stats SEC(".maps");

static __always_inline void count(__u32 idx)
{
	stat_inc(&stats, idx);
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
	/* A tunnelled server: outer headers in front (encap.h), then the MACs. */
	switch (fast_tunnel(ctx, fv->slot, src)) {
	case -1:
		return 0;
	case 1:
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		if (data + ETH_HLEN > data_end)
			return 0;
	}
	__builtin_memcpy(data, fv->dst_mac, 6);
	__builtin_memcpy(data + 6, fv->src_mac, 6);
	now = bpf_ktime_get_ns();
	if (now - fv->seen_ns > SEEN_RESOLUTION_NS)
		fv->seen_ns = now;
	count(STAT_FASTPATH_TX);
	if (fv->slot) {
		__u32 slot = fv->slot;
		struct srv_count *sc = bpf_map_lookup_elem(&srv_stats, &slot);
		if (sc) {
			sc->packets += 1;
			sc->bytes += (__u64)(data_end - data);
		}
	}
	return XDP_TX;
}

/* l4_vip says whether addr is the address of a layer-4 service: it has a
 * fragment key for TCP or UDP. */
static __always_inline int l4_vip(const struct vip_key *k)
{
	struct vip_key fk = { .kind = KEY_FRAG, .proto = IPPROTO_TCP };

	__builtin_memcpy(fk.addr, k->addr, 16);
	if (bpf_map_lookup_elem(&vips, &fk))
		return 1;
	fk.proto = IPPROTO_UDP;
	return bpf_map_lookup_elem(&vips, &fk) != 0;
}

/* to_socket redirects the frame to its queue's socket, counting it. */
static __always_inline long to_socket(struct xdp_md *ctx, int flags)
{
	long act = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);

	if (act == XDP_REDIRECT) {
		count(STAT_REDIRECT);
		if (flags & PARSED_ICMP)
			count(STAT_REDIRECT_ICMP);
		else if (flags & PARSED_FRAG)
			count(STAT_REDIRECT_FRAG);
	} else {
		count(STAT_PASS_NO_SOCKET);
	}
	return act;
}

/* dropped_multi_buffer drops a VIP's frame that spans several buffers
 * (multibuf.h): it says whether it did, counting it. */
static __always_inline int dropped_multi_buffer(struct xdp_md *ctx)
{
	if (!multi_buffer(ctx))
		return 0;
	count(STAT_DROP_MULTIBUF);
	return 1;
}

SEC("xdp.frags")
int xdp_steer(struct xdp_md *ctx)
{
	struct vip_key key = {};
	__u8 src[16] = {};
	int flags = 0;
	int reason = parse(ctx, &key, src, &flags);
	__u8 *svc;

	if (reason == STAT_PASS_ICMP_MALFORMED && l4_vip(&key)) {
		if (dropped_multi_buffer(ctx))
			return XDP_DROP;
		return to_socket(ctx, PARSED_ICMP);
	}
	if (reason) {
		count(reason);
		return XDP_PASS;
	}
	svc = bpf_map_lookup_elem(&vips, &key);
	if (!svc) {
		count(STAT_PASS_NO_VIP);
		return XDP_PASS;
	}
	if (dropped_multi_buffer(ctx))
		return XDP_DROP;
	if (*svc && !flags && fast_path(ctx, *svc, src) == XDP_TX)
		return XDP_TX;
	return to_socket(ctx, flags);
}

char __license[] SEC("license") = "Dual MIT/GPL";
