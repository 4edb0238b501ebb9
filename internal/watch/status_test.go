package watch

import (
	"context"
	"testing"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/consul"
	"github.com/consul-monitor/consul-monitor/internal/health"
)

func TestNewDefaultsTheBlockingWait(t *testing.T) {
	for _, wait := range []time.Duration{0, -time.Second} {
		if got := New(nil, nil, Config{MaxWait: wait}, quiet).cfg.MaxWait; got != DefaultMaxWait {
			t.Errorf("MaxWait %v became %v, want %v", wait, got, DefaultMaxWait)
		}
	}
	if got := New(nil, nil, Config{MaxWait: time.Second}, quiet).cfg.MaxWait; got != time.Second {
		t.Errorf("MaxWait 1s became %v", got)
	}
}

func TestLiveFollowsEachDelivery(t *testing.T) {
	w := New(nil, nil, Config{}, quiet)
	if live := w.Live(); len(live.Instances) != 0 {
		t.Fatalf("live before any read: %+v", live)
	}
	inst := []health.Instance{{Node: "n", ServiceID: "s", Name: "s"}}
	check := func(status health.Status) []health.Check {
		return []health.Check{{Node: "n", CheckID: "c", ServiceID: "s", Status: status}}
	}
	w.setLive(check(health.Passing), nil)
	w.setLive(nil, inst)
	first := w.Live()
	if len(first.Instances) != 1 || first.Instances[0].Status != health.Passing {
		t.Fatalf("live %+v", first)
	}
	if again := w.Live(); again.Version != first.Version || &again.Instances[0] != &first.Instances[0] {
		t.Error("Live evaluated again although nothing changed")
	}
	w.setLive(check(health.Critical), nil)
	second := w.Live()
	if second.Version == first.Version || len(second.Instances) != 1 || second.Instances[0].Status != health.Critical {
		t.Errorf("after a new delivery live is %+v (version %d, was %d)", second.Instances, second.Version, first.Version)
	}
}

func TestPartSinceIsWhenTheStateBegan(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	p := Part{Error: "waiting", Since: at(0)}
	p.fail(at(1), "refused")
	if p.OK || p.Error != "refused" || !p.Since.Equal(at(0)) || !p.LastOK.IsZero() {
		t.Errorf("failing from the start: %+v", p)
	}
	p.succeed(at(2))
	p.succeed(at(3))
	if !p.OK || p.Error != "" || !p.Since.Equal(at(2)) || !p.LastOK.Equal(at(3)) {
		t.Errorf("working: %+v", p)
	}
	p.fail(at(4), "403")
	p.fail(at(5), "500")
	if p.OK || p.Error != "500" || !p.Since.Equal(at(4)) || !p.LastOK.Equal(at(3)) {
		t.Errorf("failing later: %+v", p)
	}
	var never Part
	never.fail(at(6), "x")
	if !never.Since.Equal(at(6)) {
		t.Errorf("a part with no since: %+v", never)
	}
}

func TestQueryTimeoutLeavesRoomForJitter(t *testing.T) {
	// Consul adds up to a sixteenth of the wait as jitter; the answer may
	// then take a while on a slow network.
	for _, wait := range []time.Duration{time.Second, DefaultMaxWait, time.Minute} {
		w := New(nil, nil, Config{MaxWait: wait}, quiet)
		if got, want := w.queryTimeout(), wait+wait/16+10*time.Second; got != want {
			t.Errorf("MaxWait %v: query timeout %v, want %v", wait, got, want)
		}
	}
}

// emptySource is a Consul with one node check and no service at all, whose
// instance list is a nil slice.
type emptySource struct{}

func (emptySource) Checks(ctx context.Context, b consul.Blocking) ([]health.Check, uint64, error) {
	if b.Index != 0 {
		_ = sleep(ctx, b.Wait)
	}
	return []health.Check{{Node: "n", CheckID: "serfHealth", Status: health.Passing}}, 7, nil
}

func (emptySource) CatalogIndex(ctx context.Context, b consul.Blocking) (uint64, error) {
	if b.Index != 0 {
		_ = sleep(ctx, b.Wait)
	}
	return 7, nil
}

func (emptySource) Instances(context.Context) ([]health.Instance, error) { return nil, nil }

func TestAnEmptyCatalogIsRecorded(t *testing.T) {
	w := New(emptySource{}, openStore(t), Config{Reconcile: time.Hour, MinQueryGap: time.Millisecond, MaxWait: 50 * time.Millisecond}, quiet)
	runWatcher(t, w)
	waitStatus(t, w, "an empty catalog recorded", func(s Status) bool { return s.Catalog.OK && !s.LastPoll.IsZero() })
}

func TestBackoffDoublesWithJitterUpTo30s(t *testing.T) {
	b := newBackoff()
	for round := range 2 {
		ceiling := 250 * time.Millisecond
		for i := range 10 {
			got := b.next()
			if got < ceiling/2 || got > ceiling {
				t.Errorf("round %d, retry %d: %v, want within [%v, %v]", round, i, got, ceiling/2, ceiling)
			}
			ceiling = min(2*ceiling, 30*time.Second)
		}
		b.reset()
	}
}

// fakeClock is a clock that moves only when slept on or told to.
type fakeClock struct {
	t     time.Time
	slept []time.Duration
}

func (c *fakeClock) now() time.Time { return c.t }

func (c *fakeClock) sleep(_ context.Context, d time.Duration) error {
	c.slept = append(c.slept, d)
	c.t = c.t.Add(d)
	return nil
}

func TestLimiterLetsABurstThroughThenOnePerGap(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	l := newLimiter(2, time.Second)
	l.now, l.sleep, l.last = clock.now, clock.sleep, clock.t
	wait := func() time.Duration {
		t.Helper()
		before := clock.t
		if err := l.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		return clock.t.Sub(before)
	}
	// A burst of two at once, then one a second.
	for i, want := range []time.Duration{0, 0, time.Second, time.Second} {
		if got := wait(); got != want {
			t.Errorf("query %d waited %v, want %v", i, got, want)
		}
	}
	// 400 ms after a query, the next waits the other 600 ms.
	clock.t = clock.t.Add(400 * time.Millisecond)
	if got := wait(); got != 600*time.Millisecond {
		t.Errorf("after 400 ms the next query waited %v, want 600ms", got)
	}
	// After a quiet spell the burst is back, and no more than it.
	clock.t = clock.t.Add(time.Minute)
	for i, want := range []time.Duration{0, 0, time.Second} {
		if got := wait(); got != want {
			t.Errorf("after a quiet minute, query %d waited %v, want %v", i, got, want)
		}
	}
	// No gap: never waits.
	free := newLimiter(2, 0)
	free.now, free.sleep = clock.now, clock.sleep
	for range 5 {
		if err := free.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if len(clock.slept) != 4 {
		t.Errorf("slept %v", clock.slept)
	}
}
