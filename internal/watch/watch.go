// Package watch runs consul-monitor's background work: the watcher that
// reads Consul and records what it saw, and the retention loop.
package watch

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/health"
	"github.com/consul-monitor/consul-monitor/internal/store"
)

// Source reads Consul's current state.
type Source interface {
	Snapshot(ctx context.Context) (health.Snapshot, error)
}

// Recorder stores what a poll saw.
type Recorder interface {
	Record(ctx context.Context, at time.Time, snap health.Snapshot) (store.Written, error)
	// EndObservation says Consul is not being observed from now on.
	EndObservation()
}

// Status is what the watcher knows about its own health.
type Status struct {
	// ConsulAvailable is true when the last attempt to read Consul worked.
	ConsulAvailable bool
	// LastPoll is when the last fully successful poll (read and recorded)
	// happened; zero before the first.
	LastPoll time.Time
	// Error says why the last poll failed, or is empty.
	Error string
}

// Watcher polls Consul at a fixed interval and records each snapshot. It
// never runs two polls at once: a poll that overruns the interval delays the
// next one instead of overlapping it.
type Watcher struct {
	source   Source
	recorder Recorder
	interval time.Duration
	log      *slog.Logger
	// Now is the clock; tests replace it.
	Now func() time.Time

	mu     sync.Mutex
	status Status
}

// New returns a watcher that polls source every interval into recorder.
func New(source Source, recorder Recorder, interval time.Duration, log *slog.Logger) *Watcher {
	return &Watcher{
		source:   source,
		recorder: recorder,
		interval: interval,
		log:      log,
		Now:      time.Now,
		status:   Status{Error: "waiting for the first poll"},
	}
}

// Status returns the watcher's current status.
func (w *Watcher) Status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status
}

// Run polls at once and then every interval until ctx ends. A poll in
// progress when ctx ends is not recorded half-way: its write completes
// before Run returns.
func (w *Watcher) Run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		started := time.Now()
		w.poll(ctx)
		timer.Reset(max(0, w.interval-time.Since(started)))
	}
}

// recordTimeout bounds a database write that shutdown does not interrupt.
const recordTimeout = 30 * time.Second

func (w *Watcher) poll(ctx context.Context) {
	// A read may take at most one interval, and no less than a few seconds,
	// so a hung Consul cannot stall the watcher for long.
	readCtx, cancel := context.WithTimeout(ctx, max(w.interval, 5*time.Second))
	snap, err := w.source.Snapshot(readCtx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down: not an outage
		}
		w.recorder.EndObservation()
		w.log.Warn("consul unavailable", "err", err)
		w.setStatus(func(s *Status) { s.ConsulAvailable, s.Error = false, err.Error() })
		return
	}
	at := w.Now()
	// Shutdown must not cut a write short: it finishes on its own deadline.
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	written, err := w.recorder.Record(recordCtx, at, snap)
	cancel()
	if err != nil {
		w.log.Error("recording poll failed", "err", err)
		w.setStatus(func(s *Status) { s.ConsulAvailable, s.Error = true, "recording history failed: "+err.Error() })
		return
	}
	w.log.Debug("poll recorded", "instances", len(snap.Instances), "checks", len(snap.Checks),
		"spans", written.Spans, "rows", written.Total())
	if wasDown := !w.Status().ConsulAvailable; wasDown {
		w.log.Info("consul available", "instances", len(snap.Instances), "checks", len(snap.Checks))
	}
	w.setStatus(func(s *Status) { *s = Status{ConsulAvailable: true, LastPoll: at} })
}

func (w *Watcher) setStatus(update func(*Status)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	update(&w.status)
}

// Pruner deletes history older than a cutoff.
type Pruner interface {
	Prune(ctx context.Context, cutoff time.Time) (int64, error)
}

// RunRetention deletes history older than retention at once and then every
// interval until ctx ends. Failures are logged and retried next time.
func RunRetention(ctx context.Context, p Pruner, retention, interval time.Duration, now func() time.Time, log *slog.Logger) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		cutoff := now().Add(-retention)
		started := time.Now()
		deleted, err := p.Prune(ctx, cutoff)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("deleting old history failed", "err", err, "deleted", deleted)
		case deleted > 0:
			log.Info("deleted old history", "rows", deleted, "cutoff", cutoff, "took", time.Since(started))
		}
		timer.Reset(interval)
	}
}
