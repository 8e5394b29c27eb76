package tables

import "fmt"

// Encap is how a layer-4 service's frames reach its real servers. The zero
// value is direct routing.
type Encap uint8

// Encapsulations.
const (
	// EncapNone is direct routing: only the Ethernet addresses are rewritten
	// (destination = the server's MAC).
	EncapNone Encap = iota
	// EncapIPIP prepends an outer IP header from Server.TunnelSrc to
	// Server.Addr (IPIP, IP6IP6, IPv6 in IPv4 or IPv4 in IPv6, as the
	// families demand); Server.MAC is then the next hop's MAC.
	EncapIPIP
	// EncapGUE prepends an outer IP and UDP header (destination port
	// Service.GUEPort, source port from the flow's hash): GUE variant 1, the
	// inner IP packet directly in UDP.
	EncapGUE
)

// String returns "none", "ipip" or "gue".
func (e Encap) String() string {
	switch e {
	case EncapNone:
		return "none"
	case EncapIPIP:
		return "ipip"
	case EncapGUE:
		return "gue"
	}
	return "unknown"
}

// checkEncap checks a server spec's encapsulation.
func checkEncap(sp *ServerSpec) error {
	switch {
	case sp.Encap > EncapGUE:
		return fmt.Errorf("encapsulation: unknown value %d", sp.Encap)
	case sp.Encap == EncapGUE && sp.GUEPort == 0:
		return fmt.Errorf("encapsulation gue: no UDP port (set gue_port)")
	}
	return nil
}
