// Package pipeline is the layer-4 direct-routing data path: a poll-mode [Worker] per
// AF_XDP socket receives a batch of frames, parses each one ([Parse]: Ethernet, 802.1Q,
// IPv4 with options, IPv6 with extension headers, TCP, UDP, fragments), looks up the
// service of its destination, picks the real server for its source address
// (persistence, then Maglev; see package tables), rewrites the Ethernet addresses
// (destination = the server's MAC, source = ours) and transmits the batch.
//
// The packet path allocates nothing and takes no lock: the snapshot is loaded once per
// batch from a [tables.Holder], the clock is read once per batch, and each worker counts
// frames by [Reason] in counters of its own, added once per batch. Nothing is logged
// per packet; [Worker.Counters] and [Sum] report what happened.
package pipeline
