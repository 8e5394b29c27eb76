// Package perf is medialb's layer-4 benchmark harness: it builds a small lab of network
// namespaces of its own (switch with a bridge, client, load balancer, two real servers),
// generates UDP and TCP frames at the highest rate it can from many source addresses
// (an AF_XDP TX generator, [Generator]), and measures, in the same run on the same lab,
// how many of them arrive at the real servers through each forwarder:
//
//   - xdp_tx: the in-kernel reference, an XDP program rewriting the MACs and sending
//     with XDP_TX (xdpref.AttachXDPTXForwarder): the limit of this path on the machine;
//   - medialb: the real dataplane, afxdp.Open on the load balancer's interface and one
//     pipeline.Worker per RX queue, in this process;
//   - medialb+fastpath: the same with the steering program's fast path
//     (afxdp.FastPath): clients whose server the workers recorded are forwarded by
//     the program itself with XDP_TX.
//
// Arrivals are counted by an XDP program on the real servers' interfaces (count, then
// drop), so "forwarded" means "arrived", not "sent". The forwarding core's CPU time is
// read from the scheduler (/proc/.../schedstat) of the threads doing the work: the
// interface's threaded-NAPI kernel threads and the pipeline workers. Generator and
// forwarder are pinned to different CPUs with the taskset command.
//
// Run executes a whole campaign (packet sizes, forwarders, RX queue counts, a UDP
// ping-pong for the latency a forwarder adds) and returns Results; Results.Markdown
// renders them, and UpdateFile rewrites the part of a file between the markers
// BeginMarker and EndMarker. Everything runs in namespaces named with a unique prefix
// ("mlbpf" + pid); nothing touches the caller's namespace, and Run deletes what it
// created even when it fails.
package perf
