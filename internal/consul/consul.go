// Package consul reads the catalog and health checks from a Consul agent
// through the official API client, in a fixed number of requests per read
// whatever the size of the cluster.
package consul

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/consul-monitor/consul-monitor/internal/health"
)

// Client reads Consul's state.
type Client struct {
	api       *api.Client
	outputMax int
}

// DefaultCheckOutputMax is the check output kept, in bytes: what Consul's
// own agent keeps of a script check's output.
const DefaultCheckOutputMax = 4096

// MinCheckOutputMax and MaxCheckOutputMax bound WithCheckOutputMax.
const (
	MinCheckOutputMax = 256
	MaxCheckOutputMax = 1 << 20
)

// An Option changes how a Client reads.
type Option func(*Client)

// WithCheckOutputMax keeps at most n bytes of each check's output (on a
// UTF-8 boundary) and marks a longer one truncated. Zero keeps the default.
func WithCheckOutputMax(n int) Option {
	return func(c *Client) {
		if n > 0 {
			c.outputMax = n
		}
	}
}

// New returns a client for the agent cfg describes. Build cfg with
// api.DefaultConfig so that CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN and the TLS
// variables apply as they do for every Consul tool.
//
// Every string in Consul's answers is cut while it is read to
// StringCap(check output max) bytes, so a registration of any size costs
// the monitor a bounded amount of memory.
func New(cfg *api.Config, opts ...Option) (*Client, error) {
	c := &Client{outputMax: DefaultCheckOutputMax}
	for _, o := range opts {
		o(c)
	}
	a, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("consul: %w", err)
	}
	// NewClient has built the HTTP client from cfg (TLS, unix sockets); the
	// api.Client shares it, so wrapping its transport here takes effect.
	hc := cfg.HttpClient
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	hc.Transport = boundedTransport{next: next, cap: StringCap, outputCap: outputCap(c.outputMax)}
	c.api = a
	return c, nil
}

// StringCap is the longest raw JSON string (escapes counted as written)
// kept from Consul's answers: names, tags and meta longer than that are
// not something to show, and no answer can make the monitor hold more.
const StringCap = 64 << 10

// outputCap is the longest raw check output kept while reading: room for
// outputMax bytes even when each is escaped in two (\n, \"); a cut one
// also carries the cut marker. Anything longer is cut and marked in the stream itself, so a
// check's output costs at most this much memory however large it is.
func outputCap(outputMax int) int { return 2*outputMax + 64 }

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
	Output    output
	ServiceID string
}

// output is a check output as the bounded transport passed it on: cut when
// it ends with the transport's marker.
type output struct {
	text string
	cut  bool
}

func (o *output) UnmarshalJSON(raw []byte) error {
	o.cut = false
	if trimmed, ok := bytes.CutSuffix(raw, []byte(cutMarker+`"`)); ok {
		raw = append(trimmed, '"')
		o.cut = true
	}
	return json.Unmarshal(raw, &o.text)
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
		output, truncated := health.TruncateOutput(hc.Output.text, c.outputMax)
		checks = append(checks, health.Check{
			Node:            hc.Node,
			CheckID:         hc.CheckID,
			Name:            hc.Name,
			ServiceID:       hc.ServiceID,
			Status:          health.ParseCheckStatus(hc.Status),
			Output:          output,
			OutputTruncated: truncated || hc.Output.cut,
		})
	}
	health.BoundNodeOutputs(checks, health.NodeOutputBudget(c.outputMax))
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

// MaxTags is the most tags kept of an instance; the rest are dropped while
// Consul's answer is read.
const MaxTags = 1024
