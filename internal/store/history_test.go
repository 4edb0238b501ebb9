package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/health"
)

// mustExec writes rows directly, as another or an older writer left them.
func mustExec(tb testing.TB, s *Store, query string, args ...any) {
	tb.Helper()
	if _, err := s.writer.Exec(query, args...); err != nil {
		tb.Fatal(err)
	}
}

func ms(t time.Time) int64 { return t.UnixMilli() }

// checkBounds fails unless every window's shares lie in [0, 100] and sum to
// 100, and its exact times add up to its length.
func checkBounds(t *testing.T, ws []health.Window, until time.Time, granularity time.Duration) {
	t.Helper()
	for _, w := range ws {
		length := min(granularity, until.Sub(w.Start))
		sum := w.Passing + w.Warning + w.Critical + w.NoData
		for _, share := range []float64{w.Passing, w.Warning, w.Critical, w.NoData} {
			if share < 0 || share > 100 {
				t.Fatalf("window %v: a share of %v: %+v", w.Start, share, w)
			}
		}
		if sum < 99.95 || sum > 100.05 || w.PassingTime+w.WarningTime+w.CriticalTime+w.NoDataTime != length {
			t.Fatalf("window %v of %v: %+v", w.Start, length, w)
		}
	}
}

// Why 3: two monitors on one file each wrote their own observation
// periods. Read back, the overlap counts once.
func TestOverlappingObservationsOfTwoWritersCountOnce(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "h.db"))
	snap := cluster(1)
	for m := 0; m <= 30; m++ {
		mustRecord(t, s, t0.Add(time.Duration(m)*time.Minute), snap)
	}
	// The second monitor's periods: 10:05-10:25 and 10:10-10:35.
	mustExec(t, s, `INSERT INTO observations (start_ms, end_ms) VALUES (?, ?), (?, ?)`,
		ms(t0.Add(5*time.Minute)), ms(t0.Add(25*time.Minute)), ms(t0.Add(10*time.Minute)), ms(t0.Add(35*time.Minute)))
	until := t0.Add(40 * time.Minute)
	from := health.HistoryStart(until, time.Hour)
	rec, err := s.Recording(context.Background(), "n0/svc-0", from, until)
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.Recordings(context.Background(), from, until)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []health.Recording{rec, all["n0/svc-0"].Recording} {
		ws := health.Windows(r, until, time.Hour)
		checkBounds(t, ws, until, time.Hour)
		// 10:00-10:40: observed 10:00-10:35 by one or the other, 5 min not.
		last := ws[len(ws)-1]
		if last.PassingTime != 35*time.Minute || last.NoDataTime != 5*time.Minute || last.Passing != 87.5 || last.NoData != 12.5 {
			t.Errorf("window 10:00-10:40 = %+v, want 35 min passing, 5 min no data", last)
		}
	}
}

// Why 3 and 4: the monitor ran 10:00-10:30, the clock stepped back 20
// minutes, and it restarted: the second run's times overlap the first's
// and its changes sort before earlier ones. Whatever was stored, every
// window stays within bounds.
func TestRestartAfterClockSteppedBackStaysInBounds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	s := mustOpen(t, path)
	snap := cluster(1)
	for m := 0; m <= 30; m++ {
		status := health.Passing
		if m >= 20 {
			status = health.Critical
		}
		mustRecord(t, s, t0.Add(time.Duration(m)*time.Minute), withCheckStatus(snap, "service:svc-0", status))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, path)
	// The wall clock now reads 10:10 although 10:31 has passed.
	for m := 10; m <= 40; m++ {
		status := health.Critical
		if m >= 15 {
			status = health.Passing
		}
		mustRecord(t, s, t0.Add(time.Duration(m)*time.Minute), withCheckStatus(snap, "service:svc-0", status))
	}
	// And rows as an older writer, which kept no clock clamp, left them.
	mustExec(t, s, `INSERT INTO observations (start_ms, end_ms) VALUES (?, ?), (?, ?)`,
		ms(t0.Add(10*time.Minute)), ms(t0.Add(40*time.Minute)), ms(t0.Add(30*time.Minute)), ms(t0.Add(12*time.Minute)))
	until := s.HistoryEnd(t0.Add(41 * time.Minute))
	for _, g := range health.Granularities {
		granularity := time.Duration(g) * time.Minute
		from := health.HistoryStart(until, granularity)
		rec, err := s.Recording(context.Background(), "n0/svc-0", from, until)
		if err != nil {
			t.Fatal(err)
		}
		ws := health.Windows(rec, until, granularity)
		checkBounds(t, ws, until, granularity)
		var observed time.Duration
		for _, w := range ws {
			observed += w.PassingTime + w.WarningTime + w.CriticalTime
		}
		// At most 10:00-10:40 can ever have been observed.
		if observed > 40*time.Minute {
			t.Errorf("%v windows: %v observed in 40 min", granularity, observed)
		}
	}
}

// Why 5: api-a was critical, then replaced by api-b in a deploy. The
// service still shows api-a's critical time, and api-b's time before it
// existed does not dilute it.
func TestDeployKeepsReplacedInstanceInService(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "h.db"))
	a := health.Instance{Node: "n0", ServiceID: "api-a", Name: "api"}
	b := health.Instance{Node: "n0", ServiceID: "api-b", Name: "api"}
	checkOf := func(id string, status health.Status) health.Check {
		return health.Check{Node: "n0", CheckID: "service:" + id, ServiceID: id, Status: status}
	}
	for m := 0; m < 10; m++ {
		status := health.Passing
		if m >= 5 {
			status = health.Critical
		}
		mustRecord(t, s, t0.Add(time.Duration(m)*time.Minute), health.Snapshot{Instances: []health.Instance{a}, Checks: []health.Check{checkOf("api-a", status)}})
	}
	for m := 10; m <= 30; m++ {
		mustRecord(t, s, t0.Add(time.Duration(m)*time.Minute), health.Snapshot{Instances: []health.Instance{b}, Checks: []health.Check{checkOf("api-b", health.Passing)}})
	}
	until := s.HistoryEnd(t0.Add(31 * time.Minute))
	from := health.HistoryStart(until, time.Hour)
	all, err := s.Recordings(context.Background(), from, until)
	if err != nil {
		t.Fatal(err)
	}
	gone, now := all["n0/api-a"], all["n0/api-b"]
	if len(all) != 2 || !gone.Gone || !gone.DeregisteredAt.Equal(t0.Add(10*time.Minute)) || gone.Name != "api" || now.Gone {
		t.Fatalf("recordings: %+v", all)
	}
	runs := health.ServiceRuns([][]health.Run{health.Runs(gone.Recording, until, time.Hour), health.Runs(now.Recording, until, time.Hour)}, time.Hour)
	last := runs[len(runs)-1]
	// 10:00-10:30: api-a passing 5 min and critical 5 min, api-b passing
	// 20 min; 30 min of instance-time.
	if last.Count != 1 || last.Window.CriticalTime != 5*time.Minute || last.Window.PassingTime != 25*time.Minute || last.Window.NoDataTime != 0 ||
		last.Window.Critical != 16.7 || last.Window.Passing != 83.3 {
		t.Errorf("service window 10:00-10:30 = %+v", last.Window)
	}
}

// Why 6: a 1.5 s critical in a 60 min window is not rounded to 0, and its
// exact time is kept.
func TestShortFailureIsNeverRoundedAway(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "h.db"))
	snap := cluster(1)
	flap := t0.Add(10 * time.Minute)
	mustRecord(t, s, t0, snap)
	mustRecord(t, s, flap, withCheckStatus(snap, "service:svc-0", health.Critical))
	mustRecord(t, s, flap.Add(1500*time.Millisecond), snap)
	mustRecord(t, s, t0.Add(time.Hour), snap)
	until := s.HistoryEnd(t0.Add(time.Hour + time.Second))
	rec, err := s.Recording(context.Background(), "n0/svc-0", health.HistoryStart(until, time.Hour), until)
	if err != nil {
		t.Fatal(err)
	}
	ws := health.Windows(rec, until, time.Hour)
	w := ws[len(ws)-1]
	if !w.Start.Equal(t0) || w.CriticalTime != 1500*time.Millisecond || w.Critical != 0.1 || w.Passing != 99.9 {
		t.Errorf("window 10:00-11:00 = %+v, want critical 0.1 %% and 1.5 s", w)
	}
}
