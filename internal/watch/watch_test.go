package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/consul-monitor/consul-monitor/internal/consul"
	"github.com/consul-monitor/consul-monitor/internal/consultest"
	"github.com/consul-monitor/consul-monitor/internal/health"
	"github.com/consul-monitor/consul-monitor/internal/store"
)

var quiet = slog.New(slog.DiscardHandler)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "h.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// registerTTL registers an instance of service name with a TTL check in
// status; an empty checkID lets Consul name the check.
func registerTTL(t *testing.T, c *api.Client, name, id, checkID, status string) {
	t.Helper()
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: id, Name: name,
		Check: &api.AgentServiceCheck{CheckID: checkID, TTL: "10m", Status: status}}); err != nil {
		t.Fatal(err)
	}
}

func consulClient(t *testing.T, agent *consultest.Agent) *consul.Client {
	t.Helper()
	c, err := consul.New(agent.Config())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// runWatcher runs w until the test ends and returns a function that stops
// it and waits for Run to return.
func runWatcher(t *testing.T, w *Watcher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	stop = sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	return stop
}

func waitStatus(t *testing.T, w *Watcher, what string, cond func(Status) bool) {
	t.Helper()
	consultest.WaitFor(t, 20*time.Second, what, func() error {
		if s := w.Status(); !cond(s) {
			return fmt.Errorf("status %+v", s)
		}
		return nil
	})
}

// countingSource counts the queries each watch loop sends and the most
// that were in flight at once.
type countingSource struct {
	*consul.Client
	delay                 time.Duration
	checks, catalog       atomic.Int32
	inFlight, maxInFlight atomic.Int32
}

func (c *countingSource) enter() func() {
	n := c.inFlight.Add(1)
	for {
		old := c.maxInFlight.Load()
		if n <= old || c.maxInFlight.CompareAndSwap(old, n) {
			break
		}
	}
	time.Sleep(c.delay)
	return func() { c.inFlight.Add(-1) }
}

func (c *countingSource) Checks(ctx context.Context, b consul.Blocking) ([]health.Check, uint64, error) {
	c.checks.Add(1)
	defer c.enter()()
	return c.Client.Checks(ctx, b)
}

func (c *countingSource) CatalogIndex(ctx context.Context, b consul.Blocking) (uint64, error) {
	c.catalog.Add(1)
	return c.Client.CatalogIndex(ctx, b)
}

var fast = Config{Reconcile: time.Second, MinQueryGap: 20 * time.Millisecond}

func TestWatcherSurvivesConsulOutage(t *testing.T) {
	agent := consultest.Start(t)
	st := openStore(t)
	w := New(consulClient(t, agent), st, fast, quiet)
	runWatcher(t, w)

	waitStatus(t, w, "first record", func(s Status) bool { return s.ConsulAvailable && !s.LastPoll.IsZero() })
	if len(st.Current()) == 0 || !st.Observing() {
		t.Fatalf("after a record: %d instances, observing %v", len(st.Current()), st.Observing())
	}

	agent.Stop()
	waitStatus(t, w, "outage noticed", func(s Status) bool { return !s.ConsulAvailable && s.Error != "" })
	if st.Observing() {
		t.Error("the observation period is still open during the outage")
	}
	if len(st.Current()) == 0 {
		t.Error("the last known instances were dropped during the outage")
	}

	agent.Restart()
	waitStatus(t, w, "recovery", func(s Status) bool { return s.ConsulAvailable && s.Error == "" })
	if !st.Observing() {
		t.Error("observation did not resume")
	}
}

// overlapRecorder records how many Record calls ran at once.
type overlapRecorder struct {
	*store.Store
	running, maxSeen atomic.Int32
	calls            atomic.Int32
}

func (o *overlapRecorder) Apply(ctx context.Context, at time.Time, c store.Changes) (store.Written, error) {
	if n := o.running.Add(1); n > o.maxSeen.Load() {
		o.maxSeen.Store(n)
	}
	defer o.running.Add(-1)
	o.calls.Add(1)
	time.Sleep(30 * time.Millisecond)
	return o.Store.Apply(ctx, at, c)
}

func TestQueriesAndWritesNeverOverlap(t *testing.T) {
	agent := consultest.Start(t)
	src := &countingSource{Client: consulClient(t, agent), delay: 100 * time.Millisecond}
	rec := &overlapRecorder{Store: openStore(t)}
	w := New(src, rec, Config{Reconcile: 150 * time.Millisecond, MinQueryGap: 10 * time.Millisecond, MaxWait: 200 * time.Millisecond}, quiet)
	stop := runWatcher(t, w)
	consultest.WaitFor(t, 10*time.Second, "several queries and writes", func() error {
		if src.checks.Load() < 6 || rec.calls.Load() < 6 {
			return fmt.Errorf("%d health queries, %d writes", src.checks.Load(), rec.calls.Load())
		}
		return nil
	})
	stop()
	// Only the health loop reads the checks, full reads included, one
	// read at a time. Writes happen one at a time.
	if m := src.maxInFlight.Load(); m != 1 {
		t.Errorf("%d health reads in flight at once", m)
	}
	if m := rec.maxSeen.Load(); m != 1 {
		t.Errorf("%d writes at once", m)
	}
}

func TestChangeRecordedWithinTwoSeconds(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	registerTTL(t, c, "web", "web-1", "web-ttl", api.HealthPassing)
	st := openStore(t)
	// The production settings: a reconciliation far away, so that only the
	// blocking queries can deliver the change, and a one-second query gap.
	w := New(consulClient(t, agent), st, Config{Reconcile: time.Hour, MinQueryGap: time.Second}, quiet)
	runWatcher(t, w)
	id := consultest.NodeName + "/web-1"
	statusOf := func() health.Status {
		for _, ih := range st.Current() {
			if ih.ID() == id {
				return ih.Status
			}
		}
		return ""
	}
	consultest.WaitFor(t, 10*time.Second, "web-1 recorded", func() error {
		if statusOf() != health.Passing {
			return fmt.Errorf("web-1 is %q", statusOf())
		}
		return nil
	})
	for _, status := range []string{api.HealthCritical, api.HealthPassing, api.HealthWarning} {
		changed := time.Now()
		if err := c.Agent().UpdateTTL("web-ttl", "", status); err != nil {
			t.Fatal(err)
		}
		consultest.WaitFor(t, 5*time.Second, "change recorded", func() error {
			if s := statusOf(); s != health.Status(status) {
				return fmt.Errorf("web-1 is %s", s)
			}
			return nil
		})
		seen := time.Since(changed)
		rec, err := st.Recording(context.Background(), id, changed.Add(-time.Minute), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		// The newest step of any of web-1's checks (its own and its node's) is the change.
		var last health.Step
		for _, steps := range rec.Checks {
			if s := steps[len(steps)-1]; s.At.After(last.At) {
				last = s
			}
		}
		t.Logf("%s: in the store after %v, span starts %v after the change", status, seen.Round(time.Millisecond), last.At.Sub(changed).Round(time.Millisecond))
		if seen > 2*time.Second || last.Status != health.Status(status) || last.At.Sub(changed) > 2*time.Second || last.At.Before(changed.Add(-time.Second)) {
			t.Errorf("%s seen after %v, span %+v", status, seen, last)
		}
	}
}

// slowFullReads delays the answer of every full (non-blocking) read of
// the checks, so that it is old by the time the watcher gets it.
type slowFullReads struct {
	*consul.Client
	delay time.Duration
}

func (s slowFullReads) Checks(ctx context.Context, b consul.Blocking) ([]health.Check, uint64, error) {
	checks, index, err := s.Client.Checks(ctx, b)
	if b.Index == 0 {
		time.Sleep(s.delay)
	}
	return checks, index, err
}

func TestFullReadsNeverUndoAChange(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	registerTTL(t, c, "web", "web-1", "web-ttl", api.HealthPassing)
	st := openStore(t)
	// Full reads come often and answer late: one read before a change and
	// answered after it must not be recorded on top of the change.
	src := slowFullReads{Client: consulClient(t, agent), delay: 400 * time.Millisecond}
	w := New(src, st, Config{Reconcile: 250 * time.Millisecond, MinQueryGap: 10 * time.Millisecond, MaxWait: time.Second}, quiet)
	runWatcher(t, w)
	id := consultest.NodeName + "/web-1"
	steps := func() (n int, last health.Status, err error) {
		rec, err := st.Recording(context.Background(), id, time.Now().Add(-time.Hour), time.Now())
		var newest health.Step
		for _, timeline := range rec.Checks {
			n += len(timeline)
			if s := timeline[len(timeline)-1]; s.At.After(newest.At) {
				newest = s
			}
		}
		return n, newest.Status, err
	}
	consultest.WaitFor(t, 10*time.Second, "web-1 passing", func() error {
		if n, last, err := steps(); err != nil || n < 2 || last != health.Passing {
			return fmt.Errorf("%d steps, the newest %q, err %v", n, last, err)
		}
		return nil
	})
	before, _, _ := steps()
	for _, status := range []string{api.HealthCritical, api.HealthPassing, api.HealthWarning} {
		if err := c.Agent().UpdateTTL("web-ttl", "", status); err != nil {
			t.Fatal(err)
		}
		// Long enough for several full reads started before the change to
		// come back.
		time.Sleep(1500 * time.Millisecond)
	}
	n, last, err := steps()
	if err != nil {
		t.Fatal(err)
	}
	if n != before+3 || last != health.Warning {
		t.Errorf("three changes recorded as %d steps ending %q, want %d ending warning", n-before, last, 3)
	}
}

func TestFollowsConsulAcrossRestart(t *testing.T) {
	agent := consultest.Start(t)
	st := openStore(t)
	w := New(consulClient(t, agent), st, Config{Reconcile: time.Hour, MinQueryGap: 50 * time.Millisecond}, quiet)
	runWatcher(t, w)
	waitStatus(t, w, "watching", func(s Status) bool { return s.ConsulAvailable })
	// Raise the index well above what a fresh agent starts from.
	c := agent.Client()
	for i := range 30 {
		consultest.RegisterExternal(t, c, "churn", "10.0.0.9", &api.AgentService{ID: fmt.Sprintf("churn-%d", i), Service: "churn"})
	}
	agent.Stop()
	agent.Restart()
	// A dev agent comes back with an empty catalog and a small index: a
	// new service must still be seen at once.
	registerTTL(t, agent.Client(), "after", "after", "", api.HealthWarning)
	consultest.WaitFor(t, 5*time.Second, "service registered after the restart", func() error {
		for _, ih := range st.Current() {
			if ih.Name == "after" && ih.Status == health.Warning {
				return nil
			}
		}
		return fmt.Errorf("%d instances, none is 'after' in warning", len(st.Current()))
	})
}

func TestNextIndex(t *testing.T) {
	w := New(nil, nil, Config{}, quiet)
	for _, tc := range []struct{ previous, index, want uint64 }{
		{0, 17, 17}, {17, 17, 17}, {17, 40, 40}, {40, 12, 0}, {0, 0, 0},
	} {
		if got := w.nextIndex(tc.previous, tc.index); got != tc.want {
			t.Errorf("nextIndex(%d, %d) = %d, want %d", tc.previous, tc.index, got, tc.want)
		}
	}
	if resets := w.Status().IndexResets; resets != 1 {
		t.Errorf("%d resets counted, want 1", resets)
	}
}

func TestFullReadsSchedule(t *testing.T) {
	f := fullReads{every: 60 * time.Second}
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for _, step := range []struct {
		after time.Duration
		index uint64
		want  consul.Blocking
		full  bool
	}{
		{0, 0, consul.Blocking{}, true},                                                  // nothing to block on yet
		{time.Second, 40, consul.Blocking{Index: 40, Wait: 10 * time.Second}, false},     // the wait is capped
		{55 * time.Second, 40, consul.Blocking{Index: 40, Wait: 5 * time.Second}, false}, // and ends when the full read is due
		{60 * time.Second, 40, consul.Blocking{}, true},                                  // due
		{61 * time.Second, 41, consul.Blocking{Index: 41, Wait: 10 * time.Second}, false},
		{62 * time.Second, 0, consul.Blocking{}, true}, // an index reset reads in full and restarts the schedule
		{121 * time.Second, 41, consul.Blocking{Index: 41, Wait: time.Second}, false},
	} {
		got, full := f.query(t0.Add(step.after), step.index, 10*time.Second)
		if got != step.want || full != step.full {
			t.Errorf("at +%v index %d: %+v full %v, want %+v full %v", step.after, step.index, got, full, step.want, step.full)
		}
	}
}

func TestNoBusyLoopWhenQuiet(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	src := &countingSource{Client: consulClient(t, agent)}
	w := New(src, openStore(t), Config{Reconcile: time.Hour, MinQueryGap: 100 * time.Millisecond}, quiet)
	runWatcher(t, w)
	waitStatus(t, w, "watching", func(s Status) bool { return s.ConsulAvailable })
	time.Sleep(time.Second) // let the start-up reads settle
	checks, catalog := src.checks.Load(), src.catalog.Load()
	time.Sleep(30 * time.Second)
	checks, catalog = src.checks.Load()-checks, src.catalog.Load()-catalog
	t.Logf("30 s of quiet: %d health queries, %d catalog queries (blocking wait %v)", checks, catalog, DefaultMaxWait)
	// Each loop re-asks when a blocking query times out: three times in 30 s.
	if checks > 5 || catalog > 5 {
		t.Errorf("busy loop: %d health and %d catalog queries in 30 s of quiet", checks, catalog)
	}
}

func TestRateLimitUnderFlapping(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	c := agent.Client()
	registerTTL(t, c, "flappy", "flappy", "flappy-ttl", api.HealthPassing)
	src := &countingSource{Client: consulClient(t, agent)}
	const gap = 500 * time.Millisecond
	w := New(src, openStore(t), Config{Reconcile: time.Hour, MinQueryGap: gap}, quiet)
	runWatcher(t, w)
	waitStatus(t, w, "watching", func(s Status) bool { return s.ConsulAvailable })

	start := src.checks.Load()
	began := time.Now()
	for i := 0; time.Since(began) < 5*time.Second; i++ {
		status := []string{api.HealthCritical, api.HealthPassing}[i%2]
		if err := c.Agent().UpdateTTL("flappy-ttl", "", status); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	queries := src.checks.Load() - start
	allowed := int32(2 + 5*time.Second/gap + 1)
	t.Logf("5 s of a check flapping every 20 ms: %d health queries (limit %d)", queries, allowed)
	if queries > allowed || queries < 5 {
		t.Errorf("%d health queries in 5 s with a %v gap", queries, gap)
	}
}

// failingRecorder makes the real store's writes fail while failing is set.
type failingRecorder struct {
	*store.Store
	failing atomic.Bool
}

func (f *failingRecorder) Apply(ctx context.Context, at time.Time, c store.Changes) (store.Written, error) {
	if f.failing.Load() {
		f.Store.EndObservation()
		return store.Written{}, errors.New("disk I/O error")
	}
	return f.Store.Apply(ctx, at, c)
}

func TestWatcherSurvivesDatabaseErrors(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	registerTTL(t, c, "web", "web-1", "web-ttl", api.HealthPassing)
	rec := &failingRecorder{Store: openStore(t)}
	// No reconciliation: only what the watch delivered, kept across the
	// failure, can bring the change in.
	w := New(consulClient(t, agent), rec, Config{Reconcile: time.Hour, MinQueryGap: 20 * time.Millisecond, MaxWait: time.Second}, quiet)
	runWatcher(t, w)
	webStatus := func() health.Status {
		for _, ih := range rec.Current() {
			if ih.Name == "web" {
				return ih.Status
			}
		}
		return ""
	}
	consultest.WaitFor(t, 10*time.Second, "web-1 recorded", func() error {
		if s := webStatus(); s != health.Passing {
			return fmt.Errorf("web-1 is %q", s)
		}
		return nil
	})

	rec.failing.Store(true)
	if err := c.Agent().UpdateTTL("web-ttl", "", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, w, "database error reported", func(s Status) bool {
		return s.ConsulAvailable && s.Error == "recording history failed: disk I/O error"
	})
	rec.failing.Store(false)
	waitStatus(t, w, "recovery", func(s Status) bool { return s.Error == "" })
	consultest.WaitFor(t, 10*time.Second, "the change made during the failure recorded", func() error {
		if s := webStatus(); s != health.Critical {
			return fmt.Errorf("web-1 is %q", s)
		}
		return nil
	})
}

// blockingRecorder holds every Record until released.
type blockingRecorder struct {
	*store.Store
	entered  chan struct{}
	release  chan struct{}
	finished atomic.Bool
	ctxErr   atomic.Value
}

func (b *blockingRecorder) Apply(ctx context.Context, at time.Time, c store.Changes) (store.Written, error) {
	b.entered <- struct{}{}
	<-b.release
	b.ctxErr.Store(fmt.Sprint(ctx.Err()))
	w, err := b.Store.Apply(ctx, at, c)
	b.finished.Store(err == nil)
	return w, err
}

func TestShutdownLetsTheWriteFinish(t *testing.T) {
	agent := consultest.Start(t)
	rec := &blockingRecorder{Store: openStore(t), entered: make(chan struct{}, 1), release: make(chan struct{})}
	w := New(consulClient(t, agent), rec, Config{Reconcile: time.Hour, MinQueryGap: 10 * time.Millisecond}, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()

	<-rec.entered
	cancel()
	select {
	case <-done:
		t.Fatal("Run returned while a write was in progress")
	case <-time.After(200 * time.Millisecond):
	}
	close(rec.release)
	<-done
	if !rec.finished.Load() || rec.ctxErr.Load() != "<nil>" {
		t.Errorf("the write in progress did not complete: finished %v, its context %v", rec.finished.Load(), rec.ctxErr.Load())
	}
	if len(rec.Current()) == 0 {
		t.Error("the poll was not recorded")
	}
}

// countingPruner counts Prune calls and the cutoffs they got.
type countingPruner struct {
	*store.Store
	calls   atomic.Int32
	cutoffs chan time.Time
}

func (c *countingPruner) Prune(ctx context.Context, cutoff time.Time) (store.Pruned, error) {
	c.calls.Add(1)
	select {
	case c.cutoffs <- cutoff:
	default:
	}
	return c.Store.Prune(ctx, cutoff)
}

func TestRunRetention(t *testing.T) {
	st := openStore(t)
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	snap := health.Snapshot{
		Instances: []health.Instance{{Node: "n", ServiceID: "s", Name: "s"}},
		Checks:    []health.Check{{Node: "n", CheckID: "c", ServiceID: "s", Status: health.Passing}},
	}
	for day := range 5 {
		at := t0.Add(time.Duration(day) * 24 * time.Hour)
		snap.Checks[0].Status = []health.Status{health.Passing, health.Critical}[day%2]
		if _, err := st.Record(context.Background(), at, snap); err != nil {
			t.Fatal(err)
		}
		st.EndObservation()
	}
	now := t0.Add(5 * 24 * time.Hour)
	p := &countingPruner{Store: st, cutoffs: make(chan time.Time, 10)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		RunRetention(ctx, p, 48*time.Hour, 20*time.Millisecond, func() time.Time { return now }, quiet)
		close(done)
	}()
	if cutoff := <-p.cutoffs; !cutoff.Equal(now.Add(-48 * time.Hour)) {
		t.Errorf("cutoff %v", cutoff)
	}
	<-p.cutoffs // a second round: it repeats
	cancel()
	<-done

	rec, err := st.Recording(context.Background(), "n/s", t0, now)
	if err != nil {
		t.Fatal(err)
	}
	// Observations of days 0-2 ended before the cutoff at day 3.
	if len(rec.Observed) != 2 || len(rec.Checks[0]) != 2 {
		t.Errorf("after retention: %d observations, %d spans: %+v", len(rec.Observed), len(rec.Checks[0]), rec)
	}
}

func TestGracefulStopRecordsObservationUntilTheEnd(t *testing.T) {
	agent := consultest.Start(t)
	st := openStore(t)
	// Nothing changes and no reconciliation comes: without a last write at
	// the stop, the stored period would end at the first record.
	w := New(consulClient(t, agent), st, Config{Reconcile: time.Hour, MinQueryGap: 20 * time.Millisecond}, quiet)
	stop := runWatcher(t, w)
	waitStatus(t, w, "watching", func(s Status) bool { return s.ConsulAvailable })
	first := st.LastRecorded()
	time.Sleep(1500 * time.Millisecond)
	stopped := time.Now()
	stop()
	if last := st.LastRecorded(); last.Before(stopped.Add(-100*time.Millisecond)) || !last.After(first) {
		t.Errorf("observation stored until %v; first record %v, stopped at %v", last, first, stopped)
	}
}
