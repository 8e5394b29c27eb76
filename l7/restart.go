package l7

import (
	"errors"
	"fmt"
	"slices"
)

// RestartListeners closes every listening socket and opens it again (the
// WebUI's "restart the layer-7 listeners", e.g. after the VIP's interface was
// replaced). Established connections are not touched; clients connecting in
// the moment between close and open are refused. It returns the number of
// listeners open afterwards and one error naming each address that failed.
func (p *Proxy) RestartListeners() (int, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return 0, errors.New("restart layer-7 listeners: proxy is closed")
	}
	old := make([]*listener, 0, len(p.listeners))
	for _, l := range p.listeners {
		old = append(old, l)
	}
	slices.SortFunc(old, func(a, b *listener) int { return a.addr.Compare(b.addr) })
	for _, l := range old {
		l.ln.Close()
		<-l.done
		delete(p.listeners, l.addr)
	}
	var errs []error
	for _, o := range old {
		ln, err := listenFreebind(p.ctx, o.addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		l := &listener{addr: o.addr, ln: ln, done: make(chan struct{})}
		p.listeners[o.addr] = l
		p.wg.Add(1)
		go p.acceptLoop(l)
	}
	n := len(p.listeners)
	p.mu.Unlock()
	p.log.Info().Int("listeners", n).Int("failed", len(errs)).Msg("layer-7 listeners restarted")
	if err := errors.Join(errs...); err != nil {
		return n, fmt.Errorf("restart layer-7 listeners: %w", err)
	}
	return n, nil
}
