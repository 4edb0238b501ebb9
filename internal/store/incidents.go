package store

import (
	"context"
	"sync"
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
	// computing is held while one caller computes; the others wait for it
	// when the catalog or statuses changed, and serve the last figures when
	// only time has passed.
	computing sync.Mutex
}

// Incidents returns the figures for the history as it ends at now (see
// HistoryEnd): those last computed while nothing was recorded that changes
// them and they are less than IncidentsMaxAge old, else new ones. When
// they are only too old and another caller is computing, the last ones
// are returned, so that one slow computation a minute holds up no request.
func (s *Store) Incidents(ctx context.Context, now time.Time) (*Incidents, error) {
	pub := s.Published()
	c := &s.incidents
	c.mu.Lock()
	cur := c.current
	c.mu.Unlock()
	if cur != nil && cur.Version == pub.Version {
		if now.Sub(cur.Computed) < IncidentsMaxAge && !now.Before(cur.Computed) {
			return cur, nil
		}
		if !c.computing.TryLock() {
			return cur, nil
		}
	} else {
		c.computing.Lock()
	}
	defer c.computing.Unlock()
	c.mu.Lock()
	cur = c.current
	c.mu.Unlock()
	pub = s.Published()
	if cur != nil && cur.Version == pub.Version && now.Sub(cur.Computed) < IncidentsMaxAge && !now.Before(cur.Computed) {
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
	// ones too; the API shows those registered now.
	byService := map[string][]health.Incident{}
	for id, rec := range recs {
		inc := health.InstanceIncident(rec.Recording, from, until)
		byService[rec.Name] = append(byService[rec.Name], inc)
		if !rec.Gone {
			out.Instances[id] = inc
		}
	}
	current := map[string][]health.Status{}
	for _, inst := range pub.Instances {
		current[inst.Name] = append(current[inst.Name], inst.Status)
	}
	for name, statuses := range current {
		out.Services[name] = health.Service(statuses, byService[name], from, until)
	}
	return out, nil
}
