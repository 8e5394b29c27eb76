package feedback

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/medialb/medialb/tables"
)

// agent listens on loopback and answers every connection with reply
// (nothing at all, and holds the connection, when reply is "hang").
func agent(t *testing.T, reply string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if reply == "hang" {
				go func() { time.Sleep(2 * time.Second); c.Close() }()
				continue
			}
			c.Write([]byte(reply))
			c.Close()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

func TestPoll(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/load" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, "40%\n")
	}))
	defer srv.Close()
	web := netip.MustParseAddrPort(strings.TrimPrefix(srv.URL, "http://"))
	closed := agent(t, "")
	closedAddr := closed
	for _, tc := range []struct {
		name    string
		t       Target
		percent int
		state   Agent
		err     string
	}{
		{name: "agent line", t: Target{Protocol: ProtoAgent, Addr: agent(t, "75%\nignored\n")}, percent: 75},
		{name: "agent drain", t: Target{Protocol: ProtoAgent, Addr: agent(t, "drain\n")}, percent: -1, state: AgentDrain},
		{name: "lborg idle, no newline", t: Target{Protocol: ProtoLBOrg, Addr: agent(t, "10")}, percent: 10},
		{name: "http", t: Target{Protocol: ProtoHTTP, Addr: web, Path: "/load"}, percent: 40},
		{name: "http 404", t: Target{Protocol: ProtoHTTP, Addr: web, Path: "/nope"}, err: "status 404"},
		{name: "garbage", t: Target{Protocol: ProtoAgent, Addr: agent(t, "hello\n")}, err: `parse agent answer "hello"`},
		{name: "silent agent times out", t: Target{Protocol: ProtoAgent, Addr: agent(t, "hang")}, err: "timeout"},
		{name: "empty answer", t: Target{Protocol: ProtoAgent, Addr: closedAddr}, err: "neither a percentage"},
		{name: "nobody listens", t: Target{Protocol: ProtoAgent, Addr: netip.MustParseAddrPort("127.0.0.1:1")}, err: "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.t.Timeout = 300 * time.Millisecond
			r := Poll(context.Background(), tc.t)
			if tc.err != "" {
				if r.Err == nil || !strings.Contains(r.Err.Error(), tc.err) {
					t.Fatalf("Poll = %+v, want an error containing %q", r, tc.err)
				}
				return
			}
			if r.Err != nil || r.Answer.Percent != tc.percent || r.Answer.State != tc.state {
				t.Fatalf("Poll = %+v, want percent %d state %v", r, tc.percent, tc.state)
			}
		})
	}
}

func TestPollerSet(t *testing.T) {
	got := make(chan tables.Key, 100)
	p := NewPoller(func(k tables.Key, r Result) {
		if r.Err == nil {
			got <- k
		}
	})
	defer p.Close()
	a, b := agent(t, "50%\n"), agent(t, "60%\n")
	ka, kb := tables.Key{Service: "s", Server: "a"}, tables.Key{Service: "s", Server: "b"}
	tgt := func(k tables.Key, addr netip.AddrPort) Target {
		return Target{Key: k, Addr: addr, Protocol: ProtoAgent, Interval: 20 * time.Millisecond, Timeout: 10 * time.Millisecond}
	}
	p.Set([]Target{tgt(ka, a), tgt(kb, b)})
	seen := map[tables.Key]bool{}
	for deadline := time.After(2 * time.Second); !seen[ka] || !seen[kb]; {
		select {
		case k := <-got:
			seen[k] = true
		case <-deadline:
			t.Fatalf("answers from %v only", seen)
		}
	}
	p.Set([]Target{tgt(ka, a)}) // b removed: its polls stop
	time.Sleep(50 * time.Millisecond)
	for len(got) > 0 {
		<-got
	}
	time.Sleep(100 * time.Millisecond)
	for len(got) > 0 {
		if k := <-got; k == kb {
			t.Fatal("a removed target is still polled")
		}
	}
}
