package health

import (
	"sort"
	"testing"
	"time"
)

var inc0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func h(n float64) time.Time { return inc0.Add(time.Duration(n * float64(time.Hour))) }
func hd(n float64) time.Duration {
	return time.Duration(n * float64(time.Hour))
}

// flapping is observed from 0h to 48h but for 10h-11h, registered all
// along; its status is passing from before the history, critical at 30h,
// passing at 31h, warning at 40h, maintenance 45h-46h, warning since.
func flapping() Recording {
	return Recording{
		Observed:   []Period{{h(11), h(48)}, {h(0), h(10)}}, // out of order on purpose
		Registered: []Period{{h(-100), h(48)}},
		Checks: [][]Step{
			{{h(-1), Passing}, {h(30), Critical}, {h(31), Passing}, {h(40), Warning}},
			{{h(45), Maintenance}, {h(46), ""}},
		},
	}
}

func TestInstanceIncident(t *testing.T) {
	from, until := h(0), h(48)
	got := InstanceIncident(flapping(), from, until)
	if got.Status != Warning || !got.Since.Equal(h(46)) || got.SinceReason != "" {
		t.Errorf("status %s since %v (%q), want warning since 46h", got.Status, got.Since, got.SinceReason)
	}
	// 30h, 31h, 40h, 45h and 46h are within the last 24 hours.
	if got.Changes24h != 5 {
		t.Errorf("changes_24h = %d, want 5", got.Changes24h)
	}
	want := []Uptime{
		// 24h-48h: passing 24-30 and 31-40, critical 30-31, warning 40-45 and 46-48.
		{From: h(24), Passing: hd(15), Warning: hd(7), Critical: hd(1), Maintenance: hd(1)},
		// 7 and 30 days are clipped to the history's start, 0h; 10h-11h is no data.
		{From: h(0), Passing: hd(38), Warning: hd(7), Critical: hd(1), Maintenance: hd(1), NoData: hd(1)},
		{From: h(0), Passing: hd(38), Warning: hd(7), Critical: hd(1), Maintenance: hd(1), NoData: hd(1)},
	}
	for i, w := range want {
		if got.Uptime[i] != w {
			t.Errorf("%s: got %+v, want %+v", UptimeWindows[i].Name, got.Uptime[i], w)
		}
	}
	// 15/23 = 65.217, 7/23 = 30.435, 1/23 = 4.348: tenths 652+304+43 = 999,
	// the missing one goes to the largest remainder, critical's.
	if p := got.Uptime[0].Pct(); p != (UptimePct{Passing: 65.2, Warning: 30.4, Critical: 4.4, Maintenance: 4.2}) {
		t.Errorf("24h shares %+v", p)
	}
	// 38/46 = 82.6, 7/46 = 15.2, 1/46 = 2.2; maintenance 1/47, no data 1/48.
	if p := got.Uptime[1].Pct(); p != (UptimePct{Passing: 82.6, Warning: 15.2, Critical: 2.2, Maintenance: 2.1, NoData: 2.1}) {
		t.Errorf("7d shares %+v", p)
	}
}

func TestInstanceIncidentCases(t *testing.T) {
	from, until := h(0), h(48)
	for _, tc := range []struct {
		name      string
		rec       Recording
		status    Status
		since     time.Time
		reason    string
		changes   int
		uptime24h Uptime
	}{
		{
			name:      "unchanged since before the history",
			rec:       Recording{Observed: []Period{{h(0), h(48)}}, Registered: []Period{{h(0), h(48)}}, Checks: [][]Step{{{h(-5), Critical}}}},
			status:    Critical,
			reason:    ReasonBeforeHistory,
			uptime24h: Uptime{From: h(24), Critical: hd(24)},
		},
		{
			name: "new instance: its checks appearing is no change",
			rec: Recording{Observed: []Period{{h(0), h(48)}}, Registered: []Period{{h(47), h(48)}},
				Checks: [][]Step{{{h(47), Passing}}, {{h(47.5), Passing}}}},
			status:    Passing,
			since:     h(47),
			uptime24h: Uptime{From: h(24), Passing: hd(1)},
		},
		{
			name:   "never observed: all no data, nothing up",
			rec:    Recording{Registered: []Period{{h(-1), h(48)}}, Checks: [][]Step{{{h(-1), Passing}}}},
			status: Passing, reason: ReasonBeforeHistory,
			uptime24h: Uptime{From: h(24), NoData: hd(24)},
		},
		{
			name:      "never checked: unknown since registered",
			rec:       Recording{Observed: []Period{{h(0), h(48)}}, Registered: []Period{{h(-9), h(2)}, {h(30), h(48)}}},
			status:    Unknown,
			since:     h(30),
			uptime24h: Uptime{From: h(24), NoData: hd(18)},
		},
		{
			name: "check gone: unknown is no data",
			rec: Recording{Observed: []Period{{h(0), h(48)}}, Registered: []Period{{h(0), h(48)}},
				Checks: [][]Step{{{h(-1), Passing}, {h(36), ""}}}},
			status: Unknown, since: h(36), changes: 1,
			uptime24h: Uptime{From: h(24), Passing: hd(12), NoData: hd(12)},
		},
		{
			name: "a change outside the last day counts for since, not for changes",
			rec: Recording{Observed: []Period{{h(0), h(48)}}, Registered: []Period{{h(0), h(48)}},
				Checks: [][]Step{{{h(-1), Passing}, {h(12), Warning}}}},
			status: Warning, since: h(12),
			uptime24h: Uptime{From: h(24), Warning: hd(24)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := InstanceIncident(tc.rec, from, until)
			if got.Status != tc.status || !got.Since.Equal(tc.since) || got.SinceReason != tc.reason || got.Changes24h != tc.changes {
				t.Errorf("got %s since %v (%q) changes %d, want %s since %v (%q) changes %d",
					got.Status, got.Since, got.SinceReason, got.Changes24h, tc.status, tc.since, tc.reason, tc.changes)
			}
			if got.Uptime[0] != tc.uptime24h {
				t.Errorf("24h: got %+v, want %+v", got.Uptime[0], tc.uptime24h)
			}
		})
	}
}

func TestService(t *testing.T) {
	from, until := h(0), h(48)
	second := Recording{Observed: []Period{{h(0), h(48)}}, Registered: []Period{{h(0), h(48)}},
		Checks: [][]Step{{{h(-1), Passing}, {h(44), Critical}}}}
	// Left at 20h: counts for its registered time only, and not now.
	gone := Recording{Observed: []Period{{h(0), h(48)}}, Registered: []Period{{h(0), h(20)}},
		Checks: [][]Step{{{h(-1), Warning}}}}
	all := []Incident{InstanceIncident(flapping(), from, until), InstanceIncident(second, from, until), InstanceIncident(gone, from, until)}
	got := Service([]Status{Warning, Critical}, all, from, until)
	if got.Worst != Critical || !got.Since.Equal(h(44)) || got.SinceReason != "" {
		t.Errorf("worst %s since %v (%q), want critical since 44h", got.Worst, got.Since, got.SinceReason)
	}
	wantCounts := map[Status]int{Passing: 0, Warning: 1, Critical: 1, Maintenance: 0, Unknown: 0}
	for s, n := range wantCounts {
		if got.Counts[s] != n {
			t.Errorf("count %s = %d, want %d", s, got.Counts[s], n)
		}
	}
	// Worst over time: warning (the gone one) 0-20h, passing 20-30h,
	// critical 30h, passing 31h, warning 40h, critical 44h. In the last
	// day: 30h, 31h, 40h, 44h.
	if got.Changes24h != 4 {
		t.Errorf("changes_24h = %d, want 4", got.Changes24h)
	}
	if want := (Uptime{From: h(24), Passing: hd(15 + 20), Warning: hd(7), Critical: hd(1 + 4), Maintenance: hd(1)}); got.Uptime[0] != want {
		t.Errorf("24h: got %+v, want %+v", got.Uptime[0], want)
	}
	// 30 days: the gone instance's 20 h of warning count.
	if want := (Uptime{From: h(0), Passing: hd(38 + 44), Warning: hd(7 + 20), Critical: hd(1 + 4), Maintenance: hd(1), NoData: hd(1)}); got.Uptime[2] != want {
		t.Errorf("30d: got %+v, want %+v", got.Uptime[2], want)
	}
}

func TestServiceUnchangedSinceBeforeHistory(t *testing.T) {
	from, until := h(0), h(48)
	rec := Recording{Observed: []Period{{h(0), h(48)}}, Registered: []Period{{h(-3), h(48)}}, Checks: [][]Step{{{h(-2), Passing}}}}
	got := Service([]Status{Passing}, []Incident{InstanceIncident(rec, from, until)}, from, until)
	if got.Worst != Passing || !got.Since.IsZero() || got.SinceReason != ReasonBeforeHistory || got.Changes24h != 0 {
		t.Errorf("got %+v", got)
	}
}

// FuzzIncident checks on arbitrary recordings that every uptime's times add
// up to the registered time in its window, and that shares lie in [0, 100]
// with passing, warning and critical summing to 100 when there was such time.
func FuzzIncident(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24})
	f.Add([]byte{200, 3, 4, 250, 0, 9, 1, 80, 3, 3, 3, 3, 100, 2, 5, 7, 7, 7, 120, 4, 99, 1, 0, 0, 50, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		from, until := h(0), h(48)
		next := func() int {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return int(b)
		}
		moment := func() time.Time { return h(float64(next())/4 - 4) }
		var rec Recording
		for range next() % 4 {
			a, b := moment(), moment()
			rec.Observed = append(rec.Observed, Period{a, b})
		}
		for range next() % 3 {
			a, b := moment(), moment()
			rec.Registered = append(rec.Registered, Period{a, b})
		}
		statuses := []Status{Passing, Warning, Critical, Maintenance, ""}
		for range next() % 4 {
			var steps []Step
			for range next() % 6 {
				steps = append(steps, Step{moment(), statuses[next()%len(statuses)]})
			}
			rec.Checks = append(rec.Checks, steps)
		}
		inc := InstanceIncident(rec, from, until)
		if inc.Since.IsZero() == (inc.SinceReason == "") {
			t.Fatalf("since %v with reason %q", inc.Since, inc.SinceReason)
		}
		if !inc.Since.IsZero() && (!inc.Since.After(from) || inc.Since.After(until)) {
			t.Fatalf("since %v outside the history", inc.Since)
		}
		// The timeline agrees with the status computed at every step.
		checks := normalise(rec).Checks
		tl := statusTimeline(checks, from, until)
		for _, steps := range append(checks, []Step{{At: from}}) {
			for _, st := range steps {
				if st.At.Before(from) || st.At.After(until) {
					continue
				}
				i := sort.Search(len(tl), func(i int) bool { return tl[i].At.After(st.At) }) - 1
				if want := statusAt(checks, st.At); tl[i].Status != want {
					t.Fatalf("timeline %v says %s at %v, want %s", tl, tl[i].Status, st.At, want)
				}
			}
		}
		reg := normalisePeriods(rec.Registered)
		for i, w := range UptimeWindows {
			u := inc.Uptime[i]
			var want time.Duration
			for _, p := range intersect(reg, []Period{{later(from, until.Add(-w.Length)), until}}) {
				want += p.End.Sub(p.Start)
			}
			if u.Observed()+u.NoData != want {
				t.Fatalf("%s: %+v adds up to %v, want the registered %v", w.Name, u, u.Observed()+u.NoData, want)
			}
			checkPct(t, u)
		}
		svc := Service([]Status{inc.Status}, []Incident{inc, inc}, from, until)
		for i := range UptimeWindows {
			if svc.Uptime[i].Passing != 2*inc.Uptime[i].Passing || svc.Uptime[i].NoData != 2*inc.Uptime[i].NoData {
				t.Fatalf("service uptime %+v is not twice %+v", svc.Uptime[i], inc.Uptime[i])
			}
			checkPct(t, svc.Uptime[i])
		}
	})
}

func checkPct(t *testing.T, u Uptime) {
	t.Helper()
	p := u.Pct()
	for _, v := range []float64{p.Passing, p.Warning, p.Critical, p.Maintenance, p.NoData} {
		if v < 0 || v > 100 {
			t.Fatalf("%+v: share %v outside [0, 100]", p, v)
		}
	}
	sum := p.Passing + p.Warning + p.Critical
	if u.Passing+u.Warning+u.Critical > 0 && (sum < 99.95 || sum > 100.05) {
		t.Fatalf("%+v: passing, warning and critical sum to %v", p, sum)
	}
	if (u.Warning > 0 && p.Warning == 0) || (u.Critical > 0 && p.Critical == 0) || (u.NoData > 0 && p.NoData == 0) || (u.Maintenance > 0 && p.Maintenance == 0) {
		t.Fatalf("%+v shows a non-zero time as 0: %+v", u, p)
	}
}
