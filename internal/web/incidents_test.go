package web

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/health"
)

func getServices(t *testing.T, ts *testServer) servicesResponse {
	t.Helper()
	code, _, body := ts.do(t, "GET", "/api/services", "")
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	return decode[servicesResponse](t, body)
}

func instanceByID(t *testing.T, resp servicesResponse, id string) serviceJSON {
	t.Helper()
	for _, s := range resp.Services {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("no instance %s in %+v", id, resp.Services)
	return serviceJSON{}
}

func wantTime(t *testing.T, what string, got *time.Time, want time.Time) {
	t.Helper()
	if got == nil || !got.Equal(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// The test server recorded polls from 12:00 to 12:29, each certifying the
// time since the previous one: web-1 warning, evil passing (its node's
// check), bare unchecked.
func TestServicesIncidents(t *testing.T) {
	ts := newTestServer(t)
	resp := getServices(t, ts)
	web := instanceByID(t, resp, "n1/web-1")
	wantTime(t, "web-1 status_since", web.StatusSince, pollTime)
	if web.StatusSinceReason != nil || web.Changes24h != 0 {
		t.Errorf("web-1: reason %v, changes %d", web.StatusSinceReason, web.Changes24h)
	}
	const observed = 29 * 60 * 1000
	want := uptimeJSON{From: pollTime.Add(29*time.Minute - 24*time.Hour), WarningPct: 100, ObservedMs: observed, WarningMs: observed}
	if got := web.Uptime["24h"]; got != want {
		t.Errorf("web-1 24h: %+v, want %+v", got, want)
	}
	// 30 days back reaches the default retention's start.
	if got := web.Uptime["30d"]; got.WarningMs != observed || !got.From.Equal(pollTime.Add(29*time.Minute-720*time.Hour)) {
		t.Errorf("web-1 30d: %+v", got)
	}
	evil := instanceByID(t, resp, "n1/evil")
	if got := evil.Uptime["7d"]; got.PassingPct != 100 || got.PassingMs != observed || got.ObservedMs != observed {
		t.Errorf("evil 7d: %+v", got)
	}
	bare := instanceByID(t, resp, "n%2F2/bare")
	// Never checked: unknown since it was registered.
	wantTime(t, "bare status_since", bare.StatusSince, pollTime)
	// Nothing checks it: no data, never up.
	if got := bare.Uptime["24h"]; got.NoDataPct != 100 || got.NoDataMs != observed || got.ObservedMs != 0 || got.PassingPct != 0 {
		t.Errorf("bare 24h: %+v", got)
	}
	g, ok := resp.Groups["web"]
	if !ok || g.Worst != health.Warning || g.Counts[health.Warning] != 1 || g.Counts[health.Passing] != 0 || g.Changes24h != 0 || g.Uptime["24h"].WarningMs != observed {
		t.Errorf("group web: %+v", g)
	}
	wantTime(t, "web worst_since", g.WorstSince, pollTime)

	// web-1 turns critical at 12:40: shown at once, with its since.
	snap := health.Snapshot{
		Instances: []health.Instance{{Node: "n1", ServiceID: "web-1", Name: "web", Address: "10.0.0.1", Port: 8443}},
		Checks:    []health.Check{{Node: "n1", CheckID: "web-ttl", ServiceID: "web-1", Name: "ttl", Status: health.Critical}},
	}
	record := func(at time.Time) {
		if _, err := ts.store.Record(context.Background(), at, snap); err != nil {
			t.Fatal(err)
		}
	}
	record(pollTime.Add(40 * time.Minute))
	ts.now = pollTime.Add(41 * time.Minute)
	web = instanceByID(t, getServices(t, ts), "n1/web-1")
	wantTime(t, "web-1 status_since after the change", web.StatusSince, pollTime.Add(40*time.Minute))
	if got := web.Uptime["24h"]; web.Changes24h != 1 || got.WarningMs != 40*60*1000 || got.CriticalMs != 0 || got.WarningPct != 100 {
		t.Errorf("after the change: %d changes, 24h %+v", web.Changes24h, got)
	}
	// Time alone moves uptime only once a minute has passed.
	record(pollTime.Add(45 * time.Minute))
	ts.now = pollTime.Add(41*time.Minute + 59*time.Second)
	if got := instanceByID(t, getServices(t, ts), "n1/web-1").Uptime["24h"]; got.CriticalMs != 0 {
		t.Errorf("recomputed within the minute: %+v", got)
	}
	ts.now = pollTime.Add(42 * time.Minute)
	resp = getServices(t, ts)
	got := instanceByID(t, resp, "n1/web-1").Uptime["24h"]
	// 40 min warning, 5 min critical: 88.9 and 11.1.
	if got.CriticalMs != 5*60*1000 || got.WarningMs != 40*60*1000 || got.WarningPct != 88.9 || got.CriticalPct != 11.1 {
		t.Errorf("a minute later: %+v", got)
	}
	g = resp.Groups["web"]
	wantTime(t, "web worst_since after the change", g.WorstSince, pollTime.Add(40*time.Minute))
	if g.Worst != health.Critical || g.Changes24h != 1 || g.Counts[health.Critical] != 1 {
		t.Errorf("group web after the change: %+v", g)
	}
}
