package tables

// ActiveClientsByServer returns the number of live persistence entries of
// every server of the service, indexed like svc.Servers: what ActiveClients
// gives for one server, for all of them in one scan of the table (a scan
// reads every slot: 65536 by default, 2.5 MiB). nil when persistence is off.
// Control plane only: the overview and the WebUI reports' sampler, which
// count every server of every service every few seconds, call it once per
// service instead of once per server.
func (svc *Service) ActiveClientsByServer(now uint32) []int {
	a := svc.aff
	if a == nil {
		return nil
	}
	counts := make([]int, len(svc.Servers))
	for bi := range a.buckets {
		b := &a.buckets[bi]
		for i := range b {
			v, ok := b[i].load()
			if !ok || expired(v.t, now, svc.timeout) {
				continue
			}
			id := uint32(v.val)
			if id == 0 || id >= uint32(len(svc.byID)) {
				continue
			}
			if si := svc.byID[id]; si >= 0 && svc.Servers[si].Generation == uint32(v.val>>32) {
				counts[si]++
			}
		}
	}
	return counts
}
