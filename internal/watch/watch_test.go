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

func TestWatcherSurvivesConsulOutage(t *testing.T) {
	agent := consultest.Start(t)
	st := openStore(t)
	w := New(consulClient(t, agent), st, 100*time.Millisecond, quiet)
	runWatcher(t, w)

	waitStatus(t, w, "first poll", func(s Status) bool { return s.ConsulAvailable && !s.LastPoll.IsZero() })
	if len(st.Current()) == 0 || !st.Observing() {
		t.Fatalf("after a poll: %d instances, observing %v", len(st.Current()), st.Observing())
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

// slowSource delays every read and records how many run at once.
type slowSource struct {
	Source
	delay            time.Duration
	running, maxSeen atomic.Int32
	reads            atomic.Int32
}

func (s *slowSource) Snapshot(ctx context.Context) (health.Snapshot, error) {
	n := s.running.Add(1)
	defer s.running.Add(-1)
	for {
		old := s.maxSeen.Load()
		if n <= old || s.maxSeen.CompareAndSwap(old, n) {
			break
		}
	}
	s.reads.Add(1)
	time.Sleep(s.delay)
	return s.Source.Snapshot(ctx)
}

func TestWatcherNeverOverlapsPolls(t *testing.T) {
	agent := consultest.Start(t)
	src := &slowSource{Source: consulClient(t, agent), delay: 150 * time.Millisecond}
	w := New(src, openStore(t), 20*time.Millisecond, quiet)
	stop := runWatcher(t, w)
	consultest.WaitFor(t, 10*time.Second, "five reads", func() error {
		if n := src.reads.Load(); n < 5 {
			return fmt.Errorf("%d reads", n)
		}
		return nil
	})
	stop()
	if m := src.maxSeen.Load(); m != 1 {
		t.Errorf("%d polls ran at once", m)
	}
}

// failingRecorder makes the real store's writes fail while failing is set.
type failingRecorder struct {
	*store.Store
	failing atomic.Bool
}

func (f *failingRecorder) Record(ctx context.Context, at time.Time, snap health.Snapshot) (store.Written, error) {
	if f.failing.Load() {
		f.Store.EndObservation()
		return store.Written{}, errors.New("disk I/O error")
	}
	return f.Store.Record(ctx, at, snap)
}

func TestWatcherSurvivesDatabaseErrors(t *testing.T) {
	agent := consultest.Start(t)
	rec := &failingRecorder{Store: openStore(t)}
	rec.failing.Store(true)
	w := New(consulClient(t, agent), rec, 50*time.Millisecond, quiet)
	runWatcher(t, w)

	waitStatus(t, w, "database error reported", func(s Status) bool {
		return s.ConsulAvailable && s.Error == "recording history failed: disk I/O error"
	})
	rec.failing.Store(false)
	waitStatus(t, w, "recovery", func(s Status) bool { return s.Error == "" && !s.LastPoll.IsZero() })
	if len(rec.Current()) == 0 {
		t.Error("nothing recorded after the database recovered")
	}
}

// blockingRecorder holds every Record until released.
type blockingRecorder struct {
	*store.Store
	entered  chan struct{}
	release  chan struct{}
	finished atomic.Bool
	ctxErr   atomic.Value
}

func (b *blockingRecorder) Record(ctx context.Context, at time.Time, snap health.Snapshot) (store.Written, error) {
	b.entered <- struct{}{}
	<-b.release
	b.ctxErr.Store(fmt.Sprint(ctx.Err()))
	w, err := b.Store.Record(ctx, at, snap)
	b.finished.Store(err == nil)
	return w, err
}

func TestShutdownLetsTheWriteFinish(t *testing.T) {
	agent := consultest.Start(t)
	rec := &blockingRecorder{Store: openStore(t), entered: make(chan struct{}, 1), release: make(chan struct{})}
	w := New(consulClient(t, agent), rec, time.Hour, quiet)
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

func (c *countingPruner) Prune(ctx context.Context, cutoff time.Time) (int64, error) {
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
