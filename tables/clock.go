package tables

import "time"

var epoch = time.Now()

// Now is the persistence clock: whole seconds since the process started, read
// from the monotonic clock, starting at 1. Every user of the same tables
// ([Service.Pick], ActiveClients, Touch, Export and Import; the pipeline
// workers, the layer-7 proxy, the fast-path refresh, the HA sync and the
// overview) must read the same clock, and this is the one they share.
func Now() uint32 { return uint32(time.Since(epoch)/time.Second) + 1 }
