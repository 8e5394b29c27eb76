package daemon

import (
	"github.com/medialb/medialb/afxdp"
)

// adviseRXRing warns when the interface's RX ring is short (afxdp.RXRingAdvice):
// the ring is what holds the frames while the receive path is kept off its core,
// and medialb does not resize it itself (that resets the link on most drivers).
// Interfaces without a readable ring (veth) are left alone.
func (d *Daemon) adviseRXRing(ifname string) {
	pending, max, err := afxdp.RXRing(ifname)
	if err != nil {
		d.log.Debug().Err(err).Str("interface", ifname).Msg("RX ring size not known")
		return
	}
	if advice := afxdp.RXRingAdvice(ifname, pending, max); advice != "" {
		d.log.Warn().Str("interface", ifname).Uint32("rx_ring", pending).Uint32("rx_ring_max", max).Msg(advice)
		return
	}
	d.log.Info().Str("interface", ifname).Uint32("rx_ring", pending).Uint32("rx_ring_max", max).Msg("RX ring size")
}
