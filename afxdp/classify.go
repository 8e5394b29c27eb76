package afxdp

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
)

// Classifier runs frames through the steering program, loaded with the keys of
// a set of VIPs but not attached and with no socket (BPF_PROG_TEST_RUN), and
// says whether the program gives a frame to the AF_XDP socket (to the pipeline)
// or to the kernel. It needs CAP_BPF (root); it is for tests that compare the
// program with the pipeline's parser. It is not safe for concurrent use.
type Classifier struct {
	objs steerObjects
	per  []uint64
}

// NewClassifier loads the steering program with the keys of vips (no fast path).
func NewClassifier(vips []VIP) (*Classifier, error) {
	keys, err := Keys(vips)
	if err != nil {
		return nil, err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("remove memlock limit: %w", err)
	}
	c := &Classifier{}
	if err := loadSteerObjects(&c.objs, nil); err != nil {
		return nil, fmt.Errorf("load steering program: %w", err)
	}
	for k := range keys {
		if err := c.objs.Vips.Put(k, uint8(0)); err != nil {
			c.objs.Close()
			return nil, fmt.Errorf("put VIP key %+v: %w", k, err)
		}
	}
	return c, nil
}

// ToSocket reports whether the program redirects frame to its queue's socket
// (with no socket there, it counts pass_no_socket and passes it; that counter
// tells). frame must be 14 to about 3500 bytes (BPF_PROG_TEST_RUN's limit).
func (c *Classifier) ToSocket(frame []byte) (bool, error) {
	before, err := c.noSocket()
	if err != nil {
		return false, err
	}
	ret, err := c.objs.XdpSteer.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		return false, fmt.Errorf("run steering program on %d bytes: %w", len(frame), err)
	}
	if ret != 2 { // XDP_PASS: without the fast path and a socket, always
		return false, fmt.Errorf("steering program returned %d, want XDP_PASS (2)", ret)
	}
	after, err := c.noSocket()
	return after != before, err
}

// noSocket reads the pass_no_socket counter, summed over CPUs.
func (c *Classifier) noSocket() (uint64, error) {
	idx := uint32(len(ParseCounters)) + 2 // enum stat: redirect, redirect_frag, pass_no_socket
	if statNames[idx] != "pass_no_socket" {
		return 0, fmt.Errorf("counter %d is %q, not pass_no_socket", idx, statNames[idx])
	}
	if err := c.objs.Stats.Lookup(idx, &c.per); err != nil {
		return 0, fmt.Errorf("read counter pass_no_socket: %w", err)
	}
	var n uint64
	for _, v := range c.per {
		n += v
	}
	return n, nil
}

// Close unloads the program and its maps.
func (c *Classifier) Close() error { return c.objs.Close() }
