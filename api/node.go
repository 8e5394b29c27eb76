package api

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BGP is the node's part in an active-active group behind BGP ECMP: its
// sessions and the routes it announces; nil without a bgp section.
type BGP struct {
	// State is "active" (the VIPs with an eligible real server are announced),
	// "drain" (an operator drained the node: nothing announced, established
	// flows still forwarded) or "unhealthy" (the dataplane or the health
	// checks are not running: nothing announced; Reason says why).
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Peers are the BGP sessions in configuration order.
	Peers []BGPPeer `json:"peers"`
	// Announced are the host routes announced to the peers, e.g. "192.168.94.110/32".
	Announced []string `json:"announced"`
}

// BGPPeer is one BGP session.
type BGPPeer struct {
	Address string `json:"address"`
	ASN     uint32 `json:"asn"`
	// State is the session's: idle, connect, active, opensent, openconfirm, established.
	State string `json:"state"`
	// Since is when the session came up (established) or last went down.
	Since *time.Time `json:"since,omitempty"`
	// HoldTime is the negotiated hold time in seconds, 0 before established.
	HoldTime uint64 `json:"hold_time"`
	// Flaps counts the times the session went down.
	Flaps uint32 `json:"flaps"`
}

// NodeDrainer is implemented by a [Source] whose node can be taken out of an
// active-active group (bgp) and put back.
type NodeDrainer interface {
	// DrainNode withdraws the node's routes: the routers send it no new flows;
	// the flows that still arrive (established ones, until the routers have
	// moved them) are forwarded as before.
	DrainNode() error
	// OnlineNode announces the node's routes again.
	OnlineNode() error
}

// NodeResult answers a node drain or online.
type NodeResult struct {
	State string `json:"state"`
}

func (s *Server) nodeRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/node/drain", s.nodeState("drain", NodeDrainer.DrainNode))
	mux.HandleFunc("POST /api/v1/node/online", s.nodeState("active", NodeDrainer.OnlineNode))
}

func (s *Server) nodeState(state string, do func(NodeDrainer) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		nd, ok := s.src.(NodeDrainer)
		if !ok {
			writeError(w, http.StatusNotFound, "this node cannot be drained")
			return
		}
		who := s.log.With().Str("user", userOf(r)).Str("source", remoteAddr(r).String()).Str("node_state", state).Logger()
		if err := do(nd); err != nil {
			who.Warn().Err(err).Msg("API: node state not changed")
			writeError(w, http.StatusConflict, err.Error())
			return
		}
		who.Info().Msg("API: node state set by an operator")
		writeJSON(w, http.StatusOK, NodeResult{State: state})
	}
}

// bgpDescs are the BGP metrics.
type bgpDescs struct {
	state, sessionUp, flaps, announced *prometheus.Desc
}

var bgpStates = []string{"active", "drain", "unhealthy"}

func newBGPDescs(d func(name, help string, labels ...string) *prometheus.Desc) bgpDescs {
	return bgpDescs{
		state:     d("bgp_node_state", "BGP state of this node: 1 for the current one of active, drain, unhealthy.", "state"),
		sessionUp: d("bgp_session_established", "Whether the BGP session with a peer is established (1) or not (0).", "peer"),
		flaps:     d("bgp_session_flaps_total", "Times the BGP session with a peer went down.", "peer"),
		announced: d("bgp_announced_routes", "Host routes (VIPs) this node announces to its BGP peers."),
	}
}

func (b bgpDescs) describe(ch chan<- *prometheus.Desc) {
	ch <- b.state
	ch <- b.sessionUp
	ch <- b.flaps
	ch <- b.announced
}

func (b bgpDescs) collect(ch chan<- prometheus.Metric, bg *BGP) {
	if bg == nil {
		return
	}
	for _, st := range bgpStates {
		ch <- prometheus.MustNewConstMetric(b.state, prometheus.GaugeValue, b2f(st == bg.State), st)
	}
	for _, p := range bg.Peers {
		ch <- prometheus.MustNewConstMetric(b.sessionUp, prometheus.GaugeValue, b2f(p.State == "established"), p.Address)
		ch <- prometheus.MustNewConstMetric(b.flaps, prometheus.CounterValue, float64(p.Flaps), p.Address)
	}
	ch <- prometheus.MustNewConstMetric(b.announced, prometheus.GaugeValue, float64(len(bg.Announced)))
}
