package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/health"
)

func withMaintenance(snap health.Snapshot, serviceID string) health.Snapshot {
	out := snap
	out.Checks = append(append([]health.Check(nil), snap.Checks...),
		health.Check{Node: "n0", CheckID: "_service_maintenance:" + serviceID, ServiceID: serviceID, Name: "Maintenance", Status: health.Critical})
	return out
}

func mustIncidents(t *testing.T, s *Store, now time.Time) *Incidents {
	t.Helper()
	inc, err := s.Incidents(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	return inc
}

// Two instances recorded through Record: svc-1 critical from 10:20,
// svc-0 in maintenance from 10:30; the figures come from the stored spans,
// maintenance told apart from critical.
func TestIncidentsFromRecordedHistory(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "h.db"))
	s.Retention = time.Hour
	m := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
	snap := cluster(2)
	mustRecord(t, s, m(0), snap)
	mustRecord(t, s, m(10), snap)
	critical := withCheckStatus(snap, "service:svc-1", health.Critical)
	mustRecord(t, s, m(20), critical)
	mustRecord(t, s, m(30), withMaintenance(critical, "svc-0"))
	mustRecord(t, s, m(40), withMaintenance(critical, "svc-0"))

	inc := mustIncidents(t, s, m(41))
	if !inc.Until.Equal(m(40)) || !inc.From.Equal(m(-20)) {
		t.Fatalf("history %v-%v, want 09:40-10:40", inc.From, inc.Until)
	}
	for id, want := range map[string]struct {
		status health.Status
		since  time.Time
		uptime health.Uptime
	}{
		"n0/svc-0": {health.Maintenance, m(30), health.Uptime{From: m(-20), Passing: 30 * time.Minute, Maintenance: 10 * time.Minute}},
		"n0/svc-1": {health.Critical, m(20), health.Uptime{From: m(-20), Passing: 20 * time.Minute, Critical: 20 * time.Minute}},
	} {
		got := inc.Instances[id]
		if got.Status != want.status || !got.Since.Equal(want.since) || got.Changes24h != 1 {
			t.Errorf("%s: %s since %v, %d changes; want %s since %v, 1 change", id, got.Status, got.Since, got.Changes24h, want.status, want.since)
		}
		for i, u := range got.Uptime {
			if u != want.uptime {
				t.Errorf("%s %s: %+v, want %+v", id, health.UptimeWindows[i].Name, u, want.uptime)
			}
		}
	}
	svc := inc.Services["svc"]
	if svc.Worst != health.Critical || !svc.Since.Equal(m(20)) || svc.Changes24h != 1 || svc.Counts[health.Critical] != 1 || svc.Counts[health.Maintenance] != 1 {
		t.Errorf("service: %+v", svc)
	}
	if want := (health.Uptime{From: m(-20), Passing: 50 * time.Minute, Critical: 20 * time.Minute, Maintenance: 10 * time.Minute}); svc.Uptime[2] != want {
		t.Errorf("service 30d: %+v, want %+v", svc.Uptime[2], want)
	}

	// Within a minute and with nothing changed, the same figures.
	mustRecord(t, s, m(50), withMaintenance(critical, "svc-0"))
	if again := mustIncidents(t, s, m(41).Add(59*time.Second)); again != inc {
		t.Errorf("recomputed within a minute without a change")
	}
	// A minute later, new ones up to the new end.
	later := mustIncidents(t, s, m(42))
	if later == inc || !later.Until.Equal(m(50)) || later.Instances["n0/svc-1"].Uptime[0].Critical != 30*time.Minute {
		t.Errorf("after a minute: until %v, svc-1 %+v", later.Until, later.Instances["n0/svc-1"].Uptime[0])
	}
	// A change is seen at once.
	mustRecord(t, s, m(55), withMaintenance(snap, "svc-0"))
	changed := mustIncidents(t, s, m(42).Add(time.Second))
	if got := changed.Instances["n0/svc-1"]; got.Status != health.Passing || !got.Since.Equal(m(55)) || got.Changes24h != 2 {
		t.Errorf("after the change: %s since %v, %d changes", got.Status, got.Since, got.Changes24h)
	}
	if got := changed.Services["svc"]; got.Worst != health.Maintenance || !got.Since.Equal(m(55)) || got.Changes24h != 2 {
		t.Errorf("service after the change: %s since %v, %d changes", got.Worst, got.Since, got.Changes24h)
	}
}
