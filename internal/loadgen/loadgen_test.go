package loadgen

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/consul-monitor/consul-monitor/internal/consultest"
)

func TestGenerator(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	g := New(c, Config{Nodes: 3, ServicesPerNode: 4, TTLServices: 2, FlipPerMinute: 60, Seed: 1}, slog.New(slog.DiscardHandler))
	if err := g.Register(context.Background()); err != nil {
		t.Fatal(err)
	}
	// 3 node checks, 12 service checks, 2 TTL checks.
	if n := g.Checks(); n != 17 {
		t.Errorf("%d checks managed, want 17", n)
	}
	checks, _, err := c.Health().State(api.HealthAny, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Consul adds serfHealth for its own node.
	if len(checks) != 18 {
		t.Errorf("Consul holds %d checks, want 18", len(checks))
	}
	services, _, err := c.Catalog().Services(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := services["web"]; !ok || len(services) < 5 {
		t.Errorf("services %v", services)
	}

	changed, err := g.FlipRandom(context.Background(), 5)
	if err != nil || len(changed) != 5 {
		t.Fatalf("flipped %d: %v", len(changed), err)
	}
	consultest.WaitFor(t, 5*time.Second, "flips visible in Consul", func() error {
		checks, _, err := c.Health().State(api.HealthAny, nil)
		if err != nil {
			return err
		}
		got := map[string]string{}
		for _, hc := range checks {
			got[hc.Node+"/"+hc.CheckID] = hc.Status
		}
		// A check chosen twice ends with the last status given.
		want := map[string]string{}
		for _, ch := range changed {
			want[ch.Node+"/"+ch.CheckID] = ch.Status
		}
		for k, status := range want {
			if got[k] != status {
				return fmt.Errorf("%s is %s in Consul, want %s", k, got[k], status)
			}
		}
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	before := g.Flips()
	if err := g.Run(ctx); err != nil {
		t.Fatal(err)
	}
	// 60 per minute of 17 checks is 17 a second.
	if flips := g.Flips() - before; flips < 17 || flips > 51 {
		t.Errorf("%d flips in 2.5 s at 17 a second", flips)
	}
}
