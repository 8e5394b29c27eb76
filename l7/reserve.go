package l7

import (
	"errors"
	"net"
	"net/netip"
)

// Reserve binds the listeners of addrs that are not open yet, without serving
// them, so that a reload learns before it changes anything whether every layer-7
// listener it needs can be bound. The next Apply serves the reserved listeners it
// wants; Unreserve (or Close) closes the rest. On error nothing stays reserved.
func (p *Proxy) Reserve(addrs []netip.AddrPort) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("reserve layer-7 listeners: proxy is closed")
	}
	if p.reserved == nil {
		p.reserved = map[netip.AddrPort]*net.TCPListener{}
	}
	var errs []error
	for _, a := range addrs {
		a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		if _, open := p.listeners[a]; open {
			continue
		}
		if _, done := p.reserved[a]; done {
			continue
		}
		ln, err := listenFreebind(p.ctx, a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.reserved[a] = ln
	}
	if err := errors.Join(errs...); err != nil {
		p.unreserveLocked()
		return err
	}
	return nil
}

// Unreserve closes the listeners Reserve bound and Apply did not take.
func (p *Proxy) Unreserve() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unreserveLocked()
}

func (p *Proxy) unreserveLocked() {
	for a, ln := range p.reserved {
		ln.Close()
		delete(p.reserved, a)
	}
}
