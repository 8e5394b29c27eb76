// Package config reads and validates medialb's YAML configuration.
//
// [Load] and [Parse] turn a file into a [Config]: every field checked, every
// problem reported as "FILE:LINE: message" (all of them, not only the first),
// and defaults filled in once the file is known to be valid. A *Config is a
// plain value: it is not modified after Parse returns and is safe to read from
// many goroutines.
//
// The format is described in docs/contract.md and shown, with comments, in
// examples/harmonic-vos.yaml. YAML anchors, aliases and merge keys (<<) work;
// top-level keys starting with "x-" are ignored, to hold anchors.
package config

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/medialb/medialb/tables"
)

// Defaults applied to fields the configuration leaves out. This is the one place
// they are written: l7 (timeouts), health (interval, timeout, rise, fall) and api
// (state directory) name these constants for their own zero values, and tables
// owns the Maglev size that DefaultMaglevSize names.
const (
	// DefaultHashSeed seeds the consistent hash. Two load balancers with the
	// same seed and the same real servers pick the same server for a client.
	DefaultHashSeed uint64 = 0x6d656469616c6231 // "medialb1"
	// DefaultStateDir holds state kept across restarts.
	DefaultStateDir = "/var/lib/medialb"
	// DefaultAPIListen is the WebUI and REST API address (the guide's 9443). Its
	// empty host means the node's own address on node.interface (see
	// API.Listen), never a VIP.
	DefaultAPIListen = ":9443"
	// DefaultAdvertInterval is the VRRP advertisement interval (keepalived's).
	DefaultAdvertInterval = time.Second
	// DefaultSyncPort carries persistence-table sync between an HA pair (the
	// guide's port 7778 for table replication).
	DefaultSyncPort = 7778
	// MinSecretLen is the shortest ha.secret taken, in bytes.
	MinSecretLen = 16
	// DefaultWeight is a real server's weight when none is given.
	DefaultWeight = 100
	// DefaultMaglevSize is the Maglev lookup table size, a prime.
	DefaultMaglevSize = tables.DefaultMaglevSize
	// MaxMaglevSize is the largest table size accepted (a prime below 2^24).
	MaxMaglevSize = 16777213
	// DefaultPersistenceTimeout is how long an idle client keeps its real server.
	DefaultPersistenceTimeout = 30 * time.Minute
	// DefaultPersistenceCapacity is the number of clients the persistence table holds.
	DefaultPersistenceCapacity = 1 << 20
	// MaxPersistenceCapacity bounds persistence.capacity: the tables' limit
	// (40 bytes per entry: 2.5 GiB).
	MaxPersistenceCapacity = tables.MaxAffinityCap
	// DefaultCheckInterval is the time between two health checks of a server.
	DefaultCheckInterval = 5 * time.Second
	// DefaultCheckTimeout is how long one health check may take.
	DefaultCheckTimeout = 3 * time.Second
	// DefaultCheckRise is the number of passed checks that bring a server up.
	DefaultCheckRise = 2
	// DefaultCheckFall is the number of failed checks that take a server down.
	DefaultCheckFall = 3
	// DefaultPanicThreshold is the panic threshold of a layer-4 service when none
	// is given: more than half of its real servers failing within one check
	// interval (layer 7: off).
	DefaultPanicThreshold = 50
	// DefaultCheckPath is the HTTP(S) health check path (Harmonic VOS's).
	DefaultCheckPath = "/admin/status"
	// DefaultConnectTimeout bounds a layer-7 connection to a real server.
	DefaultConnectTimeout = 5 * time.Second
	// DefaultIdleTimeout closes a layer-7 connection idle in one direction
	// for this long. It was an hour: an idle proxied connection costs two file
	// descriptors, so a client that opens connections and abandons them held
	// them for an hour each. Ten minutes is still longer than what the
	// management VIP's clients leave idle on purpose (browsers close idle
	// keep-alive sockets after 5 minutes; VOS's REST API is request/answer;
	// push channels ping more often), and it reclaims abandoned connections
	// six times sooner. Set client_timeout/server_timeout for longer sessions.
	DefaultIdleTimeout = 10 * time.Minute
)

// Config is a whole, validated configuration.
type Config struct {
	// File is the name the configuration was loaded from.
	File string
	// Node describes this load balancer.
	Node Node
	// API is the WebUI and REST API.
	API API
	// HA is the clustered pair, or nil for a single load balancer.
	HA *HA
	// Alerts sends state changes by mail and syslog; nil for none.
	Alerts *Alerts
	// BGP announces the VIPs to routers (active-active behind ECMP); nil for none.
	BGP *BGP
	// Services are the virtual services (YAML: virtual_services), in file order.
	Services []Service
	// ServicesFile is the file Services were read from: File, or on the
	// secondary of an HA pair the services its primary pushed (see [LoadNode]).
	ServicesFile string
	// ServicesDoc is the virtual_services section as a document of its own,
	// what an HA primary pushes to its secondary (see [ServicesDocument]); set
	// by [LoadNode] for a configuration with an ha section.
	ServicesDoc []byte
}

// Node describes the machine medialb runs on.
type Node struct {
	// Name identifies this node in logs and the overview. Default: the host name.
	Name string
	// Interface is the NIC that carries VIP traffic; VIPs are brought up on it.
	// Direct routing needs it in the same L2 segment as the real servers. Required.
	Interface string
	// HashSeed seeds the consistent hash; both nodes of an HA pair must use the
	// same one. Default DefaultHashSeed; never 0.
	HashSeed uint64
	// StateDir holds state kept across restarts (an absolute path). Default DefaultStateDir.
	StateDir string
	// Queues is the number of RX queues to serve, 0 for all of the NIC's.
	Queues int
	// XDPMode is how the steering program attaches. Default XDPAuto.
	XDPMode XDPMode
	// ZeroCopy selects AF_XDP zero-copy. Default ZeroCopyAuto.
	ZeroCopy ZeroCopy
	// XDPFastPath selects the steering program's fast path for layer-4 clients
	// whose real server is decided. Default FastPathAuto.
	XDPFastPath FastPath
	// RXPriority gives the interface's receive path (threaded NAPI, at real-time
	// priority) precedence over the pipeline's workers, so that the fast path and
	// the node's own traffic (health-check replies, ARP/ND, VRRP, the API) survive
	// a saturated core: "auto" (on when the steering program is attached natively,
	// which threaded NAPI needs), "on", "off". Default "auto".
	RXPriority string
	// BusyPoll sets SO_PREFER_BUSY_POLL, SO_BUSY_POLL and SO_BUSY_POLL_BUDGET on
	// the AF_XDP sockets (node.busy_poll: on). Default off.
	BusyPoll bool
}

// FastPath selects the XDP fast path: once the pipeline has picked a client's
// real server, the steering program forwards that client's next frames itself
// (MAC rewrite and XDP_TX) until the configuration, a server's state or MAC
// changes. "auto": for layer-4 services with source-IP persistence, where the
// interface can send with XDP_TX unaided; "on": every layer-4 service; "off":
// every frame goes through the AF_XDP pipeline.
type FastPath string

// Fast-path settings.
const (
	FastPathAuto FastPath = "auto"
	FastPathOn   FastPath = "on"
	FastPathOff  FastPath = "off"
)

// XDPMode is how the XDP program attaches: "auto" (native if the driver can,
// else generic), "native" or "generic".
type XDPMode string

// XDP attach modes.
const (
	XDPAuto    XDPMode = "auto"
	XDPNative  XDPMode = "native"
	XDPGeneric XDPMode = "generic"
)

// ZeroCopy selects AF_XDP zero-copy: "auto" (try zero-copy; copy mode, with a
// warning naming the errno, if the zero-copy bind fails for any reason), "on"
// (fail without it) or "off".
type ZeroCopy string

// Zero-copy settings.
const (
	ZeroCopyAuto ZeroCopy = "auto"
	ZeroCopyOn   ZeroCopy = "on"
	ZeroCopyOff  ZeroCopy = "off"
)

// API configures the WebUI and REST API listener.
type API struct {
	// Listen is host:port of the HTTPS listener. Default DefaultAPIListen when
	// the api section is present; empty (no API) when it is absent. An empty
	// host is the node's own (first, non-VIP) address on node.interface, found
	// at start. A VIP's address or the unspecified address (which answers on
	// every VIP) is refused.
	Listen string
	// TLSCert and TLSKey are PEM files; both empty means a self-signed
	// certificate is generated at start. Give both or neither.
	TLSCert, TLSKey string
	// Users may log in with HTTP basic auth. At least one when Listen is set.
	Users []User
}

// User is an API account.
type User struct {
	// Name is the login name.
	Name string
	// PasswordHash is a bcrypt hash ($2a$, $2b$ or $2y$), from `medialb passwd`.
	PasswordHash string
}

// HA configures a clustered pair: VRRP decides which node is master and holds
// the VIPs.
type HA struct {
	// Peer is the other node's address on node.interface.
	Peer netip.Addr
	// Priority is this node's VRRP priority, 1..254; the higher one is master.
	Priority uint8
	// RouterID is the VRRP virtual router id, 1..255, the same on both nodes.
	RouterID uint8
	// AdvertInterval is the VRRP advertisement interval, a multiple of 10ms
	// between 10ms and 40.95s. Default DefaultAdvertInterval.
	AdvertInterval time.Duration
	// Secret authenticates traffic between the pair, the same on both nodes;
	// at least MinSecretLen bytes (`medialb passwd --secret` makes one). Required.
	Secret string
	// Preempt lets a returning higher-priority node take the VIPs back. Default false.
	Preempt bool
	// SyncPort is the TCP port of persistence-table sync. Default DefaultSyncPort.
	SyncPort uint16
}

// Layer is a virtual service's layer: 4 (direct routing) or 7 (SNAT proxy).
type Layer uint8

// Layers.
const (
	Layer4 Layer = 4
	Layer7 Layer = 7
)

// Forwarding is how a service forwards packets.
type Forwarding string

// Forwarding methods. Layer 4 supports DirectRouting; layer 7 is always SNAT.
const (
	DirectRouting Forwarding = "direct-routing"
	SNAT          Forwarding = "snat"
)

// Protocol is a bit set of transport protocols. The zero Protocol is none.
type Protocol uint8

// Protocols.
const (
	TCP       Protocol    = 1 << iota // TCP
	UDP                               // UDP
	TCPAndUDP = TCP | UDP             // both, YAML "tcp+udp"
)

// Has reports whether p includes all of q.
func (p Protocol) Has(q Protocol) bool { return p&q == q && q != 0 }

// String returns "tcp", "udp" or "tcp+udp".
func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case TCPAndUDP:
		return "tcp+udp"
	}
	return fmt.Sprintf("Protocol(%d)", uint8(p))
}

// PersistenceMode is how clients stay on a real server.
type PersistenceMode string

// Persistence modes.
const (
	// PersistNone: the consistent hash alone decides (it is stable while the
	// set of real servers is).
	PersistNone PersistenceMode = "none"
	// PersistSourceIP: a table remembers each client address's real server
	// until it has been idle for the timeout, across changes of the set.
	PersistSourceIP PersistenceMode = "source-ip"
)

// Persistence configures client affinity.
type Persistence struct {
	// Mode is PersistNone (default) or PersistSourceIP.
	Mode PersistenceMode
	// Timeout is how long an idle client keeps its server. With source-ip:
	// default DefaultPersistenceTimeout. Zero with mode none.
	Timeout time.Duration
	// Capacity is the number of clients the table holds. With source-ip:
	// default DefaultPersistenceCapacity. Zero with mode none.
	Capacity int
}

// CheckType is a health check type.
type CheckType string

// Health check types.
const (
	CheckHTTPSGet   CheckType = "https-get"   // HTTPS GET, optional body and status match
	CheckHTTPGet    CheckType = "http-get"    // plain HTTP GET
	CheckTCPConnect CheckType = "tcp-connect" // a TCP handshake
	CheckRTMP       CheckType = "rtmp"        // RTMP handshake and connect to an application
	CheckRTSP       CheckType = "rtsp"        // RTSP OPTIONS, or DESCRIBE of path
	CheckUDP        CheckType = "udp"         // a datagram that must be answered
	CheckSRT        CheckType = "srt"         // an SRT caller's induction handshake
	CheckNone       CheckType = "none"        // servers are always healthy
)

// HealthCheck configures how a service's real servers are checked.
type HealthCheck struct {
	// Type: default tcp-connect for services with TCP, none for UDP-only ones.
	Type CheckType
	// Port is the port checked. Default: the service's first port (see
	// RealServer.HealthPort for the port used per server).
	Port uint16
	// Path is the HTTP(S) request path. Default DefaultCheckPath (http types only).
	Path string
	// Expect, when not empty, must equal the response body (surrounding white
	// space ignored).
	Expect string
	// ExpectStatus is the expected HTTP status code; 0 means any 2xx.
	ExpectStatus int
	// Host is the HTTP Host header. Default: the real server's address.
	Host string
	// SNI is the TLS server name (https-get). Default: Host if set, else none.
	SNI string
	// TLSVerify checks the server's certificate (https-get). Default false:
	// VOS servers usually have self-signed certificates.
	TLSVerify bool
	// CAFile is a PEM bundle to verify against instead of the system roots
	// (https-get with tls_verify only).
	CAFile string
	// Interval is the time between checks. Default DefaultCheckInterval.
	Interval time.Duration
	// Timeout bounds one check, less than Interval. Default DefaultCheckTimeout,
	// or Interval/2 when Interval is not above DefaultCheckTimeout.
	Timeout time.Duration
	// Rise passed checks bring a server up. Default DefaultCheckRise.
	Rise int
	// Fall failed checks take a server down. Default DefaultCheckFall.
	Fall int
	// Jitter is the largest random delay added to each interval, so that
	// checks of many servers spread out; less than Interval. Default Interval/10.
	Jitter time.Duration
	// Application is the RTMP application an rtmp check connects to.
	// Default DefaultRTMPApplication.
	Application string
	// Send is the payload of a udp check's datagram; Expect, when set, must
	// be contained in the reply.
	Send string
}

// Fallback is the server that takes a service's new clients when all its real
// servers are down (halted, drained or failing checks).
type Fallback struct {
	// Name is shown in the overview. Default "fallback".
	Name string
	// Address is the fallback server's address, in the service's family.
	Address netip.Addr
	// Port is the port to connect to (layer 7 only); 0 means the client's port.
	Port uint16
	// Line is the fallback's line in the file.
	Line int
}

// ProxyProtocol selects a PROXY protocol header sent to layer-7 real servers.
type ProxyProtocol string

// PROXY protocol settings.
const (
	ProxyNone ProxyProtocol = "none"
	ProxyV2   ProxyProtocol = "v2"
)

// Service is a virtual service (VIP): an address and ports clients connect to,
// and the real servers that serve them.
type Service struct {
	// Name identifies the service in the API and logs (letters, digits, _ . -).
	Name string
	// Address is the VIP.
	Address netip.Addr
	// Ports are the ports served, in file order.
	Ports PortRanges
	// Layer is Layer4 or Layer7.
	Layer Layer
	// Forwarding is DirectRouting or Tunnel (layer 4), or SNAT (layer 7).
	Forwarding Forwarding
	// Tunnel is the encapsulation of a Tunnel service (see section_tunnel.go);
	// empty for the other methods.
	Tunnel Encap
	// GUEPort is the outer UDP destination port of EncapGUE; 0 otherwise.
	GUEPort uint16
	// Protocol is TCP, UDP or TCPAndUDP; layer 7 is TCP only. Default TCP.
	Protocol Protocol
	// Persistence is client affinity.
	Persistence Persistence
	// MaglevSize is the Maglev lookup table size: a prime, at least twice the
	// number of real servers, at most MaxMaglevSize. Default DefaultMaglevSize.
	MaglevSize int
	// HealthCheck is how real servers are checked: the first of health_checks
	// when the service gives a list.
	HealthCheck HealthCheck
	// MoreChecks are the further checks of health_checks, run with the first
	// one and on its timing; each has its own Port.
	MoreChecks []HealthCheck
	// HealthMode is how HealthCheck and MoreChecks combine: HealthAll
	// (default) or HealthAny.
	HealthMode HealthMode
	// Fallback takes new clients when every real server is out; nil for none
	// (then new flows are dropped).
	Fallback *Fallback
	// RealServers are the servers behind the VIP, in file order. Empty only
	// when Fallback is set.
	RealServers []RealServer

	// SourceAddress is the layer-7 proxy's source address toward real
	// servers; the zero Addr lets the kernel choose.
	SourceAddress netip.Addr
	// ProxyProtocol sends a PROXY header to real servers (layer 7). Default ProxyNone.
	ProxyProtocol ProxyProtocol
	// ConnectTimeout bounds connecting to a real server (layer 7). Default DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// ClientTimeout closes a connection whose client has been idle this long
	// (layer 7). Default DefaultIdleTimeout.
	ClientTimeout time.Duration
	// ServerTimeout closes a connection whose server has been idle this long
	// (layer 7). Default DefaultIdleTimeout.
	ServerTimeout time.Duration
	// MaxConnections caps the service's concurrent connections (layer 7). 0
	// (the default): a share of the process's file descriptor limit, found at
	// start, that leaves room for health checks, the API and HA (see
	// l7.DefaultMaxConns).
	MaxConnections int
	// MaxConnectionsPerSource caps the concurrent connections of one client
	// address (IPv6: one /64) to the service (layer 7); 0 (the default): no
	// per-source limit.
	MaxConnectionsPerSource int
	// PanicThreshold is the share of the real servers, in percent (0..99), whose
	// health checks may fail without an answer (timeouts, unreachable) within one
	// check interval; when more fail, the load balancer suspects itself (a saturated
	// receive path) rather than the servers and keeps forwarding to them. 0 is off.
	// Default DefaultPanicThreshold for layer 4, 0 for layer 7.
	PanicThreshold int

	// Feedback polls an agent on each real server for its load; nil for none.
	Feedback *Feedback
	// SlowStart ramps a returning server's weight up over this time; 0: at once.
	SlowStart time.Duration
	// Scheduler picks the server of a new client. Default SchedulerMaglev;
	// SchedulerWLC at layer 7 only.
	Scheduler Scheduler

	// Line is the service's line in the file, for later error messages.
	Line int
}

// RealServer is a server behind a virtual service.
type RealServer struct {
	// Name identifies the server in the API (letters, digits, _ . -).
	// Default: its address.
	Name string
	// Address is the server's address, in the service's family.
	Address netip.Addr
	// Port is the port to connect to (layer 7 only); 0 means the port the
	// client connected to. Always 0 at layer 4: direct routing cannot
	// translate ports.
	Port uint16
	// Weight is the share of new clients, 0..65535; 0 takes none. Default DefaultWeight.
	Weight int
	// MaxConnections caps the server's concurrent connections (layer 7); 0 is unlimited.
	MaxConnections int
	// HealthPort is the port the health check connects to: health_check.port
	// when given, else Port when given, else the service's first port.
	HealthPort uint16
	// Forwarding is how a layer-4 server is reached: its forwarding when given,
	// else the service's (DirectRouting or Tunnel); empty at layer 7.
	Forwarding Forwarding
	// FeedbackPort is the feedback agent's port: feedback_port when given,
	// else the service's feedback.port; 0 without feedback.
	FeedbackPort uint16
	// Line is the server's line in the file, for later error messages.
	Line int
}

// Service returns the service with the given name, or nil.
func (c *Config) Service(name string) *Service {
	for i := range c.Services {
		if c.Services[i].Name == name {
			return &c.Services[i]
		}
	}
	return nil
}

// RealServer returns the service's real server with the given name, or nil.
func (s *Service) RealServer(name string) *RealServer {
	for i := range s.RealServers {
		if s.RealServers[i].Name == name {
			return &s.RealServers[i]
		}
	}
	return nil
}

// Summary returns the one-line summary `medialb check` prints for a valid
// file, e.g. "examples/harmonic-vos.yaml: ok: 2 virtual services (1 layer-4,
// 1 layer-7), 4 real servers, 15540 ports".
func (c *Config) Summary() string {
	var l4, l7, rs, ports int
	for _, s := range c.Services {
		switch s.Layer {
		case Layer4:
			l4++
		case Layer7:
			l7++
		}
		rs += len(s.RealServers)
		ports += s.Ports.Count()
	}
	ha := ""
	if c.HA != nil {
		ha = fmt.Sprintf(", HA with %s", c.HA.Peer)
	}
	if by := c.PushedBy(); by != "" {
		ha += fmt.Sprintf(", virtual_services pushed by %s", by)
	}
	if c.BGP != nil {
		ha += fmt.Sprintf(", BGP AS %d to %s", c.BGP.ASN, plural(len(c.BGP.Peers), "peer"))
	}
	return fmt.Sprintf("%s: ok: %s (%d layer-4, %d layer-7), %s, %s%s", c.File,
		plural(len(c.Services), "virtual service"), l4, l7,
		plural(rs, "real server"), plural(ports, "port"), ha)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
