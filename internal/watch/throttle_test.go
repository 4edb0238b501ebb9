package watch

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/consul"
	"github.com/consul-monitor/consul-monitor/internal/consultest"
	"github.com/consul-monitor/consul-monitor/internal/health"
	"github.com/consul-monitor/consul-monitor/internal/store"
)

// churningSource is a Consul where something changes all the time: every
// blocking health query answers at once with a new index, so the health
// watch runs at its rate limit. It notes when each health query was sent.
type churningSource struct {
	mu    sync.Mutex
	index uint64
	sent  []time.Time
}

func (c *churningSource) Checks(ctx context.Context, b consul.Blocking) ([]health.Check, uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, time.Now())
	c.index++
	return []health.Check{{Node: "n", CheckID: "web-ttl", ServiceID: "web-1", Status: health.Passing}}, c.index, nil
}

func (c *churningSource) CatalogIndex(ctx context.Context, b consul.Blocking) (uint64, error) {
	if b.Index != 0 {
		_ = sleep(ctx, b.Wait)
	}
	return 7, nil
}

func (c *churningSource) Instances(context.Context) ([]health.Instance, error) {
	return []health.Instance{{Node: "n", ServiceID: "web-1", Name: "web"}}, nil
}

// deliveryLog records the certified deliveries the watcher makes.
type deliveryLog struct {
	*store.Store
	mu      sync.Mutex
	at      []time.Time
	resumes []bool
}

func (d *deliveryLog) Apply(ctx context.Context, at time.Time, c store.Changes) (store.Written, error) {
	w, err := d.Store.Apply(ctx, at, c)
	if err == nil && c.Certified {
		d.mu.Lock()
		d.at, d.resumes = append(d.at, at), append(d.resumes, c.Resumes)
		d.mu.Unlock()
	}
	return w, err
}

// A query held back by the rate limiter is sent late just as one held back
// by a slow write is: an answer that finds a change (the index moved) may
// hold any number of changes that came and went since the previous answer,
// so the time in between is not certified. With --min-query-gap above 1 s,
// a check that went critical and back between two throttled queries was
// recorded as observed passing.
func TestThrottledQueryDoesNotCertifyTheGap(t *testing.T) {
	src := &churningSource{}
	rec := &deliveryLog{Store: openStore(t)}
	w := New(src, rec, Config{Reconcile: time.Hour, MinQueryGap: 1500 * time.Millisecond, MaxWait: time.Second}, quiet)
	runWatcher(t, w)
	consultest.WaitFor(t, 20*time.Second, "four certified deliveries", func() error {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.at) < 4 {
			return fmt.Errorf("%d so far", len(rec.at))
		}
		return nil
	})
	rec.mu.Lock()
	at, resumes := append([]time.Time(nil), rec.at...), append([]bool(nil), rec.resumes...)
	rec.mu.Unlock()
	src.mu.Lock()
	sent := append([]time.Time(nil), src.sent...)
	src.mu.Unlock()
	// The first health query may answer before the catalog has been read
	// and so not be recorded; match each delivery to the query sent just
	// before it.
	late := 0
	for i := 1; i < len(at); i++ {
		var q time.Time
		for _, s := range sent {
			if !s.After(at[i]) {
				q = s
			}
		}
		if gap := q.Sub(at[i-1]); gap > slowHandoff {
			late++
			if !resumes[i] {
				t.Errorf("delivery %d: its query was sent %v after the previous answer and found a change, yet it certifies that time", i, gap)
			}
		}
	}
	if late == 0 {
		t.Fatalf("no query was held back by the limiter; sent %v, delivered %v", sent, at)
	}
}
