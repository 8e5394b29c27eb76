package afxdp

import (
	"errors"
	"fmt"
)

// CheckVIPs reports whether SetVIPs(vips) would be accepted: valid keys, no more
// than the steering map holds, a fast-path id for every fast-path service. It
// changes nothing, so a reload can ask before it commits anything.
func (d *Dataplane) CheckVIPs(vips []VIP) error {
	want, err := vipKeyValues(vips, nil)
	if err != nil {
		return fmt.Errorf("set VIPs: %w", err)
	}
	if d.fp != nil {
		d.fp.mu.Lock()
		known := len(d.fp.ids)
		fresh := map[string]bool{}
		for _, v := range vips {
			if _, ok := d.fp.ids[v.Service]; v.FastPath && !ok {
				fresh[v.Service] = true
			}
		}
		d.fp.mu.Unlock()
		if known+len(fresh) > maxFastPathServices {
			return fmt.Errorf("set VIPs: %d fast-path services since start, at most %d (restart medialb)", known+len(fresh), maxFastPathServices)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fitsLocked(len(want))
}

// fitsLocked reports whether n steering keys fit the map.
func (d *Dataplane) fitsLocked(n int) error {
	if d.objs.Vips == nil {
		return errors.New("set VIPs: dataplane closed")
	}
	if max := d.objs.Vips.MaxEntries(); uint32(n) > max {
		return fmt.Errorf("set VIPs: %d steering keys exceed the map's %d entries (fewer VIPs or ports)", n, max)
	}
	return nil
}
