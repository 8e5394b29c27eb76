package control

import "github.com/medialb/medialb/tables"

// This file is the operators' states as an HA pair exchanges them (ha.Admin):
// drain and halt by "service/server", online as the absence of an entry.

// AdminStates returns the operators' states other than online, keyed
// "service/server" (tables.Key.String).
func (c *Controller) AdminStates() map[string]string {
	cfg := c.Config()
	m := map[string]string{}
	for _, s := range cfg.Services {
		for _, r := range s.RealServers {
			if st := c.Admin(s.Name, r.Name); st != tables.StateOnline {
				m[Key{Service: s.Name, Server: r.Name}.String()] = st.String()
			}
		}
	}
	return m
}

// ApplyAdminStates makes this node's operators' states equal to states, the
// other node's AdminStates: a server of this node's configuration missing
// from states goes online; an entry this node cannot apply (an unknown state
// name or server) is left out.
func (c *Controller) ApplyAdminStates(states map[string]string) {
	cfg := c.Config()
	for _, s := range cfg.Services {
		for _, r := range s.RealServers {
			want := tables.StateOnline
			if v, ok := states[Key{Service: s.Name, Server: r.Name}.String()]; ok {
				st, ok := ParseAdminState(v)
				if !ok {
					continue
				}
				want = st
			}
			if c.Admin(s.Name, r.Name) == want {
				continue
			}
			if err := c.SetAdmin(s.Name, r.Name, want); err != nil {
				c.log.Error().Err(err).Msg("HA: the master's administrative state not applied")
				continue
			}
			c.log.Info().Str("service", s.Name).Str("server", r.Name).Str("state", want.String()).
				Msg("HA: administrative state taken from the master")
		}
	}
}
