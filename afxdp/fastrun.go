package afxdp

import (
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
)

// FastPathRunner runs frames through the steering program's fast path, loaded
// but not attached (BPF_PROG_TEST_RUN): every VIP of the set has fast-path
// service id 1, and decisions and tunnels are set by hand. It needs CAP_BPF
// (root); it is for tests that compare the program's output with the
// pipeline's. It is not safe for concurrent use.
type FastPathRunner struct {
	objs steerObjects
}

// NewFastPathRunner loads the steering program with the keys of vips.
func NewFastPathRunner(vips []VIP) (*FastPathRunner, error) {
	keys, err := Keys(vips)
	if err != nil {
		return nil, err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("remove memlock limit: %w", err)
	}
	r := &FastPathRunner{}
	if err := loadSteerObjects(&r.objs, nil); err != nil {
		return nil, fmt.Errorf("load steering program: %w", err)
	}
	for k := range keys {
		if err := r.objs.Vips.Put(k, uint8(1)); err != nil {
			r.objs.Close()
			return nil, fmt.Errorf("put VIP key %+v: %w", k, err)
		}
	}
	return r, nil
}

// Decide records v for client (generation 0, the program's initial one).
func (r *FastPathRunner) Decide(client netip.Addr, v FastPathValue) error {
	k := FastPathKey{Service: 1, Client: client.As16()}
	v.Gen = 0
	return r.objs.Fastpath.Put(k, v)
}

// SetTunnel sets the tunnel of counter slot slot.
func (r *FastPathRunner) SetTunnel(slot uint32, t Tunnel) error {
	return r.objs.Tunnels.Put(slot, t)
}

// Run runs the program on frame and returns its action (XDP_TX is 3) and the
// frame as the program left it. frame must be 14 to about 3500 bytes.
func (r *FastPathRunner) Run(frame []byte) (uint32, []byte, error) {
	opts := ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+256)}
	ret, err := r.objs.XdpSteer.Run(&opts)
	if err != nil {
		return 0, nil, fmt.Errorf("run steering program on %d bytes: %w", len(frame), err)
	}
	return ret, opts.DataOut, nil
}

// TunnelStats returns the fast path's tunnel counters (see [Tunnels.Stats]).
func (r *FastPathRunner) TunnelStats() map[string]uint64 {
	return (&Tunnels{stats: r.objs.TunStats}).Stats()
}

// Close unloads the program and its maps.
func (r *FastPathRunner) Close() error { return r.objs.Close() }
