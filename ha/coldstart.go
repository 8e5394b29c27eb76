package ha

import (
	"fmt"
	"time"
)

// DefaultStartupWait bounds how long keepalived waits at start for the peer (see
// Options.StartupWait).
const DefaultStartupWait = 3 * time.Second

// Cold start of a pair without preemption: keepalived makes whichever node's
// master-down timer runs out first the master, so of two nodes powered up
// together the one whose keepalived started first won, and with preempt false
// the primary never took over. So each node holds its keepalived until the peer's
// first sync hello says who should lead:
//
//   - the peer is master already: start (this node becomes the backup);
//   - the peer has a lower (or the same) priority: start at once (this node is the
//     primary, or keepalived breaks the tie);
//   - the peer has the higher priority and is not master yet: keep waiting until it
//     is, so the primary becomes master first;
//
// and in any case no longer than StartupWait: a lone node still takes the VIPs.

// startGate holds keepalived's first start until open is called.
type startGate struct {
	ch   chan struct{}
	open func(reason string)
}

// holdStart makes the supervisor wait for the gate, opened by heardPeer or after
// wait.
func (n *Node) holdStart(wait time.Duration) {
	ch := make(chan struct{})
	var opened bool
	n.gate = &startGate{ch: ch}
	n.gate.open = func(reason string) {
		n.mu.Lock()
		was := opened
		opened = true
		n.mu.Unlock()
		if was {
			return
		}
		close(ch)
		n.log.Info().Str("reason", reason).Msg("HA: keepalived starts")
	}
	n.sup.gate = ch
	t := time.AfterFunc(wait, func() { n.gate.open(fmt.Sprintf("no word from the peer within %s", wait)) })
	go func() {
		select {
		case <-ch:
		case <-n.ctx.Done():
		}
		t.Stop()
	}()
	n.log.Info().Dur("up_to", wait).Msg("HA: keepalived waits for the peer's sync hello, so that the higher priority becomes master")
}

// heardPeer opens the start gate when the peer's hello says this node may start.
func (n *Node) heardPeer(h hello) {
	if n.gate == nil {
		return
	}
	n.mu.Lock()
	mine := int(n.settings.Priority)
	n.mu.Unlock()
	switch {
	case h.Role == RoleMaster:
		n.gate.open("the peer is master")
	case h.Priority < mine:
		n.gate.open(fmt.Sprintf("this node has the higher priority (%d, the peer %d)", mine, h.Priority))
	case h.Priority == mine:
		n.gate.open(fmt.Sprintf("the peer has the same priority %d", mine))
	}
}
