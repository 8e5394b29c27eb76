package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"

	"github.com/medialb/medialb/api"
	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/ha"
	"github.com/medialb/medialb/l7"
	"github.com/medialb/medialb/netif"
)

// This file is the daemon's configuration: loading it and reloading it, all or
// nothing.

// loadConfig reads the configuration as this node runs it: on the secondary
// of a pair, with the virtual_services its primary pushed (config.LoadNode).
func loadConfig(path string) (*config.Config, error) { return config.LoadNode(path) }

// Reload re-reads the configuration file. An invalid file, or one the tables, the
// dataplane, the listeners or keepalived would refuse, is refused with every
// problem in the error, and the running configuration stays whole.
func (d *Daemon) Reload() error {
	_, err := d.ReloadReport()
	return err
}

// ReloadReport is Reload, and also returns the settings that changed but need a
// restart to take effect (node.state_dir, node.queues, ...); the rest of the
// file is in force.
func (d *Daemon) ReloadReport() (restart []string, err error) {
	restart, err = d.reload()
	d.reloads.record(err)
	if err == nil {
		d.hs.kick() // the primary pushes its virtual_services to the peer
	}
	return restart, err
}

// prepared is a reload checked in full: what it needs bound is bound, keepalived's
// configuration passed its test. commit puts it in force; abort drops it.
type prepared struct {
	cfg *config.Config
	api *api.Update // nil without an API
	ha  *ha.Reload  // nil without HA
}

func (p *prepared) abort(d *Daemon) {
	p.api.Abort()
	p.ha.Abort()
	d.proxy.Unreserve()
}

func (d *Daemon) reload() ([]string, error) {
	if !d.started.Load() {
		// The API is up before HA and the last parts of Start; a reload now would
		// race them.
		return nil, fmt.Errorf("reload %s refused: medialb is still starting (try again in a moment)", d.path)
	}
	text := readText(d.path)
	cfg, err := loadConfig(d.path)
	if err != nil {
		return nil, fmt.Errorf("reload %s refused, running configuration kept: %w", d.path, err)
	}
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	old := d.controller().Config()
	p, err := d.prepare(old, cfg)
	if err != nil {
		return nil, fmt.Errorf("reload %s refused, running configuration kept: %w", d.path, err)
	}
	err = d.commit(p)
	d.inForce(cfg, text) // committed, with errors or not
	if err != nil {
		return nil, fmt.Errorf("reload %s applied with errors: %w", d.path, err)
	}
	restart := restartNeeded(old, cfg)
	ev := d.log.Info().Str("config", d.path).Str("summary", cfg.Summary())
	if len(restart) > 0 {
		// The message stays the same for whoever matches it; the field says it.
		ev = ev.Str("restart_needed", strings.Join(restart, ", "))
	}
	ev.Msg("configuration reloaded")
	return restart, nil
}

// prepare checks everything the new configuration needs before anything changes:
// what cannot change without a restart, the tables, the steering keys, the
// layer-7 and API listeners (bound now, served at commit), the API's users and
// certificate, keepalived's configuration test and the HA sync listener.
func (d *Daemon) prepare(old, cfg *config.Config) (*prepared, error) {
	if old.Node.Interface != cfg.Node.Interface {
		return nil, fmt.Errorf("node.interface changed from %s to %s (restart medialb for that)", old.Node.Interface, cfg.Node.Interface)
	}
	if d.dp == nil && hasLayer(cfg, config.Layer4) {
		return nil, errors.New("the first layer-4 service needs a restart to attach the dataplane")
	}
	if (old.HA == nil) != (cfg.HA == nil) {
		return nil, errors.New("the ha section was added or removed (restart medialb for that)")
	}
	if (d.api == nil) != (cfg.API.Listen == "") {
		return nil, errors.New("the api section was added or removed (restart medialb for that)")
	}
	if err := d.controller().Check(cfg); err != nil {
		return nil, err
	}
	if d.dp != nil {
		if err := d.dp.CheckVIPs(steerVIPs(cfg, d.canTX)); err != nil {
			return nil, err
		}
	}
	p := &prepared{cfg: cfg}
	if err := d.prepareParts(p); err != nil {
		p.abort(d)
		return nil, err
	}
	return p, nil
}

// prepareParts binds the listeners and checks the API's and keepalived's parts of p.
func (d *Daemon) prepareParts(p *prepared) (err error) {
	cfg := p.cfg
	if err := d.proxy.Reserve(l7Addrs(cfg)); err != nil {
		return err
	}
	if d.api != nil {
		ac, err := apiConfig(cfg)
		if err != nil {
			return err
		}
		if p.api, err = d.api.Prepare(ac); err != nil {
			return err
		}
	}
	if d.ha != nil {
		if p.ha, err = d.ha.PrepareReload(cfg.Node.Name, *cfg.HA, vipAddrs(cfg)); err != nil {
			return err
		}
	}
	return nil
}

// commit puts a prepared reload in force. What fails here (rare: the kernel
// refusing an address) is reported; the rest is applied.
func (d *Daemon) commit(p *prepared) error {
	cfg := p.cfg
	var errs []error
	var up []netip.Addr
	if cfg.HA == nil {
		var err error
		if up, err = d.vips.Set(localVIPs(cfg)); err != nil {
			errs = append(errs, err)
		}
	} else if err := p.ha.Commit(); err != nil {
		errs = append(errs, err)
	}
	if d.neigh != nil {
		d.neigh.Want(l4Addrs(cfg))
		d.wantTunnels(cfg)
	}
	if err := d.controller().Reload(cfg); err != nil {
		// Check built the same tables a moment ago: only a bug gets here.
		p.abort(d)
		return errors.Join(append(errs, err)...)
	}
	if d.dp != nil {
		if err := d.dp.SetVIPs(steerVIPs(cfg, d.canTX)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := d.proxy.Apply(d.holder.Load(), l7Options(cfg, l7.NoFile())); err != nil {
		errs = append(errs, err)
	}
	d.proxy.Unreserve()
	d.mon.Set(healthTargets(cfg))
	d.fbp.Set(feedbackTargets(cfg))
	if p.api != nil {
		p.api.Commit()
	}
	if d.ha != nil {
		d.restartConfigSync(cfg)
	}
	for _, a := range up {
		if err := netif.Announce(cfg.Node.Interface, a); err != nil {
			d.log.Warn().Err(err).Str("vip", a.String()).Msg("VIP not announced")
		}
	}
	return errors.Join(errs...)
}

// restartNeeded names the settings that differ between old and cfg and take
// effect only at the next start.
func restartNeeded(old, cfg *config.Config) []string {
	var out []string
	for _, c := range []struct {
		name    string
		changed bool
	}{
		{"node.state_dir", old.Node.StateDir != cfg.Node.StateDir},
		{"node.queues", old.Node.Queues != cfg.Node.Queues},
		{"node.xdp_mode", old.Node.XDPMode != cfg.Node.XDPMode},
		{"node.zero_copy", old.Node.ZeroCopy != cfg.Node.ZeroCopy},
		{"node.busy_poll", old.Node.BusyPoll != cfg.Node.BusyPoll},
		{"bgp", !reflect.DeepEqual(old.BGP, cfg.BGP)},
	} {
		if c.changed {
			out = append(out, c.name)
		}
	}
	return out
}

// apiConfig is the API's configuration from cfg, api.listen's empty host
// replaced by the node's own address (apiListen).
func apiConfig(cfg *config.Config) (api.Config, error) {
	listen, err := apiListen(cfg)
	if err != nil {
		return api.Config{}, err
	}
	var users []api.User
	for _, u := range cfg.API.Users {
		users = append(users, api.User{Name: u.Name, PasswordHash: u.PasswordHash})
	}
	return api.Config{Listen: listen, TLSCert: cfg.API.TLSCert, TLSKey: cfg.API.TLSKey,
		StateDir: cfg.Node.StateDir, Users: users, Version: Version}, nil
}

// l7Addrs are the addresses the layer-7 services listen on.
func l7Addrs(cfg *config.Config) []netip.AddrPort {
	var out []netip.AddrPort
	for _, s := range cfg.Services {
		if s.Layer != config.Layer7 || !s.Protocol.Has(config.TCP) {
			continue
		}
		for _, r := range s.Ports {
			for port := int(r.Lo); port <= int(r.Hi); port++ {
				out = append(out, netip.AddrPortFrom(s.Address.Unmap(), uint16(port)))
			}
		}
	}
	return slices.Compact(out)
}
