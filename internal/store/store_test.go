package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/health"
)

func mustOpen(tb testing.TB, path string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func mustRecord(tb testing.TB, s *Store, at time.Time, snap health.Snapshot) Written {
	tb.Helper()
	w, err := s.Record(context.Background(), at, snap)
	if err != nil {
		tb.Fatal(err)
	}
	return w
}

// cluster builds a snapshot of n instances of service "svc" on node "n0",
// each with one passing check, plus the node's serfHealth check.
func cluster(n int) health.Snapshot {
	snap := health.Snapshot{Checks: []health.Check{{Node: "n0", CheckID: "serfHealth", Name: "Serf", Status: health.Passing}}}
	for i := range n {
		id := fmt.Sprintf("svc-%d", i)
		snap.Instances = append(snap.Instances, health.Instance{Node: "n0", ServiceID: id, Name: "svc", Address: "10.0.0.1", Port: 8000 + i, Tags: []string{"a"}})
		snap.Checks = append(snap.Checks, health.Check{Node: "n0", CheckID: "service:" + id, Name: "alive", ServiceID: id, Status: health.Passing, Output: "ok"})
	}
	return snap
}

func withCheckStatus(snap health.Snapshot, checkID string, status health.Status) health.Snapshot {
	out := snap
	out.Checks = append([]health.Check(nil), snap.Checks...)
	for i := range out.Checks {
		if out.Checks[i].CheckID == checkID {
			out.Checks[i].Status = status
		}
	}
	return out
}

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

func TestRecordWritesOnlyChanges(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "h.db"))
	snap := cluster(100)

	first := mustRecord(t, s, t0, snap)
	// 100 registrations + 101 first spans; 100 instances + 101 checks; 1 observation.
	if first.Spans != 201 || first.Catalog != 201 || first.Observations != 1 {
		t.Errorf("first poll wrote %+v", first)
	}
	same := mustRecord(t, s, t0.Add(time.Minute), snap)
	if same != (Written{Observations: 1}) {
		t.Errorf("poll with no change wrote %+v, want only the observation", same)
	}
	changed := mustRecord(t, s, t0.Add(2*time.Minute), withCheckStatus(snap, "service:svc-7", health.Critical))
	if changed != (Written{Spans: 1, Catalog: 1, Observations: 1}) {
		t.Errorf("poll with one check change wrote %+v", changed)
	}
	if got := countRows(t, s, "observations"); got != 1 {
		t.Errorf("%d observation rows, want 1 extended row", got)
	}
	if got := countRows(t, s, "check_spans"); got != 102 {
		t.Errorf("%d check spans, want 102", got)
	}
}

func TestCurrentFollowsPolls(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "h.db"))
	if len(s.Current()) != 0 {
		t.Fatal("a new database has instances")
	}
	snap := cluster(3)
	mustRecord(t, s, t0, withCheckStatus(snap, "service:svc-1", health.Warning))
	cur := s.Current()
	if len(cur) != 3 || cur[1].ID() != "n0/svc-1" || cur[1].Status != health.Warning {
		t.Fatalf("current = %+v", cur)
	}
	snap.Instances = snap.Instances[:2]
	snap.Checks = snap.Checks[:3]
	mustRecord(t, s, t0.Add(time.Minute), snap)
	if cur := s.Current(); len(cur) != 2 || cur[1].Status != health.Passing {
		t.Fatalf("after deregistration current = %+v", cur)
	}
}

func TestHistoryFromPolls(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "h.db"))
	snap := cluster(1)
	id := "n0/svc-0"
	// Polls every minute from 10:00; critical seen at 10:05, passing again
	// at 10:10; the monitor loses Consul after the 10:20 poll and sees it
	// again at 10:25.
	for m := 0; m <= 20; m++ {
		status := health.Passing
		if m >= 5 && m < 10 {
			status = health.Critical
		}
		mustRecord(t, s, t0.Add(time.Duration(m)*time.Minute), withCheckStatus(snap, "service:svc-0", status))
	}
	s.EndObservation()
	mustRecord(t, s, t0.Add(25*time.Minute), snap)
	// Watching, at 10:29: history ends at the last certified moment, 10:25.
	until := s.HistoryEnd(t0.Add(29 * time.Minute))
	if !until.Equal(t0.Add(25 * time.Minute)) {
		t.Fatalf("history ends at %v while observing, want the last recorded moment", until)
	}
	now := until

	rec, err := s.Recording(context.Background(), id, health.HistoryStart(until, 15*time.Minute), until)
	if err != nil {
		t.Fatal(err)
	}
	ws := health.Windows(rec, until, 15*time.Minute)
	last3 := ws[len(ws)-3:]
	check := func(w health.Window, p, c, n float64) {
		t.Helper()
		if w.Passing != p || w.Critical != c || w.NoData != n || w.Warning != 0 {
			t.Errorf("window %s = %+v, want passing %v critical %v nodata %v", w.Start.Format("15:04"), w, p, c, n)
		}
	}
	check(last3[0], 0, 0, 100)     // 09:45-10:00: before the first poll
	check(last3[1], 66.7, 33.3, 0) // 10:00-10:15: critical 10:05-10:10
	// 10:15-10:25 (10 min): passing 10:15-10:20, gap 10:20-10:25. Nothing
	// is certified after 10:25 yet: the window ends there.
	check(last3[2], 50, 0, 50)
	if last3[2].PassingTime != 5*time.Minute || last3[2].NoDataTime != 5*time.Minute {
		t.Errorf("exact times of the last window: %+v", last3[2])
	}
	// Not watching: the time since the last certified moment is no data up to now.
	s.EndObservation()
	if got := s.HistoryEnd(t0.Add(29 * time.Minute)); !got.Equal(t0.Add(29 * time.Minute)) {
		t.Errorf("history ends at %v when not observing, want now", got)
	}
	// A clock that went back behind the recording does not cut it short.
	if got := s.HistoryEnd(t0); !got.Equal(t0.Add(25 * time.Minute)) {
		t.Errorf("history ends at %v with the clock behind the recording", got)
	}

	if _, err := s.Recording(context.Background(), "n0/nope", now, now); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown instance: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Recording(context.Background(), "not an id", now, now); !errors.Is(err, ErrNotFound) {
		t.Errorf("malformed id: err = %v, want ErrNotFound", err)
	}
}

func TestRestartKeepsHistoryAndState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	s := mustOpen(t, path)
	snap := withCheckStatus(cluster(2), "service:svc-1", health.Critical)
	mustRecord(t, s, t0, snap)
	mustRecord(t, s, t0.Add(time.Minute), snap)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = mustOpen(t, path)
	if cur := s.Current(); len(cur) != 2 || cur[1].Status != health.Critical {
		t.Fatalf("after restart current = %+v", cur)
	}
	if s.Observing() {
		t.Error("a reopened store claims to be observing before any poll")
	}
	// Nothing changed while the monitor was down: only the observation.
	if w := mustRecord(t, s, t0.Add(10*time.Minute), snap); w != (Written{Observations: 1}) {
		t.Errorf("first poll after restart wrote %+v", w)
	}
	if got := countRows(t, s, "observations"); got != 2 {
		t.Errorf("%d observation periods, want 2 (the downtime is a gap)", got)
	}
	now := s.HistoryEnd(t0.Add(15 * time.Minute))
	rec, err := s.Recording(context.Background(), "n0/svc-1", health.HistoryStart(now, 15*time.Minute), now)
	if err != nil {
		t.Fatal(err)
	}
	w := health.Windows(rec, now, 15*time.Minute)
	// 10:00-10:10, up to the last certified moment: critical 10:00-10:01, down 9 min.
	if got := w[len(w)-1]; got.Critical != 10 || got.NoData != 90 || got.CriticalTime != time.Minute || got.NoDataTime != 9*time.Minute {
		t.Errorf("window across the restart = %+v", got)
	}
}

func TestFailedRecordChangesNothing(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "h.db"))
	snap := cluster(2)
	mustRecord(t, s, t0, snap)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Record(ctx, t0.Add(time.Minute), withCheckStatus(snap, "service:svc-0", health.Critical)); err == nil {
		t.Fatal("Record with a cancelled context succeeded")
	}
	if s.Observing() {
		t.Error("a failed Record left the observation open")
	}
	if s.Current()[0].Status != health.Passing {
		t.Error("a failed Record changed the current state")
	}
	// The change is written by the next successful poll.
	if w := mustRecord(t, s, t0.Add(2*time.Minute), withCheckStatus(snap, "service:svc-0", health.Critical)); w.Spans != 1 {
		t.Errorf("poll after the failure wrote %+v", w)
	}
}

func TestPrune(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "h.db"))
	snap := cluster(2)
	mustRecord(t, s, t0, snap)
	mustRecord(t, s, t0.Add(time.Hour), withCheckStatus(snap, "service:svc-0", health.Warning))
	mustRecord(t, s, t0.Add(2*time.Hour), withCheckStatus(snap, "service:svc-0", health.Critical))
	s.EndObservation()
	gone := cluster(2)
	gone.Instances = gone.Instances[:1]
	gone.Checks = gone.Checks[:2]
	mustRecord(t, s, t0.Add(3*time.Hour), withCheckStatus(gone, "service:svc-0", health.Critical))
	mustRecord(t, s, t0.Add(5*time.Hour), withCheckStatus(gone, "service:svc-0", health.Critical))

	// Cut at 10:00+2h30: svc-0's warning span is superseded by the critical
	// one at 12:00, which is the status at the cutoff and must stay; svc-1
	// left at 13:00, after the cutoff, so it stays too.
	cutoff := t0.Add(150 * time.Minute)
	pruned, err := s.Prune(context.Background(), cutoff)
	if err != nil {
		t.Fatal(err)
	}
	// svc-0's passing and warning spans, and the first observation period;
	// each of the five steps ran one batch.
	if pruned.Rows != 3 || pruned.Batches != len(pruneSteps) || pruned.LongestBatch <= 0 {
		t.Errorf("pruned %+v", pruned)
	}
	if got := countRows(t, s, "check_spans"); got != 4 {
		t.Errorf("%d spans after pruning, want 4 (svc-0 critical, serfHealth, svc-1 passing and gone)", got)
	}
	if got := countRows(t, s, "observations"); got != 1 {
		t.Errorf("%d observations after pruning, want the one after the cutoff", got)
	}
	now := t0.Add(5 * time.Hour)
	rec, err := s.Recording(context.Background(), "n0/svc-0", cutoff, now)
	if err != nil {
		t.Fatal(err)
	}
	// Checks come in the order they were first seen: serfHealth, then svc-0's.
	if len(rec.Checks) != 2 || len(rec.Checks[1]) != 1 || rec.Checks[1][0] != (health.Step{At: t0.Add(2 * time.Hour), Status: health.Critical}) {
		t.Errorf("status at the cutoff lost: %+v", rec.Checks)
	}

	// Past svc-1's deregistration, its rows go entirely.
	if _, err := s.Prune(context.Background(), t0.Add(4*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recording(context.Background(), "n0/svc-1", now, now); !errors.Is(err, ErrNotFound) {
		t.Errorf("deregistered instance older than retention still there: %v", err)
	}
	if got := countRows(t, s, "checks"); got != 2 {
		t.Errorf("%d checks left, want svc-0's and the node's", got)
	}
	if cur := s.Current(); len(cur) != 1 {
		t.Errorf("pruning changed the current instances: %+v", cur)
	}
}

func TestSigningKeyIsCreatedOnceAndKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	s := mustOpen(t, path)
	k1, err := s.SigningKey(context.Background())
	if err != nil || len(k1) != 32 {
		t.Fatalf("key %x, err %v", k1, err)
	}
	k2, _ := s.SigningKey(context.Background())
	s.Close()
	k3, _ := mustOpen(t, path).SigningKey(context.Background())
	if string(k1) != string(k2) || string(k1) != string(k3) {
		t.Error("the signing key changed")
	}
	other, _ := mustOpen(t, filepath.Join(t.TempDir(), "other.db")).SigningKey(context.Background())
	if string(other) == string(k1) {
		t.Error("two databases share a key")
	}
}

func countRows(tb testing.TB, s *Store, table string) int {
	tb.Helper()
	var n int
	if err := s.reader.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

func TestRecordingsMatchRecording(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "h.db"))
	snap := cluster(5)
	snap.Instances = append(snap.Instances, health.Instance{Node: "n1", ServiceID: "svc-0", Name: "svc"})
	snap.Checks = append(snap.Checks, health.Check{Node: "n1", CheckID: "serfHealth", Status: health.Warning})
	mustRecord(t, s, t0, snap)
	mustRecord(t, s, t0.Add(time.Minute), withCheckStatus(snap, "service:svc-2", health.Critical))
	mustRecord(t, s, t0.Add(2*time.Minute), withCheckStatus(snap, "serfHealth", health.Critical))
	gone := snap
	gone.Instances = snap.Instances[1:]
	mustRecord(t, s, t0.Add(3*time.Minute), gone)

	now := t0.Add(10 * time.Minute)
	from := health.HistoryStart(now, 5*time.Minute)
	all, err := s.Recordings(context.Background(), from, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(snap.Instances) {
		t.Fatalf("%d recordings for %d instances registered in the history", len(all), len(snap.Instances))
	}
	if left := all["n0/svc-0"]; !left.Gone || !left.DeregisteredAt.Equal(t0.Add(3*time.Minute)) || left.Name != "svc" || left.Node != "n0" || left.ServiceID != "svc-0" {
		t.Errorf("the deregistered instance: %+v", left)
	}
	for id, batch := range all {
		if id != "n0/svc-0" && (batch.Gone || !batch.DeregisteredAt.IsZero()) {
			t.Errorf("%s is registered but marked gone", id)
		}
		single, err := s.Recording(context.Background(), id, from, now)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(health.Windows(batch.Recording, now, 5*time.Minute), health.Windows(single, now, 5*time.Minute)) {
			t.Errorf("%s: batch and single recordings differ:\n%+v\n%+v", id, batch, single)
		}
		want := 2 // its own check and its node's
		if id == "n1/svc-0" {
			want = 1 // registered without a check of its own
		}
		if len(batch.Checks) != want {
			t.Errorf("%s: %d checks, want %d", id, len(batch.Checks), want)
		}
	}
}

func TestApplyComparesOnlyWhatItCarries(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "h.db"))
	snap := cluster(3)
	mustRecord(t, s, t0, snap)

	// A health delivery: checks only. The instances stay, unread.
	changed := withCheckStatus(snap, "service:svc-1", health.Critical)
	w, err := s.Apply(context.Background(), t0.Add(time.Minute), Changes{Checks: changed.Checks, Certified: true})
	if err != nil {
		t.Fatal(err)
	}
	if w != (Written{Spans: 1, Catalog: 1, Observations: 1}) || len(s.Current()) != 3 || s.Current()[1].Status != health.Critical {
		t.Errorf("checks-only delivery wrote %+v, current %+v", w, s.Current())
	}
	// A catalog delivery: instances only. One goes; the checks stay as
	// they were, and the observation is not extended: no health answer
	// vouches for the time since the last one.
	w, err = s.Apply(context.Background(), t0.Add(2*time.Minute), Changes{Instances: snap.Instances[:2]})
	if err != nil {
		t.Fatal(err)
	}
	if w != (Written{Spans: 1, Catalog: 1}) || len(s.Current()) != 2 || s.Current()[1].Status != health.Critical {
		t.Errorf("instances-only delivery wrote %+v, current %+v", w, s.Current())
	}
	if got := s.LastRecorded(); !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("after a catalog delivery LastRecorded = %v, want the last certified moment %v", got, t0.Add(time.Minute))
	}
	// An empty part is not a missing one: no checks at all removes them.
	w, err = s.Apply(context.Background(), t0.Add(3*time.Minute), Changes{Checks: []health.Check{}, Certified: true})
	if err != nil {
		t.Fatal(err)
	}
	if w.Spans != 4 || s.Current()[0].Status != health.Unknown {
		t.Errorf("empty checks delivery wrote %+v, current %+v", w, s.Current())
	}
}
