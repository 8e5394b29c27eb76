package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/medialb/medialb/api"
)

// The demo logs in with the example's account; its hash is of this password.
const demoUser, demoPassword = "loadbalancer", "loadbalancer"

// apiGet fetches path from medialb's API on the load balancer, from the client
// namespace, with the demo's credentials.
func (d *demo) apiGet(path string) ([]byte, error) {
	lb := d.lab.LBs[0]
	req, err := http.NewRequestWithContext(d.ctx, "GET", "https://"+lb.Addr4.String()+":9443"+path, nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(demoUser, demoPassword)
	resp, err := d.lab.HTTPClient(d.lab.Client.Sources4[0]).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	return body, nil
}

func (d *demo) overview() (api.Overview, error) {
	var ov api.Overview
	body, err := d.apiGet("/api/v1/overview")
	if err != nil {
		return ov, err
	}
	return ov, json.Unmarshal(body, &ov)
}

// waitChecked waits until every real server has had its first health verdict.
func (d *demo) waitChecked(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(d.ctx, timeout)
	defer cancel()
	var last string
	for ctx.Err() == nil {
		ov, err := d.overview()
		if err == nil {
			pending := 0
			for _, s := range ov.Services {
				for _, r := range s.RealServers {
					if r.Health == "unknown" {
						pending++
					}
				}
			}
			if pending == 0 {
				fmt.Println("   every real server has been health-checked")
				return nil
			}
			last = fmt.Sprintf("%d servers not checked yet", pending)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("health checks: %s", last)
}

// printOverview prints the System Overview as a table, as the WebUI shows it.
func (d *demo) printOverview() error {
	ov, err := d.overview()
	if err != nil {
		return err
	}
	fmt.Printf("   node %s, %s\n", ov.Node, ov.Time.Format(time.RFC3339))
	fmt.Printf("   %-22s %-16s %-22s %-5s %-8s %-15s %-9s %6s\n", "VIRTUAL SERVICE", "IP", "PORTS", "LAYER", "PROTO", "METHOD", "STATE", "CONNS")
	for _, s := range ov.Services {
		fmt.Printf("   %-22s %-16s %-22s %-5d %-8s %-15s %-9s %6d\n", s.Name, s.Address, s.Ports, s.Layer, s.Protocol, s.Forwarding, s.State, s.Connections)
		for _, r := range s.RealServers {
			health := r.Health
			if r.HealthReason != "" && r.Health != "up" {
				health += " (" + r.HealthReason + ")"
			}
			fmt.Printf("     └ %-18s %-16s weight %-5d %-7s conns %-5d clients %-5d health %s\n",
				r.Name, r.Address, r.Weight, r.State, r.Connections, r.ActiveClients, health)
		}
	}
	body, err := d.apiGet("/metrics")
	if err != nil {
		return err
	}
	fmt.Println("   dataplane (from /metrics):")
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, "medialb_dataplane_") || strings.HasPrefix(l, "medialb_config_reloads") {
			fmt.Println("     " + l)
		}
	}
	return nil
}
