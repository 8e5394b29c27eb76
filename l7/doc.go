// Package l7 is medialb's layer-7 SNAT proxy in TCP mode.
//
// For every port of every layer-7 service in a [tables.Snapshot] a [Proxy]
// listens on the service's VIP. An accepted client is given a real server by
// the same [tables.Service.Pick] the layer-4 data path uses (source-IP
// persistence, weights, drain/halt/down and the fallback server behave the
// same in both layers); the proxy then opens its own connection to that server
// from the load balancer's address (or a configured source address), on the
// port the client connected to unless the server names another one, optionally
// writes a PROXY protocol v2 header, and relays bytes both ways.
//
// Each direction first copies through user space: one read(2) into a pooled
// 16 KiB buffer, taken only when data has arrived, and one write. Once a
// direction has moved more than 64 KiB (bulk), it switches for good to
// io.Copy between the two *net.TCPConn, which the Go runtime turns into
// splice(2) through a pipe on Linux: the rest of the payload never enters
// user space. Short request/response connections never set up splice pipes,
// which for a few hundred bytes cost more than a copy. The conns are never
// wrapped, so the splice path stays open (splice_test.go checks it).
// Half-closes are passed on with CloseWrite. Idle timeouts are enforced with
// read deadlines that wake each direction at most every [checkInterval] to
// look at the connection's last activity; a peer that does not read for a
// whole timeout is caught by a write deadline. There is no TCP keep-alive on
// either side: the idle timeouts bound a vanished peer.
//
// Each direction runs in a goroutine of its own; the goroutine that accepted
// and connected ends, so an idle connection costs two small stacks.
//
// A real server that refuses or does not answer within the connect timeout is
// counted (ServerStats.ConnectFailures) and the client is redispatched to
// another eligible server, chosen deterministically from the client address
// (see redispatch.go).
package l7
