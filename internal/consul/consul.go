// Package consul reads the catalog and health checks from a Consul agent
// through the official API client, in a fixed number of requests per read
// whatever the size of the cluster.
package consul

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/consul-monitor/consul-monitor/internal/health"
)

// Client reads Consul's state.
type Client struct {
	api *api.Client
}

// New returns a client for the agent cfg describes. Build cfg with
// api.DefaultConfig so that CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN and the TLS
// variables apply as they do for every Consul tool.
func New(cfg *api.Config) (*Client, error) {
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("consul: %w", err)
	}
	return &Client{api: c}, nil
}

// Blocking turns a read into a Consul blocking query: it returns once the
// data's index passes Index, or after Wait with the data unchanged. The zero
// value reads at once.
type Blocking struct {
	Index uint64
	Wait  time.Duration
}

func (b Blocking) options(ctx context.Context) *api.QueryOptions {
	// Stale reads let any server answer, which spreads the load of many
	// watchers; an index that goes backwards as a result is handled by the
	// caller, as after a Consul restart.
	return (&api.QueryOptions{WaitIndex: b.Index, WaitTime: b.Wait, AllowStale: true}).WithContext(ctx)
}

// Snapshot reads every service instance and every check, node checks
// included, in two requests.
func (c *Client) Snapshot(ctx context.Context) (health.Snapshot, error) {
	// The catalog is read first: an instance registered between the two
	// reads then only has checks without an instance, which the next poll
	// pairs up, rather than an instance that looks unchecked.
	instances, err := c.Instances(ctx)
	if err != nil {
		return health.Snapshot{}, err
	}
	checks, _, err := c.Checks(ctx, Blocking{})
	if err != nil {
		return health.Snapshot{}, err
	}
	return health.Snapshot{Instances: instances, Checks: checks}, nil
}

// healthCheck is the part of a health check that consul-monitor uses.
// Decoding only these fields, instead of the client's full HealthCheck with
// its definition, tags and indexes, halves the cost of each read at scale.
type healthCheck struct {
	Node      string
	CheckID   string
	Name      string
	Status    string
	Output    string
	ServiceID string
}

// Checks reads every check in the datacenter, in one request, and returns
// the index to block on for the next change.
func (c *Client) Checks(ctx context.Context, b Blocking) ([]health.Check, uint64, error) {
	var raw []healthCheck
	meta, err := c.api.Raw().Query(healthEndpoint.path, &raw, b.options(ctx))
	if err == nil {
		err = leaderless(meta)
	}
	if err != nil {
		return nil, 0, describe(healthEndpoint, err)
	}
	checks := make([]health.Check, 0, len(raw))
	for _, hc := range raw {
		checks = append(checks, health.Check{
			Node:      hc.Node,
			CheckID:   hc.CheckID,
			Name:      hc.Name,
			ServiceID: hc.ServiceID,
			Status:    health.ParseCheckStatus(hc.Status),
			Output:    hc.Output,
		})
	}
	return checks, meta.LastIndex, nil
}

// CatalogIndex waits for the service catalog to change and returns its
// index. The response is only service names and tags, so watching it costs
// little; the instances are read again only when it moves.
func (c *Client) CatalogIndex(ctx context.Context, b Blocking) (uint64, error) {
	_, meta, err := c.api.Catalog().Services(b.options(ctx))
	if err == nil {
		err = leaderless(meta)
	}
	if err != nil {
		return 0, describe(catalogEndpoint, err)
	}
	return meta.LastIndex, nil
}

// nodeDump is the part of /v1/internal/ui/nodes that consul-monitor uses.
type nodeDump struct {
	Node     string
	Address  string
	Services []struct {
		ID      string
		Service string
		Tags    []string
		Address string
		Port    int
		Meta    map[string]string
	}
}

// Instances reads every service instance on every node, in one request.
func (c *Client) Instances(ctx context.Context) ([]health.Instance, error) {
	// The public catalog API needs a request per service or per node to
	// list instances; this endpoint, which Consul's own UI is built on, gives
	// them all at once and honours ACLs the same way.
	var nodes []nodeDump
	meta, err := c.api.Raw().Query(nodesEndpoint.path, &nodes, (&api.QueryOptions{}).WithContext(ctx))
	if err == nil {
		err = leaderless(meta)
	}
	if err != nil {
		return nil, describe(nodesEndpoint, err)
	}
	var instances []health.Instance
	for _, n := range nodes {
		for _, s := range n.Services {
			address := s.Address
			if address == "" {
				address = n.Address
			}
			instances = append(instances, health.Instance{
				Node:      n.Node,
				ServiceID: s.ID,
				Name:      s.Service,
				Address:   address,
				Port:      s.Port,
				Tags:      s.Tags,
				Meta:      s.Meta,
			})
		}
	}
	return instances, nil
}

// ErrNoLeader is an answer from a Consul server that knows no leader of its
// cluster (a partition, a majority of servers down). A stale read is still
// served, from a state that stopped changing when the leader was lost, so it
// says nothing about now: checks that failed since would show as passing.
var ErrNoLeader = errors.New("the Consul server that answered has no cluster leader, so its answer may be stale")

// leaderless tells whether an answer came from a server without a leader.
// Consul sets X-Consul-LastContact on a stale read from a follower; an answer
// without the headers at all (a proxy that drops them) is not refused.
func leaderless(meta *api.QueryMeta) error {
	if meta == nil || meta.KnownLeader || meta.LastContact <= 0 {
		return nil
	}
	return fmt.Errorf("%w (last contact with a leader %v ago)", ErrNoLeader, meta.LastContact.Round(time.Millisecond))
}
