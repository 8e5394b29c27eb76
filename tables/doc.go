// Package tables holds the snapshot the data paths read: services looked up by
// (VIP, protocol, destination port), their real servers with weight, state and
// MAC, a weighted Maglev lookup table per service, and the source-IP
// persistence (affinity) table with the service's timeout.
//
// A [Snapshot] is built by the control plane with [Build] and is immutable
// afterwards; the data paths load the current one from a [Holder] (an
// atomic.Pointer) once per batch and never block. [Snapshot.Lookup] and
// [Service.Pick] take no lock and allocate nothing. The affinity table of a
// service is the one mutable part: it is shared by all snapshots that carry a
// service of the same name and is written by many workers at once without a
// global lock (see affinity.go).
package tables
