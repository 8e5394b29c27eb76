package l7

import (
	"testing"
	"time"
)

// TestLeastConn: with LeastConn, new clients holding their connections
// alternate between two equal servers (the one with fewer connections
// takes the next), and a server of weight 200 holds twice as many; a
// persistent client keeps its server.
func TestLeastConn(t *testing.T) {
	for _, tc := range []struct {
		name    string
		weights []uint32
		clients int
		want    map[string]int
	}{
		{"equal weights", []uint32{100, 100}, 40, map[string]int{"RS1": 20, "RS2": 20}},
		{"weighted", []uint32{100, 200}, 30, map[string]int{"RS1": 10, "RS2": 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, 1, tc.weights, ServiceOptions{LeastConn: true})
			got := map[string]int{}
			firstServer := ""
			for i := range tc.clients {
				client := loopAddr()
				c, _, server := l.hello(client, 0)
				defer c.Close()
				got[server]++
				// At every step the load per weight stays even, within one connection.
				w1, w2 := int(tc.weights[0]), int(tc.weights[1])
				if d := got["RS1"]*w2 - got["RS2"]*w1; d > max(w1, w2) || -d > max(w1, w2) {
					t.Fatalf("after %d clients: %v, uneven for weights %v", i+1, got, tc.weights)
				}
				if i == 0 {
					firstServer = server
					// The same client again, while its server is the busier one.
					if again := l.serverOf(client, 0); again != server {
						t.Fatalf("persistent client moved from %s to %s", server, again)
					}
					// The proxy ends that second connection on its own time; until it
					// has, the server counts it, and the next picks would see it.
					deadline := time.Now().Add(5 * time.Second)
					for l.stats(server).Active != 1 {
						if time.Now().After(deadline) {
							t.Fatalf("%s still counts %d connections, want 1", server, l.stats(server).Active)
						}
						time.Sleep(time.Millisecond)
					}
				}
			}
			if got["RS1"] != tc.want["RS1"] || got["RS2"] != tc.want["RS2"] {
				t.Errorf("held connections per server %v, want %v (first client on %s)", got, tc.want, firstServer)
			}
		})
	}
}
