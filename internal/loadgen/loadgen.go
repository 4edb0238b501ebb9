// Package loadgen fills a real Consul with a synthetic cluster and keeps
// changing it: nodes with service instances and checks registered through
// the catalog API, a chosen fraction of checks flipped every minute, and
// optionally services with real TTL checks on the local agent. The demo and
// the scale benchmark use it; it never talks to anything but the Consul it
// is given.
package loadgen

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// serviceNames are cycled through on each node, so that every name has
// instances on many nodes, as in a real cluster.
var serviceNames = []string{"web", "api", "auth", "billing", "search", "cache", "queue", "db", "metrics", "mail", "cdn-edge", "scheduler"}

// Config describes the synthetic cluster.
type Config struct {
	Nodes           int // external nodes, registered through the catalog
	ServicesPerNode int
	// TTLServices are registered on the local agent with real TTL checks,
	// which the generator keeps alive and changes.
	TTLServices int
	// FlipPerMinute is the fraction of checks changed every minute.
	FlipPerMinute float64
	// Concurrency bounds the registration requests in flight.
	Concurrency int
	Seed        uint64
}

// Check is one check the generator manages.
type Check struct {
	Node, CheckID, ServiceID, Name, Status string
	ttl                                    bool
}

// Generator registers and changes the cluster.
type Generator struct {
	cfg    Config
	client *api.Client
	log    *slog.Logger
	rng    *rand.Rand

	mu     sync.Mutex
	checks []*Check
	flips  int
}

// New returns a generator for the Consul agent client talks to.
func New(client *api.Client, cfg Config, log *slog.Logger) *Generator {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	return &Generator{cfg: cfg, client: client, log: log, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
}

// NodeName is the name of the i-th generated node.
func NodeName(i int) string { return fmt.Sprintf("loadgen-node-%04d", i) }

// Register registers every node, instance and check. Each node has a node
// check and each instance one service check, all passing.
func (g *Generator) Register(ctx context.Context) error {
	type job struct{ node, instance int }
	jobs := make(chan job)
	errs := make(chan error, g.cfg.Concurrency)
	var wg sync.WaitGroup
	for range g.cfg.Concurrency {
		wg.Go(func() {
			for j := range jobs {
				if err := g.registerInstance(ctx, j.node, j.instance); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var firstErr error
feed:
	for n := range g.cfg.Nodes {
		for s := range g.cfg.ServicesPerNode {
			select {
			case jobs <- job{n, s}:
			case firstErr = <-errs:
				break feed
			case <-ctx.Done():
				firstErr = ctx.Err()
				break feed
			}
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr == nil {
		select {
		case firstErr = <-errs:
		default:
		}
	}
	if firstErr != nil {
		return firstErr
	}
	return g.registerTTLServices()
}

func (g *Generator) registerInstance(ctx context.Context, node, instance int) error {
	name := serviceNames[(node+instance)%len(serviceNames)]
	nodeName := NodeName(node)
	serviceID := fmt.Sprintf("%s-%d", name, instance)
	checks := []*Check{{Node: nodeName, CheckID: serviceID + "-health", ServiceID: serviceID, Name: name + " health", Status: api.HealthPassing}}
	if instance == 0 {
		checks = append(checks, &Check{Node: nodeName, CheckID: "node-health", Name: "node health", Status: api.HealthPassing})
	}
	reg := &api.CatalogRegistration{
		Node:    nodeName,
		Address: fmt.Sprintf("10.%d.%d.%d", 100+node/65536, node/256%256, node%256),
		Service: &api.AgentService{
			ID: serviceID, Service: name, Port: 8000 + instance,
			Tags: []string{"loadgen", fmt.Sprintf("zone-%c", 'a'+rune(node%3))},
			Meta: map[string]string{"version": fmt.Sprintf("1.%d.0", instance%4)},
		},
	}
	for _, c := range checks {
		reg.Checks = append(reg.Checks, c.healthCheck())
	}
	if _, err := g.client.Catalog().Register(reg, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("loadgen: register %s on %s: %w", serviceID, nodeName, err)
	}
	g.mu.Lock()
	g.checks = append(g.checks, checks...)
	g.mu.Unlock()
	return nil
}

func (g *Generator) registerTTLServices() error {
	self, err := g.client.Agent().NodeName()
	if err != nil {
		return fmt.Errorf("loadgen: agent node name: %w", err)
	}
	for i := range g.cfg.TTLServices {
		name := serviceNames[i%len(serviceNames)]
		id := fmt.Sprintf("%s-ttl-%d", name, i)
		err := g.client.Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: id, Name: name, Port: 9000 + i, Tags: []string{"loadgen", "ttl"},
			Check: &api.AgentServiceCheck{CheckID: id + "-ttl", Name: name + " heartbeat", TTL: "90s", Status: api.HealthPassing},
		})
		if err != nil {
			return fmt.Errorf("loadgen: register %s: %w", id, err)
		}
		g.mu.Lock()
		g.checks = append(g.checks, &Check{Node: self, CheckID: id + "-ttl", ServiceID: id, Name: name + " heartbeat", Status: api.HealthPassing, ttl: true})
		g.mu.Unlock()
	}
	return nil
}

func (c Check) healthCheck() *api.HealthCheck {
	return &api.HealthCheck{Node: c.Node, CheckID: c.CheckID, ServiceID: c.ServiceID, Name: c.Name, Status: c.Status,
		Output: fmt.Sprintf("%s at %s", c.Status, time.Now().UTC().Format(time.RFC3339))}
}

// Checks returns how many checks the generator manages.
func (g *Generator) Checks() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.checks)
}

// Flips returns how many check changes the generator has made.
func (g *Generator) Flips() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.flips
}

// FlipRandom changes the status of n checks chosen at random: a passing
// check turns warning or critical, any other turns passing again. It
// returns the checks it changed, with their new status.
func (g *Generator) FlipRandom(ctx context.Context, n int) ([]Check, error) {
	g.mu.Lock()
	chosen := make([]*Check, 0, n)
	for range min(n, len(g.checks)) {
		chosen = append(chosen, g.checks[g.rng.IntN(len(g.checks))])
	}
	for _, c := range chosen {
		switch {
		case c.Status != api.HealthPassing:
			c.Status = api.HealthPassing
		case g.rng.IntN(2) == 0:
			c.Status = api.HealthWarning
		default:
			c.Status = api.HealthCritical
		}
	}
	g.flips += len(chosen)
	// Copies, taken under the lock: Run may be flipping the same checks.
	changed := make([]Check, len(chosen))
	for i, c := range chosen {
		changed[i] = *c
	}
	g.mu.Unlock()

	for i, c := range changed {
		if err := g.apply(ctx, c); err != nil {
			return changed[:i], err
		}
	}
	return changed, nil
}

func (g *Generator) apply(ctx context.Context, c Check) error {
	if c.ttl {
		return g.client.Agent().UpdateTTLOpts(c.CheckID, "heartbeat: "+c.Status, c.Status, (&api.QueryOptions{}).WithContext(ctx))
	}
	_, err := g.client.Catalog().Register(&api.CatalogRegistration{
		Node: c.Node, SkipNodeUpdate: true, Checks: api.HealthChecks{c.healthCheck()},
	}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("loadgen: update %s on %s: %w", c.CheckID, c.Node, err)
	}
	return nil
}

// Run flips FlipPerMinute of the checks per minute, spread over the
// minute, and keeps TTL checks alive, until ctx ends.
func (g *Generator) Run(ctx context.Context) error {
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	var owed float64
	ttlDue := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		owed += float64(g.Checks()) * g.cfg.FlipPerMinute / 60
		if n := int(owed); n > 0 {
			owed -= float64(n)
			if _, err := g.FlipRandom(ctx, n); err != nil && ctx.Err() == nil {
				g.log.Warn("flipping checks failed", "err", err)
			}
		}
		if time.Now().After(ttlDue) {
			g.heartbeat(ctx)
			ttlDue = time.Now().Add(30 * time.Second)
		}
	}
}

// heartbeat renews every TTL check with its current status.
func (g *Generator) heartbeat(ctx context.Context) {
	g.mu.Lock()
	var ttl []Check
	for _, c := range g.checks {
		if c.ttl {
			ttl = append(ttl, *c)
		}
	}
	g.mu.Unlock()
	for _, c := range ttl {
		if err := g.apply(ctx, c); err != nil && ctx.Err() == nil {
			g.log.Warn("TTL heartbeat failed", "check", c.CheckID, "err", err)
		}
	}
}
