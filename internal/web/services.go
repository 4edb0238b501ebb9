package web

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/health"
	"github.com/consul-monitor/consul-monitor/internal/store"
	"github.com/consul-monitor/consul-monitor/internal/watch"
)

type servicesResponse struct {
	Status          string        `json:"status"`
	ConsulAvailable bool          `json:"consul_available"`
	LastPoll        *time.Time    `json:"last_poll"`
	Error           *string       `json:"error"`
	Consul          partJSON      `json:"consul"`
	Catalog         partJSON      `json:"catalog"`
	Recording       partJSON      `json:"recording"`
	Services        []serviceJSON `json:"services"`
	// Nodes carries each node's checks once: a node check counts in the
	// status of every instance on its node, and copying it, with its
	// output, into each of them multiplied the answer's size.
	Nodes map[string]nodeJSON `json:"nodes"`
}

type nodeJSON struct {
	Checks []checkJSON `json:"checks"`
}

// partJSON is one of the watcher's parts: the health watch, the catalog
// watch or the recording.
type partJSON struct {
	OK     bool       `json:"ok"`
	Error  *string    `json:"error"`
	Since  *time.Time `json:"since"`
	LastOK *time.Time `json:"last_ok"`
}

func toPartJSON(p watch.Part) partJSON {
	return partJSON{OK: p.OK, Error: optionalString(p.Error), Since: optionalTime(p.Since), LastOK: optionalTime(p.LastOK)}
}

type serviceJSON struct {
	ID            string            `json:"id"`
	Name          string            `json:"name"`
	Node          string            `json:"node"`
	Address       string            `json:"address"`
	Port          int               `json:"port"`
	URL           *string           `json:"url"`
	Tags          []string          `json:"tags"`
	Meta          map[string]string `json:"meta"`
	CurrentStatus health.Status     `json:"current_status"`
	Checks        []checkJSON       `json:"checks"`
}

type checkJSON struct {
	ID     string        `json:"id"`
	Name   string        `json:"name"`
	Status health.Status `json:"status"`
	Output string        `json:"output"`
	// OutputTruncated is set when Output was cut to --check-output-max.
	OutputTruncated bool `json:"output_truncated"`
	NodeCheck       bool `json:"node_check"`
}

func toCheckJSON(c health.Check) checkJSON {
	return checkJSON{ID: c.CheckID, Name: c.Name, Status: c.Status, Output: c.Output, OutputTruncated: c.OutputTruncated, NodeCheck: c.IsNodeCheck()}
}

// listServices answers with the instances as last committed to the
// database, so that a crash never takes back what a user was shown. When
// Consul cannot be reached they are the last known ones, with the reason.
// While the database takes no writes they are Consul's live state, which
// the watcher keeps in memory, and the recording part says so.
func (s *Server) listServices(w http.ResponseWriter, r *http.Request) error {
	status := s.watcher.Status()
	live := status.ShowLive()
	current := s.store.Published()
	if live {
		current = s.watcher.Live()
	}
	body := s.services.get(current, live, status, s.store.LastRecorded())
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Vary", "Accept-Encoding")
	if acceptsGzip(w) {
		h.Set("Content-Encoding", "gzip")
		_, _ = w.Write(body.gzipped())
		return nil
	}
	_, _ = w.Write(body.plain)
	return nil
}

// servicesCache keeps the encoded /api/services answer while nothing in it
// changes: with thousands of instances, encoding is nearly all of a
// request's cost, and the answer changes only when the watcher records.
type servicesCache struct {
	mu   sync.Mutex
	key  servicesKey
	body *encodedServices
}

type servicesKey struct {
	version uint64
	// live tells which of the two versioned sources version comes from.
	live     bool
	status   watch.Status
	recorded time.Time
}

type encodedServices struct {
	plain    []byte
	gzipOnce sync.Once
	gzip     []byte
}

// gzipped compresses the answer the first time a client accepts gzip.
func (e *encodedServices) gzipped() []byte {
	e.gzipOnce.Do(func() {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		_, _ = zw.Write(e.plain)
		_ = zw.Close()
		e.gzip = buf.Bytes()
	})
	return e.gzip
}

func (c *servicesCache) get(current store.Published, live bool, status watch.Status, recorded time.Time) *encodedServices {
	key := servicesKey{version: current.Version, live: live, status: status, recorded: recorded}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.body != nil && c.key == key {
		return c.body
	}
	resp := servicesResponse{
		Status:          "success",
		ConsulAvailable: status.Consul.OK,
		LastPoll:        optionalTime(recorded),
		Error:           optionalString(status.Consul.Error),
		Consul:          toPartJSON(status.Consul),
		Catalog:         toPartJSON(status.Catalog),
		Recording:       toPartJSON(status.Recording),
		Services:        make([]serviceJSON, len(current.Instances)),
		Nodes:           make(map[string]nodeJSON, len(current.NodeChecks)),
	}
	for node, checks := range current.NodeChecks {
		n := nodeJSON{Checks: make([]checkJSON, len(checks))}
		for i, c := range checks {
			n.Checks[i] = toCheckJSON(c)
		}
		resp.Nodes[node] = n
	}
	for i, inst := range current.Instances {
		resp.Services[i] = toServiceJSON(inst)
	}
	plain, err := json.Marshal(resp)
	if err != nil {
		plain = []byte(`{"error":"internal error"}`)
	}
	c.key, c.body = key, &encodedServices{plain: append(plain, '\n')}
	return c.body
}

func toServiceJSON(inst health.InstanceHealth) serviceJSON {
	out := serviceJSON{
		ID:            inst.ID(),
		Name:          inst.Name,
		Node:          inst.Node,
		Address:       inst.Address,
		Port:          inst.Port,
		URL:           optionalString(health.URL(inst.Instance)),
		Tags:          inst.Tags,
		Meta:          inst.Meta,
		CurrentStatus: inst.Status,
		Checks:        make([]checkJSON, len(inst.Checks)),
	}
	if out.Tags == nil {
		out.Tags = []string{}
	}
	if out.Meta == nil {
		out.Meta = map[string]string{}
	}
	for i, c := range inst.Checks {
		out.Checks[i] = toCheckJSON(c)
	}
	return out
}

type healthzResponse struct {
	Status string `json:"status"`
	Consul struct {
		partJSON
		Available bool       `json:"available"`
		LastPoll  *time.Time `json:"last_poll"`
	} `json:"consul"`
	Catalog   partJSON `json:"catalog"`
	Recording partJSON `json:"recording"`
	Database  struct {
		OK    bool    `json:"ok"`
		Error *string `json:"error"`
	} `json:"database"`
}

// healthz answers 200 while the process serves, so that a supervisor does
// not restart the monitor because Consul is down; the body tells what works.
// The database part comes from a real write, since a database that reads
// but cannot be written records nothing.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	var resp healthzResponse
	resp.Status = "ok"
	status := s.watcher.Status()
	resp.Consul.partJSON = toPartJSON(status.Consul)
	resp.Consul.Available = status.Consul.OK
	resp.Consul.LastPoll = optionalTime(s.store.LastRecorded())
	resp.Catalog = toPartJSON(status.Catalog)
	resp.Recording = toPartJSON(status.Recording)
	if err := s.store.ProbeWrite(r.Context()); err != nil {
		resp.Database.Error = optionalString(err.Error())
	} else {
		resp.Database.OK = true
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func optionalString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}
