package store

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/health"
)

// DefaultRetention is the history kept when the Store is not told otherwise.
const DefaultRetention = 720 * time.Hour

// IncidentsMaxAge is how long computed incidents are served while nothing
// changes: uptime moves with time alone, status_since and changes do not.
const IncidentsMaxAge = time.Minute

// Incidents are every current instance's and service's figures, computed
// together from one read of the history.
type Incidents struct {
	// From is where the retained history begins, Until where it ends.
	From, Until time.Time
	// Instances is keyed by API identifier, for the instances registered
	// now; Services by service name.
	Instances map[string]health.Incident
	Services  map[string]health.ServiceIncident
	// Version is the Published version the figures are for; Computed is
	// the clock when they were.
	Version  uint64
	Computed time.Time
}

// incidentsCache keeps the last Incidents; computing them reads 30 days of
// history, so /api/services must not do it on every request.
type incidentsCache struct {
	mu      sync.Mutex
	current *Incidents
	// computing is held while one caller computes; the others serve the
	// last figures meanwhile.
	computing sync.Mutex
}

// Incidents returns the figures for the history as it ends at now (see
// HistoryEnd): those last computed while nothing was recorded that changes
// them and they are less than IncidentsMaxAge old, else new ones. While
// another caller computes, the last ones are returned, so that one
// computation holds up one request, not all; only the first waits.
func (s *Store) Incidents(ctx context.Context, now time.Time) (*Incidents, error) {
	pub := s.Published()
	c := &s.incidents
	c.mu.Lock()
	cur := c.current
	c.mu.Unlock()
	fresh := func(cur *Incidents) bool {
		return cur != nil && cur.Version == pub.Version && now.Sub(cur.Computed) < IncidentsMaxAge && !now.Before(cur.Computed)
	}
	if fresh(cur) {
		return cur, nil
	}
	if cur == nil {
		c.computing.Lock()
	} else if !c.computing.TryLock() {
		// Another caller is computing: the last figures are served
		// meanwhile (the API shows no since for an instance whose status
		// moved on), so that no request waits for a computation.
		return cur, nil
	}
	defer c.computing.Unlock()
	c.mu.Lock()
	cur = c.current
	c.mu.Unlock()
	pub = s.Published()
	if fresh(cur) {
		return cur, nil // computed by the caller we waited for
	}
	inc, err := s.ComputeIncidents(ctx, pub, now)
	if err != nil {
		if cur != nil {
			return cur, err
		}
		return nil, err
	}
	c.mu.Lock()
	c.current = inc
	c.mu.Unlock()
	return inc, nil
}

// ComputeIncidents computes the figures of pub's instances, and of their
// services, from the retained history up to HistoryEnd(now), in one read
// transaction.
func (s *Store) ComputeIncidents(ctx context.Context, pub Published, now time.Time) (*Incidents, error) {
	until := s.HistoryEnd(now).Truncate(time.Millisecond).UTC()
	retention := s.Retention
	if retention <= 0 {
		retention = DefaultRetention
	}
	from := until.Add(-retention)
	recs, err := s.Recordings(ctx, from, until)
	if err != nil {
		return nil, err
	}
	out := &Incidents{From: from, Until: until, Instances: make(map[string]health.Incident, len(pub.Instances)),
		Services: map[string]health.ServiceIncident{}, Version: pub.Version, Computed: now}
	// Every instance in the history counts for its service's figures, gone
	// ones too; the API shows those registered now. The arithmetic is
	// spread over the CPUs: it is pure, and half of the cost.
	ids := make([]string, 0, len(recs))
	for id := range recs {
		ids = append(ids, id)
	}
	incs := make([]health.Incident, len(ids))
	parallel(len(ids), func(i int) { incs[i] = health.InstanceIncident(recs[ids[i]].Recording, from, until) })
	byService := map[string][]health.Incident{}
	for i, id := range ids {
		rec := recs[id]
		byService[rec.Name] = append(byService[rec.Name], incs[i])
		if !rec.Gone {
			out.Instances[id] = incs[i]
		}
	}
	current := map[string][]health.Status{}
	for _, inst := range pub.Instances {
		current[inst.Name] = append(current[inst.Name], inst.Status)
	}
	names := make([]string, 0, len(current))
	for name := range current {
		names = append(names, name)
	}
	services := make([]health.ServiceIncident, len(names))
	parallel(len(names), func(i int) { services[i] = health.Service(current[names[i]], byService[names[i]], from, until) })
	for i, name := range names {
		out.Services[name] = services[i]
	}
	return out, nil
}

// parallel calls fn for 0 to n-1 on as many goroutines as there are CPUs.
func parallel(n int, fn func(int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		}()
	}
	wg.Wait()
}
