package realserver

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/netif"
	"github.com/medialb/medialb/tables"
)

// TestWatcherHearsGratuitousARP: between rounds, a real server that
// announces a VIP gets its problem at once, and a stranger is logged once;
// the node's own and the HA peer's announcements are no problem.
func TestWatcherHearsGratuitousARP(t *testing.T) {
	ip := netip.MustParseAddr
	vip := ip("192.168.94.110")
	lb, rs, peer, stranger := [6]byte{2, 0, 0, 0, 0, 2}, [6]byte{2, 0, 0, 0, 0, 15}, [6]byte{2, 0, 0, 0, 0, 3}, [6]byte{2, 0, 0, 0, 0, 99}
	var logs bytes.Buffer
	w := NewWatcher(zerolog.New(&logs))
	w.record(Report{Allowed: [][6]byte{peer}, Results: []Result{
		{Target: Target{Service: "T", VIP: vip, Port: 1935, Server: "HT1", Addr: ip("192.168.94.115")}, MAC: rs, HasMAC: true},
	}})
	k := tables.Key{Service: "T", Server: "HT1"}
	if p := w.Problems()[k]; len(p) != 0 {
		t.Fatalf("problems %q before any announcement", p)
	}
	link := &fakeLink{mac: lb, queue: [][]byte{
		netif.GratuitousARP(lb, vip, 1),                  // this node
		netif.GratuitousARP(peer, vip, 1),                // the HA peer
		netif.GratuitousARP(rs, ip("192.168.94.115"), 1), // its own address: fine
		netif.GratuitousARP(rs, vip, 1),                  // HT1 announces the VIP
		netif.GratuitousARP(rs, vip, 2),                  // twice: one problem
		netif.GratuitousARP(stranger, vip, 2),            // someone else
		netif.GratuitousARP(stranger, vip, 2),
	}}
	if err := w.listen(link, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	p := w.Problems()[k]
	if len(p) != 1 || !strings.HasPrefix(p[0], ProblemAnswersARP+" 192.168.94.110 (from 02:00:00:00:00:0f, announced unasked)") {
		t.Errorf("problems %q, want HT1 answering ARP for the VIP", p)
	}
	if n := strings.Count(logs.String(), "announces the VIP"); n != 1 {
		t.Errorf("the stranger was logged %d times, want once:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "02:00:00:00:00:03") {
		t.Errorf("the HA peer was reported:\n%s", logs.String())
	}
}
