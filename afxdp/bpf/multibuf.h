/* Multi-buffer (xdp.frags) frames in medialb's steering program.
 *
 * The program is loaded as an xdp.frags program (BPF_F_XDP_HAS_FRAGS), so
 * drivers keep the offloads a single-buffer program makes them drop: a veth
 * keeps its peer's TSO (else every frame the kernel receives, layer-7 traffic
 * included, arrives MTU-sized), real NICs keep LRO/HW-GRO where they can and
 * allow MTUs above a page. A frame may then span several buffers; ctx->data
 * .. ctx->data_end is the first. parse.h reads headers within that first
 * buffer (veth, virtio-net, mlx5, ice and bnxt put at least the first ~1.5-3.5
 * KiB there, far more than the headers the parser reads); a frame whose headers
 * do not fit there is parsed as malformed and goes to the kernel.
 *
 * Frames for the kernel (the non-VIP traffic) pass whole, whatever their size.
 * A VIP's frame that spans several buffers (a TSO/GRO aggregate on a veth, a
 * jumbo frame beyond one buffer) is never given to the AF_XDP socket, which is
 * bound without XDP_USE_SG and takes one buffer per frame (the pipeline
 * rewrites and sends single frames), nor sent with XDP_TX (an aggregate is
 * larger than the wire's MTU and would be dropped further on): it is dropped
 * and counted (STAT_DROP_MULTIBUF, "drop_multibuf"). Passing it to the kernel
 * instead would make the kernel answer for the VIP (a TCP reset).
 * Build with `make generate`. */
#pragma once

#include "parse.h"

/* multi_buffer says whether the frame spans more than its first buffer. */
static __always_inline int multi_buffer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	return bpf_xdp_get_buff_len(ctx) > (__u64)(data_end - data);
}
