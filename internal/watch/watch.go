// Package watch runs consul-monitor's background work: the watcher that
// follows Consul and records what it sees, and the retention loop.
package watch

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/consul"
	"github.com/consul-monitor/consul-monitor/internal/health"
	"github.com/consul-monitor/consul-monitor/internal/store"
)

// Source reads Consul. Checks and CatalogIndex may block until something
// changes.
type Source interface {
	Checks(ctx context.Context, b consul.Blocking) ([]health.Check, uint64, error)
	CatalogIndex(ctx context.Context, b consul.Blocking) (uint64, error)
	Instances(ctx context.Context) ([]health.Instance, error)
}

// Recorder stores what the watcher saw. A nil part of the changes has not
// changed since the last Apply.
type Recorder interface {
	Apply(ctx context.Context, at time.Time, c store.Changes) (store.Written, error)
	// EndObservation says Consul is not being observed from now on.
	EndObservation()
}

// Config tunes the watcher.
type Config struct {
	// Reconcile is how often each watch reads in full, whatever its index
	// says: catalog changes the index does not move for (a node's new
	// address) show up within this time.
	Reconcile time.Duration
	// MinQueryGap is the least time between two queries of one watch loop
	// after a burst of two, so that flapping checks cannot make the
	// watcher hammer Consul.
	MinQueryGap time.Duration
	// MaxWait caps how long one blocking query waits: below load balancer
	// idle timeouts, and short enough that a silent loss of Consul is
	// noticed soon.
	MaxWait time.Duration
}

// DefaultMaxWait is the blocking wait used when Config leaves it unset.
const DefaultMaxWait = 10 * time.Second

// Part is the state of one thing the watcher depends on.
type Part struct {
	// OK is true while it works.
	OK bool
	// Error says why it does not, or is empty.
	Error string
	// Since is when the current state, working or failing, began.
	Since time.Time
	// LastOK is its last success; zero if it never worked.
	LastOK time.Time
}

func (p *Part) succeed(at time.Time) {
	if !p.OK {
		p.OK, p.Error, p.Since = true, "", at
	}
	p.LastOK = at
}

func (p *Part) fail(at time.Time, err string) {
	if p.OK || p.Since.IsZero() {
		p.Since = at
	}
	p.OK, p.Error = false, err
}

// Status is what the watcher knows about its own health. Consul's state and
// the recording's are separate facts: a failing database never makes Consul
// look unavailable, nor a failing Consul the database.
type Status struct {
	// Consul is the health watch: LastOK is its last successful answer.
	Consul Part
	// Catalog is the catalog watch: LastOK is the last read that found
	// the instance list current.
	Catalog Part
	// Recording is the database: LastOK is the last committed write.
	Recording Part
	// LastPoll is the last certified moment recorded; zero before the
	// first one.
	LastPoll time.Time
	// IndexResets counts the times Consul's index went backwards (a
	// restart, a restored snapshot, a stale server) and watching began
	// again from scratch.
	IndexResets int
}

// ConsulAvailable is true when the last health query worked.
func (s Status) ConsulAvailable() bool { return s.Consul.OK }

// Watcher follows Consul with blocking queries: one loop on the health of
// every check and one on the catalog, each reading in full every Reconcile.
// A single goroutine records what they deliver, so writes never overlap.
type Watcher struct {
	source   Source
	recorder Recorder
	cfg      Config
	log      *slog.Logger
	// Now is the clock; tests replace it.
	Now func() time.Time

	mu     sync.Mutex
	status Status
	// live is Consul's state as last received, kept apart from what was
	// recorded, so that it can be shown while the database fails.
	liveChecks    []health.Check
	liveInstances []health.Instance
	liveVersion   uint64
	liveEvaluated *store.Published
	// catalogTried is closed once the catalog watch has tried its first
	// read, so that the first health answer finds the instances there.
	catalogTried     chan struct{}
	catalogTriedOnce sync.Once
}

// New returns a watcher that follows source into recorder.
func New(source Source, recorder Recorder, cfg Config, log *slog.Logger) *Watcher {
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	now := time.Now()
	w := &Watcher{
		source:   source,
		recorder: recorder,
		cfg:      cfg,
		log:      log,
		Now:      time.Now,
		status: Status{
			Consul:    Part{Error: "waiting for the first answer from Consul", Since: now},
			Catalog:   Part{Error: "waiting for the first read of the catalog", Since: now},
			Recording: Part{OK: true, Since: now},
		},
		catalogTried: make(chan struct{}),
	}
	// Until the catalog is read, Consul's live checks are paired with the
	// instances the database last knew, so that live statuses can be shown
	// even when the instance list cannot be read at all.
	if known, ok := recorder.(interface{ Published() store.Published }); ok {
		for _, inst := range known.Published().Instances {
			w.liveInstances = append(w.liveInstances, inst.Instance)
		}
	}
	return w
}

// ShowLive reports whether the API should show Live rather than what was
// recorded: while writes fail, and while Consul answers but the instance
// list has not been read since start (nothing can be recorded then, and the
// recorded statuses are from before the start).
func (s Status) ShowLive() bool {
	return !s.Recording.OK || (s.Consul.OK && s.Catalog.LastOK.IsZero())
}

// Live returns Consul's state as the watcher last received it, whether or
// not it was recorded, with a version that changes whenever it does. It is
// what to show while recording fails; while recording works, the store's
// committed state is the one to show.
func (w *Watcher) Live() store.Published {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.liveEvaluated == nil || w.liveEvaluated.Version != w.liveVersion {
		ev := health.Evaluate(health.Snapshot{Instances: w.liveInstances, Checks: w.liveChecks})
		w.liveEvaluated = &store.Published{Instances: ev.Instances, NodeChecks: ev.NodeChecks, Version: w.liveVersion}
	}
	return *w.liveEvaluated
}

func (w *Watcher) setLive(checks []health.Check, instances []health.Instance) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if checks != nil {
		w.liveChecks = checks
	}
	if instances != nil {
		w.liveInstances = instances
	}
	w.liveVersion++
}

// Status returns the watcher's current status.
func (w *Watcher) Status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status
}

func (w *Watcher) setStatus(update func(*Status)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	update(&w.status)
}

// update is what a watch loop delivers: new checks, new instances, or
// neither (a blocking query that timed out: still observed, unchanged).
type update struct {
	at        time.Time
	checks    []health.Check
	instances []health.Instance
	// certified is set for a successful health answer, which vouches for
	// the state from the previous answer up to at.
	certified bool
	// resumes is set when the answer does not vouch for the time since the
	// previous one.
	resumes bool
	// healthErr is set when the health of checks could not be read: what
	// happens from then on is unknown.
	healthErr error
}

// firstCatalogWait is how long the health watch waits for the catalog's
// first read before its own first query.
const firstCatalogWait = 2 * time.Second

// slowHandoff is how long after a health answer the next query may be sent
// (the recorder slow to take the answer, the rate limiter holding the query)
// before that query's answer, if it brings a change, no longer vouches for the
// time in between.
const slowHandoff = time.Second

// recordTimeout bounds a database write that shutdown does not interrupt.
const recordTimeout = 30 * time.Second

// Run watches until ctx ends. A write in progress when ctx ends completes
// before Run returns.
func (w *Watcher) Run(ctx context.Context) {
	updates := make(chan update)
	var loops sync.WaitGroup
	loops.Go(func() { w.watchHealth(ctx, updates) })
	loops.Go(func() { w.watchCatalog(ctx, updates) })
	defer loops.Wait()

	// The first write needs both halves; after it, each delivery carries
	// only what changed. Parts a failed write carried are kept and sent
	// again with the next one, so no change is lost to a database error.
	// Whether a write certifies is the delivery's own: a health answer
	// whose write failed vouches for nothing after it.
	var unsaved store.Changes
	started := false
	for {
		var u update
		select {
		case <-ctx.Done():
			// No last write: the time since the last health answer is not
			// certified, so a stop ends observation at that answer.
			return
		case u = <-updates:
		}
		if u.healthErr != nil {
			w.recorder.EndObservation()
			continue
		}
		if u.checks != nil {
			unsaved.Checks = u.checks
		}
		if u.instances != nil {
			unsaved.Instances = u.instances
		}
		unsaved.Certified, unsaved.Resumes = u.certified, u.resumes
		if !started && (unsaved.Checks == nil || unsaved.Instances == nil) {
			continue
		}
		if w.record(ctx, u.at, unsaved) {
			started, unsaved = true, store.Changes{}
		}
	}
}

// record applies c and reports whether it was stored.
func (w *Watcher) record(ctx context.Context, at time.Time, c store.Changes) bool {
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	written, err := w.recorder.Apply(recordCtx, at, c)
	cancel()
	if err != nil {
		w.log.Error("recording Consul's state failed", "err", err)
		w.setStatus(func(s *Status) { s.Recording.fail(w.Now(), "recording history failed: "+err.Error()) })
		return false
	}
	if written.Spans > 0 {
		w.log.Debug("recorded changes", "spans", written.Spans, "rows", written.Total())
	}
	w.setStatus(func(s *Status) {
		if !s.Recording.OK {
			w.log.Info("recording history again")
		}
		s.Recording.succeed(w.Now())
		if c.Certified {
			s.LastPoll = at
		}
	})
	return true
}

// send delivers u unless ctx ends first.
func send(ctx context.Context, updates chan<- update, u update) bool {
	select {
	case updates <- u:
		return true
	case <-ctx.Done():
		return false
	}
}

// queryTimeout bounds one blocking query: Consul may add up to a sixteenth
// of the wait as jitter, and the answer must still arrive.
func (w *Watcher) queryTimeout() time.Duration {
	return w.cfg.MaxWait + w.cfg.MaxWait/16 + 10*time.Second
}

// nextIndex is the index to block on after a query answered with index:
// back to zero when it went backwards, since Consul's history restarted
// and waiting for the old index to come round again would miss changes.
func (w *Watcher) nextIndex(previous, index uint64) uint64 {
	if index < previous {
		w.setStatus(func(s *Status) { s.IndexResets++ })
		w.log.Info("consul index went backwards; watching from scratch", "was", previous, "now", index)
		return 0
	}
	return index
}

// watchHealth follows every check with a blocking query on the health state.
func (w *Watcher) watchHealth(ctx context.Context, updates chan<- update) {
	limit := newLimiter(2, w.cfg.MinQueryGap)
	retry := newBackoff()
	full := fullReads{every: w.cfg.Reconcile}
	// The catalog is read first, so that the first health answer, which
	// certifies, finds the instances there and begins the observation. A
	// catalog that hangs delays this only a little.
	select {
	case <-w.catalogTried:
	case <-time.After(firstCatalogWait):
	case <-ctx.Done():
		return
	}
	var index uint64
	// previous is when the last answer returned. The next query is sent
	// once the recorder has taken that answer and the rate limiter lets
	// it through, and either may take a while.
	var previous time.Time
	for limit.wait(ctx) == nil {
		query, fullRead := full.query(time.Now(), index, w.cfg.MaxWait)
		sentAt := w.Now()
		queryCtx, cancel := context.WithTimeout(ctx, w.queryTimeout())
		sent := time.Now()
		checks, next, err := w.source.Checks(queryCtx, query)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.log.Warn("consul unavailable", "err", err)
			w.setStatus(func(s *Status) { s.Consul.fail(w.Now(), err.Error()) })
			// Start again from a full read: a Consul that restarted may
			// never reach the old index again.
			index = 0
			if !send(ctx, updates, update{healthErr: err}) || sleep(ctx, retry.next()) != nil {
				return
			}
			continue
		}
		retry.reset()
		u := update{at: w.Now(), certified: true}
		// An unchanged index vouches for all the time since the previous
		// answer. A change found by a query sent long after it, because
		// the recorder was slow to take that answer or the rate limiter
		// held the query back, may have happened at any moment in
		// between, and other changes with it: that time is not certified.
		// So is a change in an answer that came back well after Consul
		// would have sent it (a partition that healed before the query
		// timed out): Consul answers a change at once, so the change may
		// lie anywhere in the time the answer was held.
		late := time.Since(sent) > query.Wait+query.Wait/16+slowHandoff
		u.resumes = next != index && !previous.IsZero() && (sentAt.Sub(previous) > slowHandoff || late)
		if fullRead || next != index {
			u.checks = checks
			if u.checks == nil {
				u.checks = []health.Check{}
			}
			w.setLive(u.checks, nil)
		}
		w.setStatus(func(s *Status) {
			if !s.Consul.OK {
				w.log.Info("watching Consul")
			}
			s.Consul.succeed(u.at)
		})
		index = w.nextIndex(index, next)
		if !send(ctx, updates, u) {
			return
		}
		previous = u.at
	}
}

// watchCatalog reads the instances again each time the catalog changes.
func (w *Watcher) watchCatalog(ctx context.Context, updates chan<- update) {
	limit := newLimiter(2, w.cfg.MinQueryGap)
	retry := newBackoff()
	full := fullReads{every: w.cfg.Reconcile}
	var index uint64
	for limit.wait(ctx) == nil {
		query, fullRead := full.query(time.Now(), index, w.cfg.MaxWait)
		queryCtx, cancel := context.WithTimeout(ctx, w.queryTimeout())
		next, err := w.source.CatalogIndex(queryCtx, query)
		cancel()
		var instances []health.Instance
		if err == nil && (fullRead || next != index) {
			instances, err = w.readInstances(ctx)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// The health loop decides whether Consul is observed; this
			// only keeps the instance list from being refreshed, which the
			// status says.
			w.log.Warn("reading the catalog failed", "err", err)
			w.setStatus(func(s *Status) { s.Catalog.fail(w.Now(), err.Error()) })
			w.catalogTriedOnce.Do(func() { close(w.catalogTried) })
			index = 0
			if sleep(ctx, retry.next()) != nil {
				return
			}
			continue
		}
		retry.reset()
		at := w.Now()
		if instances != nil {
			w.setLive(nil, instances)
		}
		w.setStatus(func(s *Status) { s.Catalog.succeed(at) })
		index = w.nextIndex(index, next)
		if instances != nil && !send(ctx, updates, update{at: at, instances: instances}) {
			return
		}
		w.catalogTriedOnce.Do(func() { close(w.catalogTried) })
	}
}

func (w *Watcher) readInstances(ctx context.Context) ([]health.Instance, error) {
	readCtx, cancel := context.WithTimeout(ctx, w.queryTimeout())
	defer cancel()
	instances, err := w.source.Instances(readCtx)
	if instances == nil && err == nil {
		instances = []health.Instance{}
	}
	return instances, err
}

// fullReads schedules a watch loop's reconciliation. Each loop does its own
// full reads, rather than a third loop doing them for both: a loop's
// answers then arrive in the order they were read, and a full read begun
// before a change can never be recorded over it.
type fullReads struct {
	every time.Duration
	due   time.Time
}

// query returns the query to send next, and whether it reads in full: when
// there is no index to block on or a full read is due. A blocking query
// never waits past the next full read.
func (f *fullReads) query(now time.Time, index uint64, maxWait time.Duration) (consul.Blocking, bool) {
	if index == 0 || !now.Before(f.due) {
		f.due = now.Add(f.every)
		return consul.Blocking{}, true
	}
	return consul.Blocking{Index: index, Wait: min(maxWait, f.due.Sub(now))}, false
}

// limiter lets burst queries through at once, then one per gap.
type limiter struct {
	burst  float64
	gap    time.Duration
	tokens float64
	last   time.Time
	// now and sleep are the clock; tests replace them.
	now   func() time.Time
	sleep func(context.Context, time.Duration) error
}

func newLimiter(burst int, gap time.Duration) *limiter {
	return &limiter{burst: float64(burst), gap: gap, tokens: float64(burst), last: time.Now(), now: time.Now, sleep: sleep}
}

func (l *limiter) wait(ctx context.Context) error {
	if l.gap <= 0 {
		return ctx.Err()
	}
	now := l.now()
	l.tokens = min(l.burst, l.tokens+float64(now.Sub(l.last))/float64(l.gap))
	l.last = now
	if l.tokens < 1 {
		if err := l.sleep(ctx, time.Duration((1-l.tokens)*float64(l.gap))); err != nil {
			return err
		}
		l.tokens, l.last = 1, l.now()
	}
	l.tokens--
	return ctx.Err()
}

// backoff spaces out retries after failures: 250 ms doubling to 30 s, with
// jitter so that many monitors do not retry in step.
type backoff struct{ delay time.Duration }

func newBackoff() *backoff { return &backoff{} }

func (b *backoff) next() time.Duration {
	b.delay = min(max(2*b.delay, 250*time.Millisecond), 30*time.Second)
	return b.delay/2 + rand.N(b.delay/2+1)
}

func (b *backoff) reset() { b.delay = 0 }

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Pruner deletes history older than a cutoff.
type Pruner interface {
	Prune(ctx context.Context, cutoff time.Time) (store.Pruned, error)
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
		pruned, err := p.Prune(ctx, cutoff)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("deleting old history failed", "err", err, "deleted", pruned.Rows)
		case pruned.Rows > 0:
			log.Info("deleted old history", "rows", pruned.Rows, "cutoff", cutoff, "took", time.Since(started),
				"batches", pruned.Batches, "longest_batch", pruned.LongestBatch)
		}
		timer.Reset(interval)
	}
}
