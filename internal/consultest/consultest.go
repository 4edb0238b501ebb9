// Package consultest runs a real Consul agent in dev mode for tests, on
// loopback ports chosen at random and a temporary data directory (see
// internal/devagent). Without a consul binary a test skips, except under
// CI=true, where it fails.
package consultest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/consul-monitor/consul-monitor/internal/devagent"
)

// NodeName is the name of the agent's own node.
const NodeName = devagent.NodeName

// Binary returns the path of the consul binary, or ends the test.
func Binary(tb testing.TB) string {
	tb.Helper()
	bin, err := devagent.Binary()
	if err != nil {
		Unavailable(tb, err.Error())
	}
	return bin
}

// Unavailable ends a test that lacks something it needs from outside the
// project: a skip on a developer's machine, a failure under CI=true, where
// scripts/test must have provided it.
func Unavailable(tb testing.TB, why string) {
	tb.Helper()
	if os.Getenv("CI") != "" {
		tb.Fatal(why)
	}
	tb.Skip(why)
}

// Agent is a running consul agent -dev, tied to a test.
type Agent struct {
	*devagent.Agent
	tb testing.TB
}

// Start starts an agent and waits until it has a leader and its own node is
// in the catalog. The agent is stopped when the test ends.
func Start(tb testing.TB) *Agent {
	tb.Helper()
	a, err := devagent.Start(context.Background(), Binary(tb), tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("consul agent log, last lines:\n%s", a.LogTail(40))
		}
		a.Stop()
	})
	return &Agent{Agent: a, tb: tb}
}

// Client is an API client for this agent.
func (a *Agent) Client() *api.Client {
	c, err := a.Agent.Client()
	if err != nil {
		a.tb.Fatal(err)
	}
	return c
}

// Restart starts the stopped agent again on the same ports and waits for it.
func (a *Agent) Restart() {
	a.tb.Helper()
	if err := a.Agent.Restart(context.Background()); err != nil {
		a.tb.Fatal(err)
	}
}

// WaitFor polls cond until it returns nil, failing the test with cond's last
// error once timeout has passed. Tests wait on conditions, never on sleeps.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// RegisterExternal registers an instance on a node of its own through the
// catalog API, the way external services and other agents' services appear.
// checks may include node checks (no ServiceID).
func RegisterExternal(tb testing.TB, c *api.Client, node, address string, svc *api.AgentService, checks ...*api.HealthCheck) {
	tb.Helper()
	reg := &api.CatalogRegistration{Node: node, Address: address, Service: svc, Checks: checks, SkipNodeUpdate: false}
	if _, err := c.Catalog().Register(reg, nil); err != nil {
		tb.Fatalf("catalog register %s/%v: %v", node, svc, err)
	}
}
