package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// overview is the part of medialb's GET /api/v1/overview the check reads.
type overview struct {
	Services []struct {
		Name        string `json:"name"`
		RealServers []struct {
			Name   string `json:"name"`
			Health string `json:"health"`
		} `json:"real_servers"`
	} `json:"services"`
}

// waitHealthy polls the load balancer's overview (base: https://HOST:PORT, userPass:
// USER:PASSWORD) until every real server of every service is healthy, or wait has
// passed. The probes start after that: a server still coming up would otherwise get no
// clients, and persistence would keep them from it.
func waitHealthy(ctx context.Context, base, userPass string, wait time.Duration) error {
	user, pass, _ := strings.Cut(userPass, ":")
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the lab's API has a self-signed certificate
	}}
	start := time.Now()
	for {
		down, err := notUp(ctx, c, base+"/api/v1/overview", user, pass)
		if err == nil && len(down) == 0 {
			fmt.Printf("medialb: every real server up after %s\n", time.Since(start).Round(time.Second))
			return nil
		}
		if time.Since(start) > wait {
			if err != nil {
				return fmt.Errorf("load balancer API %s: %w", base, err)
			}
			return fmt.Errorf("real servers not up after %s: %s", wait, strings.Join(down, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// notUp lists SERVICE/SERVER=HEALTH for every real server whose health is not "up".
func notUp(ctx context.Context, c *http.Client, url, user, pass string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(user, pass)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var o overview
	if err := json.NewDecoder(resp.Body).Decode(&o); err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	var down []string
	n := 0
	for _, s := range o.Services {
		for _, rs := range s.RealServers {
			n++
			if rs.Health != "up" {
				down = append(down, s.Name+"/"+rs.Name+"="+rs.Health)
			}
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("GET %s: no real servers in the overview", url)
	}
	return down, nil
}
