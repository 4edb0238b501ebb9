package consul

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/consul-monitor/consul-monitor/internal/consultest"
	"github.com/consul-monitor/consul-monitor/internal/health"
)

// countingTransport counts the HTTP requests the client sends.
type countingTransport struct {
	next     http.RoundTripper
	requests atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.requests.Add(1)
	return c.next.RoundTrip(r)
}

func evaluate(t *testing.T, c *Client) map[string]health.InstanceHealth {
	t.Helper()
	snap, err := c.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]health.InstanceHealth{}
	for _, ih := range health.Evaluate(snap).Instances {
		out[ih.ID()] = ih
	}
	return out
}

// waitForInstance polls until the instance id is in the snapshot and cond
// holds for it.
func waitForInstance(t *testing.T, c *Client, id string, what string, cond func(health.InstanceHealth) bool) health.InstanceHealth {
	t.Helper()
	var got health.InstanceHealth
	consultest.WaitFor(t, 15*time.Second, id+" "+what, func() error {
		var ok bool
		got, ok = evaluate(t, c)[id]
		if !ok {
			return fmt.Errorf("%s not in the snapshot", id)
		}
		if !cond(got) {
			return fmt.Errorf("%s is %s with checks %+v", id, got.Status, got.Checks)
		}
		return nil
	})
	return got
}

func TestSnapshotAgainstConsul(t *testing.T) {
	agent := consultest.Start(t)
	consulAPI := agent.Client()
	counter := &countingTransport{next: http.DefaultTransport}
	cfg := agent.Config()
	cfg.HttpClient = &http.Client{Transport: counter}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}

	// web-1 on the agent's node, with no address of its own, driven by a TTL check.
	err = consulAPI.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "web-1", Name: "web", Port: 8080, Tags: []string{"v1"},
		Check: &api.AgentServiceCheck{CheckID: "web-1-ttl", TTL: "10m", Status: api.HealthPassing},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The same service ID on another node, with an address of its own.
	consultest.RegisterExternal(t, consulAPI, "node-b", "10.0.0.2",
		&api.AgentService{ID: "web-1", Service: "web", Address: "10.9.9.9", Port: 443},
		&api.HealthCheck{Node: "node-b", CheckID: "web-1-http", Name: "http", ServiceID: "web-1", Status: api.HealthPassing})
	// A node whose node check is critical while its service check passes.
	consultest.RegisterExternal(t, consulAPI, "node-c", "10.0.0.3",
		&api.AgentService{ID: "cache-1", Service: "cache", Port: 6379},
		&api.HealthCheck{Node: "node-c", CheckID: "cache-1-tcp", Name: "tcp", ServiceID: "cache-1", Status: api.HealthPassing},
		&api.HealthCheck{Node: "node-c", CheckID: "node-health", Name: "node alive", Status: api.HealthCritical, Output: "unreachable"})

	local := waitForInstance(t, c, consultest.NodeName+"/web-1", "passing", func(ih health.InstanceHealth) bool { return ih.Status == health.Passing })
	if local.Address != "127.0.0.1" || local.Port != 8080 || local.Name != "web" {
		t.Errorf("instance without an address must take its node's: %+v", local.Instance)
	}
	all := evaluate(t, c)
	remote, ok := all["node-b/web-1"]
	if !ok || remote.Address != "10.9.9.9" || health.URL(remote.Instance) != "https://10.9.9.9" {
		t.Errorf("the same service ID on node-b: %+v", remote)
	}
	cache := all["node-c/cache-1"]
	if cache.Status != health.Critical || len(cache.Checks) != 1 {
		t.Errorf("a critical node check must make its instances critical: %+v", cache)
	}
	if consul, ok := all[consultest.NodeName+"/consul"]; !ok || consul.Status != health.Passing {
		t.Errorf("Consul's own service instance: %+v", consul)
	}

	t.Run("a poll costs two requests whatever the cluster size", func(t *testing.T) {
		before := counter.requests.Load()
		evaluate(t, c)
		small := counter.requests.Load() - before
		for i := range 40 {
			consultest.RegisterExternal(t, consulAPI, fmt.Sprintf("bulk-%d", i%8), fmt.Sprintf("10.1.0.%d", i%8),
				&api.AgentService{ID: fmt.Sprintf("bulk-%d", i), Service: fmt.Sprintf("bulk-svc-%d", i%5), Port: 9000 + i},
				&api.HealthCheck{CheckID: fmt.Sprintf("bulk-%d-check", i), Name: "check", ServiceID: fmt.Sprintf("bulk-%d", i), Status: api.HealthPassing})
		}
		before = counter.requests.Load()
		large := evaluate(t, c)
		if requests := counter.requests.Load() - before; small != 2 || requests != 2 || len(large) < 44 {
			t.Errorf("requests per poll: %d with a few instances, %d with %d", small, requests, len(large))
		}
		t.Logf("requests per poll: %d (%d instances)", small, len(large))
	})

	t.Run("TTL check passing to warning to critical", func(t *testing.T) {
		for _, status := range []string{api.HealthWarning, api.HealthCritical, api.HealthPassing} {
			if err := consulAPI.Agent().UpdateTTL("web-1-ttl", "now "+status, status); err != nil {
				t.Fatal(err)
			}
			got := waitForInstance(t, c, consultest.NodeName+"/web-1", status, func(ih health.InstanceHealth) bool {
				return ih.Status == health.Status(status)
			})
			if got.Checks[0].Output != "now "+status {
				t.Errorf("check output %q", got.Checks[0].Output)
			}
		}
	})

	t.Run("maintenance mode", func(t *testing.T) {
		if err := consulAPI.Agent().EnableServiceMaintenance("web-1", "deploying"); err != nil {
			t.Fatal(err)
		}
		waitForInstance(t, c, consultest.NodeName+"/web-1", "in maintenance", func(ih health.InstanceHealth) bool { return ih.Status == health.Maintenance })
		if err := consulAPI.Agent().DisableServiceMaintenance("web-1"); err != nil {
			t.Fatal(err)
		}
		waitForInstance(t, c, consultest.NodeName+"/web-1", "out of maintenance", func(ih health.InstanceHealth) bool { return ih.Status == health.Passing })

		if err := consulAPI.Agent().EnableNodeMaintenance("host reboot"); err != nil {
			t.Fatal(err)
		}
		waitForInstance(t, c, consultest.NodeName+"/web-1", "in node maintenance", func(ih health.InstanceHealth) bool { return ih.Status == health.Maintenance })
		if err := consulAPI.Agent().DisableNodeMaintenance(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("deregistration", func(t *testing.T) {
		if _, err := consulAPI.Catalog().Deregister(&api.CatalogDeregistration{Node: "node-b", ServiceID: "web-1"}, nil); err != nil {
			t.Fatal(err)
		}
		consultest.WaitFor(t, 15*time.Second, "node-b/web-1 gone", func() error {
			if _, ok := evaluate(t, c)["node-b/web-1"]; ok {
				return fmt.Errorf("still there")
			}
			return nil
		})
	})

	t.Run("consul down is an error, not an empty cluster", func(t *testing.T) {
		agent.Stop()
		if _, err := c.Snapshot(context.Background()); err == nil {
			t.Error("Snapshot with Consul stopped returned no error")
		}
	})
}

// TestCheckOutputBounded registers, through the catalog (where Consul sets
// no size limit), check outputs longer than the cap and checks what the
// client keeps of them: a cut output is marked, a short one is whole.
func TestCheckOutputBounded(t *testing.T) {
	agent := consultest.Start(t)
	big := strings.Repeat("é\"\\x", 2<<20/5) // 2 MB of characters that need escapes or two bytes
	consultest.RegisterExternal(t, agent.Client(), "big-node", "10.0.0.1",
		&api.AgentService{ID: "web-1", Service: "web", Port: 80},
		&api.HealthCheck{CheckID: "node-big", Name: "node", Status: api.HealthCritical, Output: big},
		&api.HealthCheck{CheckID: "svc-small", Name: "svc", ServiceID: "web-1", Status: api.HealthPassing, Output: "fine"},
		// Each byte is 6 in JSON (\u0001): the stream cuts it before
		// max bytes are read, and marks it.
		&api.HealthCheck{CheckID: "node-control", Name: "ctl", Status: api.HealthPassing, Output: strings.Repeat("\x01", 1<<20)})
	for _, max := range []int{MinCheckOutputMax, DefaultCheckOutputMax, MaxCheckOutputMax} {
		c, err := New(agent.Config(), WithCheckOutputMax(max))
		if err != nil {
			t.Fatal(err)
		}
		checks, _, err := c.Checks(context.Background(), Blocking{})
		if err != nil {
			t.Fatal(err)
		}
		found := 0
		for _, ch := range checks {
			switch ch.CheckID {
			case "node-big":
				found++
				if !ch.OutputTruncated || len(ch.Output) > max || len(ch.Output) < max-3 || !strings.HasPrefix(big, ch.Output) {
					t.Errorf("max %d: big output kept %d bytes, truncated %v", max, len(ch.Output), ch.OutputTruncated)
				}
			case "node-control":
				found++
				if !ch.OutputTruncated || len(ch.Output) == 0 || len(ch.Output) > max || strings.Trim(ch.Output, "\x01") != "" {
					t.Errorf("max %d: control output kept %d bytes, truncated %v", max, len(ch.Output), ch.OutputTruncated)
				}
			case "svc-small":
				found++
				if ch.OutputTruncated || ch.Output != "fine" {
					t.Errorf("max %d: small output %q, truncated %v", max, ch.Output, ch.OutputTruncated)
				}
			}
		}
		if found != 3 {
			t.Fatalf("max %d: %d of the 3 checks read", max, found)
		}
	}
}
