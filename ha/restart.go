package ha

import (
	"errors"
	"syscall"
)

// RestartKeepalived stops the running keepalived with SIGTERM; the supervisor
// starts it again at once (the WebUI's "restart keepalived"). A master gives
// the VIPs up while keepalived is down, so the peer takes them over. It
// returns the pid of the keepalived it stopped.
func (n *Node) RestartKeepalived() (int, error) {
	pid := n.sup.Pid()
	if pid == 0 || !n.sup.signal(syscall.SIGTERM) {
		return 0, errors.New("restart keepalived: it is not running (the supervisor starts it again; see the log)")
	}
	n.log.Warn().Int("pid", pid).Msg("HA: keepalived restarted by an operator; the VIPs move to the peer while it is down")
	return pid, nil
}
