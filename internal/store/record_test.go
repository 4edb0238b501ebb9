package store

import (
	"context"
	"database/sql"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/health"
)

// spans returns the stored (at, status) rows of a check, oldest first.
func spans(tb testing.TB, s *Store, checkID string) []health.Step {
	tb.Helper()
	rows, err := s.reader.Query(`SELECT s.at_ms, s.status FROM check_spans s JOIN checks c ON c.id = s.check_id
		WHERE c.check_id = ? ORDER BY s.at_ms`, checkID)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var out []health.Step
	for rows.Next() {
		var at int64
		var status string
		if err := rows.Scan(&at, &status); err != nil {
			tb.Fatal(err)
		}
		out = append(out, health.Step{At: fromMillis(at), Status: health.Status(status)})
	}
	return out
}

func observations(tb testing.TB, s *Store) []health.Period {
	tb.Helper()
	rows, err := s.reader.Query(`SELECT start_ms, end_ms FROM observations ORDER BY start_ms`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var out []health.Period
	for rows.Next() {
		var start, end int64
		if err := rows.Scan(&start, &end); err != nil {
			tb.Fatal(err)
		}
		out = append(out, health.Period{Start: fromMillis(start), End: fromMillis(end)})
	}
	return out
}

func TestOnlyCertifiedDeliveriesObserve(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "h.db"))
	snap := cluster(2)
	mustRecord(t, s, t0, snap)
	// The health watch fails; the catalog keeps answering.
	s.EndObservation()
	fewer := snap.Instances[:1]
	if _, err := s.Apply(context.Background(), t0.Add(time.Minute), Changes{Instances: fewer}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(context.Background(), t0.Add(2*time.Minute), Changes{Instances: snap.Instances}); err != nil {
		t.Fatal(err)
	}
	if s.Observing() {
		t.Error("a catalog delivery opened an observation")
	}
	if got := observations(t, s); len(got) != 1 || !got[0].End.Equal(t0) {
		t.Errorf("observations %+v, want one ending at %v", got, t0)
	}
	if got := s.LastRecorded(); !got.Equal(t0) {
		t.Errorf("LastRecorded %v, want the last certified moment %v", got, t0)
	}
	// The next health answer opens a new period from its own return.
	if _, err := s.Apply(context.Background(), t0.Add(3*time.Minute), Changes{Certified: true}); err != nil {
		t.Fatal(err)
	}
	if got := observations(t, s); len(got) != 2 || !got[1].Start.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("observations %+v, want a second one from %v", got, t0.Add(3*time.Minute))
	}
}

// countingHandler counts the records logged at Warn.
type countingHandler struct {
	slog.Handler
	warnings atomic.Int32
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		h.warnings.Add(1)
	}
	return nil
}

func TestClockStepBackIsClamped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	s := mustOpen(t, path)
	logs := &countingHandler{Handler: slog.DiscardHandler}
	s.Log = slog.New(logs)
	snap := cluster(1)
	mustRecord(t, s, t0.Add(10*time.Minute), snap)
	// The clock steps back five minutes: two records before it catches up.
	mustRecord(t, s, t0.Add(5*time.Minute), withCheckStatus(snap, "service:svc-0", health.Critical))
	mustRecord(t, s, t0.Add(6*time.Minute), withCheckStatus(snap, "service:svc-0", health.Warning))
	if n := logs.warnings.Load(); n != 1 {
		t.Errorf("%d warnings for one clock step, want 1", n)
	}
	got := spans(t, s, "service:svc-0")
	want := []health.Step{
		{At: t0.Add(10 * time.Minute), Status: health.Passing},
		{At: t0.Add(10*time.Minute + time.Millisecond), Status: health.Critical},
		{At: t0.Add(10*time.Minute + 2*time.Millisecond), Status: health.Warning},
	}
	if len(got) != len(want) {
		t.Fatalf("spans %+v, want %+v", got, want)
	}
	for i := range want {
		if !got[i].At.Equal(want[i].At) || got[i].Status != want[i].Status {
			t.Errorf("span %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if last := s.LastRecorded(); last.Before(t0.Add(10 * time.Minute)) {
		t.Errorf("LastRecorded went back to %v", last)
	}
	for _, p := range observations(t, s) {
		if p.End.Before(p.Start) {
			t.Errorf("observation %+v ends before it starts", p)
		}
	}
	// The clock catches up, then steps back again: a second warning.
	mustRecord(t, s, t0.Add(11*time.Minute), withCheckStatus(snap, "service:svc-0", health.Warning))
	mustRecord(t, s, t0.Add(7*time.Minute), withCheckStatus(snap, "service:svc-0", health.Warning))
	if n := logs.warnings.Load(); n != 2 {
		t.Errorf("%d warnings for two clock steps, want 2", n)
	}

	// After a restart the newest stored time is still the floor.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, path)
	mustRecord(t, s, t0, withCheckStatus(snap, "service:svc-0", health.Critical))
	got = spans(t, s, "service:svc-0")
	if last := got[len(got)-1]; last.Status != health.Critical || last.At.Before(t0.Add(11*time.Minute)) {
		t.Errorf("after a restart with the clock behind, the change is stored at %+v", last)
	}
	obs := observations(t, s)
	for i := 1; i < len(obs); i++ {
		if obs[i].Start.Before(obs[i-1].End) {
			t.Errorf("observations overlap: %+v", obs)
		}
	}
}

func TestSameMillisecondChangesAreBothKept(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "h.db"))
	snap := cluster(2)
	mustRecord(t, s, t0, snap)
	mustRecord(t, s, t0, withCheckStatus(snap, "service:svc-0", health.Critical))
	got := spans(t, s, "service:svc-0")
	if len(got) != 2 || got[1].Status != health.Critical || !got[1].At.Equal(t0.Add(time.Millisecond)) {
		t.Errorf("spans %+v, want passing at %v then critical 1 ms later", got, t0)
	}
	// An instance that leaves and comes back within the millisecond.
	gone := snap
	gone.Instances = snap.Instances[:1]
	mustRecord(t, s, t0.Add(time.Millisecond), gone)
	mustRecord(t, s, t0.Add(time.Millisecond), snap)
	rows, err := s.reader.Query(`SELECT r.at_ms, r.registered FROM registrations r JOIN instances i ON i.id = r.instance_id
		WHERE i.service_id = 'svc-1' ORDER BY r.at_ms`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var regs []string
	for rows.Next() {
		var at int64
		var registered bool
		if err := rows.Scan(&at, &registered); err != nil {
			t.Fatal(err)
		}
		regs = append(regs, fromMillis(at).Sub(t0).String()+map[bool]string{true: " in", false: " out"}[registered])
	}
	if got, want := strings.Join(regs, ", "), "0s in, 1ms out, 2ms in"; got != want {
		t.Errorf("registrations of svc-1: %s, want %s", got, want)
	}
}

func TestProbeWriteSeesTheWriteLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	s := mustOpen(t, path)
	if err := s.ProbeWrite(context.Background()); err != nil {
		t.Fatalf("probe on a healthy database: %v", err)
	}
	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.SetMaxOpenConns(1)
	conn, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	err = s.ProbeWrite(context.Background())
	if err == nil {
		t.Fatal("probe succeeded while another connection held the write lock")
	}
	if took := time.Since(started); took > ProbeWriteTimeout+2*time.Second {
		t.Errorf("probe took %v, bound %v", took, ProbeWriteTimeout)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("reads fail too: %v", err)
	}
	if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if err := s.ProbeWrite(context.Background()); err != nil {
		t.Errorf("probe after the lock was released: %v", err)
	}
}
