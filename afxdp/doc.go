// Package afxdp is medialb's L4 dataplane below the pipeline: the XDP steering
// program, its maps, and one AF_XDP socket per RX queue of an interface.
//
// Open loads the steering program (bpf/steer.c with the frame parser of
// bpf/parse.h, compiled by bpf2go; the objects are committed), attaches it
// through a BPF link, so that the kernel removes it when the process dies, and
// opens the sockets. A program some
// other tool attached through netlink (ip link set ... xdp, xdp-loader, an
// older run) is reported and removed first; Close detaches ours and leaves the
// interface without an XDP program. The program redirects a frame to the
// socket of its RX queue when its destination address, protocol and port (or,
// for a non-first IP fragment, address and protocol) match a VIP set with
// SetVIPs; everything else, and everything on a queue without a socket, goes
// to the kernel.
//
// FastPath (VIP.FastPath): for a client whose real server the pipeline has
// recorded in the program's hash map under the current generation, the
// program rewrites the MACs itself and returns XDP_TX; the frame never
// reaches a socket. The control plane bumps the generation on every
// snapshot swap, which makes every recorded decision stale at once.
//
// Socket owns its rings and UMEM directly (x/sys/unix; asavie_test.go says
// why not github.com/asavie/xdp's). Every frame is in exactly one place: the free pool (a stack), the fill ring,
// the RX ring, the caller, or the TX/completion rings.
//
// Interface lookups, the queue count (ethtool channels, sysfs, netlink) and
// the attach happen in the calling thread's network namespace; sockets and
// maps, once open, may be used from any goroutine.
//
// The parser, its keys ([Keys]), its counters ([ParseCounters],
// [ReadCounters]) and the attach ([AttachProgram]) are shared with the
// benchmark references in perf/xdpref, which are not part of this package.
//
// This is the only medialb package that uses unsafe and raw syscalls; every
// use carries a comment saying why it is sound.
package afxdp
