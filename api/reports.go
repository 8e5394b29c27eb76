package api

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// Reports: the numbers of the overview sampled in memory for the WebUI's graphs.
// Every SampleEvery (default 5 s) the sampler takes the overview once; each
// virtual service and real server keeps its last ReportPoints samples (an hour
// at 5 s) and, in a second ring, ReportPoints points of DayFactor samples each
// (a day of 2-minute points). Memory is bounded: 2 x ReportPoints points of
// PointBytes bytes per series (79 KiB), at most MaxSeries series (79 MiB at the
// very most; the guide's 2 VIPs with 4 servers: 0.5 MiB).

// PointBytes is the memory one Point takes (its state string shares constant data).
const PointBytes = 56

const (
	// DefaultSampleEvery is the sampling interval of the reports.
	DefaultSampleEvery = 5 * time.Second
	// ReportPoints is the length of each ring (the hour, the day).
	ReportPoints = 720
	// DayFactor samples make one point of the day ring.
	DayFactor = 24
	// MaxSeries bounds the services and servers sampled; more are not graphed.
	MaxSeries = 1024
)

// Point is one sample of one virtual service or real server.
type Point struct {
	T       int64   `json:"t"`       // Unix seconds
	Conns   int64   `json:"conns"`   // established layer-7 connections
	Clients int64   `json:"clients"` // persistence entries (layer-4 clients)
	PPS     float64 `json:"pps"`     // packets per second since the previous point (layer 4)
	BPS     float64 `json:"bps"`     // bits per second since the previous point
	State   string  `json:"state"`   // online, drain, halt, down (a service: online, degraded, down)
}

type ring struct {
	pts  []Point
	next int
	full bool
}

func (r *ring) add(p Point) {
	if r.pts == nil {
		r.pts = make([]Point, ReportPoints)
	}
	r.pts[r.next] = p
	r.next = (r.next + 1) % len(r.pts)
	if r.next == 0 {
		r.full = true
	}
}

func (r *ring) points() []Point {
	if !r.full {
		return append([]Point{}, r.pts[:r.next]...)
	}
	return append(append([]Point{}, r.pts[r.next:]...), r.pts[:r.next]...)
}

type series struct {
	service, server string
	layer           int
	hour, day       ring
	// the counters at the previous sample and at the start of the day point
	lastT, dayT         time.Time
	lastPkts, lastBytes uint64
	dayPkts, dayBytes   uint64
	dayN                int
	dayWorst            string
	seen                bool
}

// stateRank orders states by how bad they are, for a day point's worst state.
var stateRank = map[string]int{"online": 0, "drain": 1, "degraded": 2, "halt": 3, "down": 4}

func rate(now, before uint64, d time.Duration) float64 {
	if now < before || d <= 0 { // counters reset (restart): no rate for this point
		return 0
	}
	return float64(now-before) / d.Seconds()
}

// sample adds one point. A series first seen after the sampler's first take
// appeared since the previous one (a service or server added): its counters
// started at zero within the last interval, so they count for that interval.
func (s *series) sample(t time.Time, since time.Duration, conns, clients int64, pkts, bytes uint64, state string) {
	if !s.seen {
		s.seen, s.lastT, s.dayT = true, t, t
		s.lastPkts, s.lastBytes, s.dayPkts, s.dayBytes = pkts, bytes, pkts, bytes
		s.dayWorst = state
		if since > 0 {
			s.lastT, s.dayT = t.Add(-since), t.Add(-since)
			s.lastPkts, s.lastBytes, s.dayPkts, s.dayBytes = 0, 0, 0, 0
		}
	}
	d := t.Sub(s.lastT)
	s.hour.add(Point{T: t.Unix(), Conns: conns, Clients: clients,
		PPS: rate(pkts, s.lastPkts, d), BPS: 8 * rate(bytes, s.lastBytes, d), State: state})
	s.lastT, s.lastPkts, s.lastBytes = t, pkts, bytes
	if stateRank[state] > stateRank[s.dayWorst] {
		s.dayWorst = state
	}
	if s.dayN++; s.dayN >= DayFactor {
		d := t.Sub(s.dayT)
		s.day.add(Point{T: t.Unix(), Conns: conns, Clients: clients,
			PPS: rate(pkts, s.dayPkts, d), BPS: 8 * rate(bytes, s.dayBytes, d), State: s.dayWorst})
		s.dayN, s.dayT, s.dayPkts, s.dayBytes, s.dayWorst = 0, t, pkts, bytes, state
	}
}

// webState is the Server's state for the WebUI's pages beyond the overview.
type webState struct {
	stage         staging // configuration changes not yet applied
	reports       sampler // the reports' samples
	cancelSampler context.CancelFunc
	samplerDone   chan struct{}
}

// webRoutes adds the endpoints of the pages beyond the System Overview.
func (s *Server) webRoutes(mux *http.ServeMux) {
	s.configRoutes(mux)
	mux.HandleFunc("GET /api/v1/logs", s.handleLogs)
	mux.HandleFunc("GET /api/v1/reports", s.handleReports)
	s.maintenanceRoutes(mux)
	s.backupRoutes(mux)
}

// startSampler samples the overview for the reports until stopSampler. Call
// with s.mu held.
func (s *Server) startSampler() {
	ctx, cancel := context.WithCancel(context.Background())
	s.web.cancelSampler, s.web.samplerDone = cancel, make(chan struct{})
	go func() {
		defer close(s.web.samplerDone)
		s.runSampler(ctx, s.sampleEvery())
	}()
}

// stopSampler stops the sampler and waits for it. Call with s.mu held.
func (s *Server) stopSampler() {
	if s.web.cancelSampler != nil {
		s.web.cancelSampler()
		<-s.web.samplerDone
		s.web.cancelSampler = nil
	}
}

// sampler keeps the series. Safe for concurrent use.
type sampler struct {
	mu     sync.Mutex
	series map[string]*series
	order  []string
	last   time.Time // the previous take, zero before the first
}

func (sm *sampler) take(ov Overview, t time.Time) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	var since time.Duration // for series new since the previous take
	if !sm.last.IsZero() {
		since = t.Sub(sm.last)
	}
	sm.last = t
	if sm.series == nil {
		sm.series = map[string]*series{}
	}
	get := func(key, svc, srv string, layer int) *series {
		s := sm.series[key]
		if s == nil {
			if len(sm.series) >= MaxSeries {
				return nil
			}
			s = &series{service: svc, server: srv, layer: layer}
			sm.series[key] = s
			sm.order = append(sm.order, key)
		}
		s.layer = layer
		return s
	}
	for _, svc := range ov.Services {
		if s := get(svc.Name, svc.Name, "", svc.Layer); s != nil {
			s.sample(t, since, svc.Connections, svc.ActiveClients, svc.Packets, svc.Bytes, svc.State)
		}
		for _, rs := range svc.RealServers {
			if s := get(svc.Name+"/"+rs.Name, svc.Name, rs.Name, svc.Layer); s != nil {
				s.sample(t, since, rs.Connections, rs.ActiveClients, rs.Packets, rs.Bytes, rs.State)
			}
		}
	}
}

// run samples every d until ctx is done.
func (s *Server) runSampler(ctx context.Context, d time.Duration) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	s.web.reports.take(s.overview(), s.now())
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.web.reports.take(s.overview(), s.now())
		}
	}
}

// Series is one graphed virtual service (Server empty) or real server.
type Series struct {
	Service string  `json:"service"`
	Server  string  `json:"server,omitempty"`
	Layer   int     `json:"layer"`
	Points  []Point `json:"points"`
}

// ReportsAnswer is the answer to GET /api/v1/reports.
type ReportsAnswer struct {
	Range    string   `json:"range"`    // "hour" or "day"
	Interval float64  `json:"interval"` // seconds between points
	Series   []Series `json:"series"`
}

func (s *Server) handleReports(w http.ResponseWriter, r *http.Request) {
	rng := r.URL.Query().Get("range")
	if rng == "" {
		rng = "hour"
	}
	if rng != "hour" && rng != "day" {
		writeError(w, http.StatusBadRequest, "range "+rng+": want hour or day")
		return
	}
	only := r.URL.Query().Get("service")
	every := s.sampleEvery()
	ans := ReportsAnswer{Range: rng, Interval: every.Seconds(), Series: []Series{}}
	if rng == "day" {
		ans.Interval *= DayFactor
	}
	s.web.reports.mu.Lock()
	for _, key := range s.web.reports.order {
		se := s.web.reports.series[key]
		if only != "" && se.service != only {
			continue
		}
		pts := se.hour.points()
		if rng == "day" {
			pts = se.day.points()
		}
		ans.Series = append(ans.Series, Series{Service: se.service, Server: se.server, Layer: se.layer, Points: pts})
	}
	s.web.reports.mu.Unlock()
	writeJSON(w, http.StatusOK, ans)
}

func (s *Server) sampleEvery() time.Duration {
	if s.cfg.SampleEvery > 0 {
		return s.cfg.SampleEvery
	}
	return DefaultSampleEvery
}
