package web

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/health"
	"github.com/consul-monitor/consul-monitor/internal/store"
	"github.com/consul-monitor/consul-monitor/internal/watch"
)

// fixedWatcher reports a status and a live state set by the test.
type fixedWatcher struct {
	status watch.Status
	live   store.Published
}

func (f *fixedWatcher) Status() watch.Status { return f.status }

func (f *fixedWatcher) Live() store.Published { return f.live }

// consulDown is a watcher status with the health watch failing and the
// rest working.
func consulDown(err string) watch.Status {
	return watch.Status{
		Consul:    watch.Part{Error: err, Since: pollTime},
		Catalog:   watch.Part{OK: true, Since: pollTime},
		Recording: watch.Part{OK: true, Since: pollTime},
	}
}

type testServer struct {
	*httptest.Server
	store   *store.Store
	watcher *fixedWatcher
	client  *http.Client
	now     time.Time
}

var pollTime = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// newTestServer serves a real store holding one poll of a small cluster.
func newTestServer(t *testing.T) *testServer {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "h.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	snap := health.Snapshot{
		Instances: []health.Instance{
			{Node: "n1", ServiceID: "web-1", Name: "web", Address: "10.0.0.1", Port: 8443, Tags: []string{"https"}},
			{Node: "n1", ServiceID: "evil", Name: "<img src=x onerror=alert(1)>", Address: "10.0.0.2", Port: 80, Meta: map[string]string{"url": "javascript:alert(1)"}},
			{Node: "n/2", ServiceID: "bare", Name: "bare"},
		},
		Checks: []health.Check{
			{Node: "n1", CheckID: "serfHealth", Name: "Serf", Status: health.Passing, Output: "alive", OutputTruncated: true},
			{Node: "n1", CheckID: "web-ttl", ServiceID: "web-1", Name: "ttl", Status: health.Warning, Output: "slow"},
		},
	}
	for m := range 30 {
		if _, err := st.Record(context.Background(), pollTime.Add(time.Duration(m)*time.Minute), snap); err != nil {
			t.Fatal(err)
		}
	}
	w := &fixedWatcher{status: watch.Status{
		Consul:    watch.Part{OK: true, Since: pollTime, LastOK: pollTime.Add(29 * time.Minute)},
		Catalog:   watch.Part{OK: true, Since: pollTime, LastOK: pollTime.Add(29 * time.Minute)},
		Recording: watch.Part{OK: true, Since: pollTime, LastOK: pollTime.Add(29 * time.Minute)},
		LastPoll:  pollTime.Add(29 * time.Minute),
	}}
	srv := New(st, w, []byte("test key"), slog.New(slog.DiscardHandler))
	ts := &testServer{store: st, watcher: w, now: pollTime.Add(30 * time.Minute)}
	srv.Now = func() time.Time { return ts.now }
	ts.Server = httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	jar, _ := cookiejar.New(nil)
	ts.client = &http.Client{Jar: jar}
	return ts
}

func (ts *testServer) do(t *testing.T, method, path, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func decode[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return v
}

func TestListServices(t *testing.T) {
	ts := newTestServer(t)
	code, hdr, body := ts.do(t, "GET", "/api/services", "")
	if code != 200 || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content type %q", code, hdr.Get("Content-Type"))
	}
	resp := decode[map[string]any](t, body)
	if resp["status"] != "success" || resp["consul_available"] != true || resp["error"] != nil || resp["last_poll"] != "2026-11-24T12:29:00Z" {
		t.Errorf("envelope: %s", body)
	}
	services := decode[servicesResponse](t, body).Services
	if len(services) != 3 {
		t.Fatalf("%d services: %s", len(services), body)
	}
	byID := map[string]serviceJSON{}
	for _, s := range services {
		byID[s.ID] = s
	}
	web := byID["n1/web-1"]
	if web.CurrentStatus != health.Warning || web.URL == nil || *web.URL != "https://10.0.0.1:8443" || len(web.Checks) != 1 ||
		web.Checks[0].ID != "web-ttl" || web.Checks[0].NodeCheck || web.Checks[0].Output != "slow" || web.Checks[0].OutputTruncated {
		t.Errorf("web-1: %+v", web)
	}
	// Node checks come once, under their node, and not in each instance.
	nodes := decode[servicesResponse](t, body).Nodes
	if n1 := nodes["n1"].Checks; len(nodes) != 1 || len(n1) != 1 || n1[0].ID != "serfHealth" || !n1[0].NodeCheck ||
		!n1[0].OutputTruncated || n1[0].Output != "alive" {
		t.Errorf("nodes: %+v", nodes)
	}
	if strings.Count(string(body), `"output_truncated":`) != 2 || strings.Count(string(body), "serfHealth") != 1 {
		t.Errorf("every check has output_truncated, each node check appears once: %s", body)
	}
	evil := byID["n1/evil"]
	if evil.Name != "<img src=x onerror=alert(1)>" || evil.URL != nil {
		t.Errorf("evil: name %q url %v: the javascript: URL must never be given", evil.Name, evil.URL)
	}
	bare := byID["n%2F2/bare"]
	if bare.URL != nil || bare.CurrentStatus != health.Unknown || bare.Tags == nil || bare.Meta == nil {
		t.Errorf("bare: %+v", bare)
	}
	if !strings.Contains(string(body), `"tags":[]`) || !strings.Contains(string(body), `"url":null`) {
		t.Errorf("empty tags must be [] and a missing URL null: %s", body)
	}

	ts.watcher.status = consulDown("connection refused")
	_, _, body = ts.do(t, "GET", "/api/services", "")
	resp = decode[map[string]any](t, body)
	if resp["consul_available"] != false || resp["error"] != "connection refused" || len(resp["services"].([]any)) != 3 {
		t.Errorf("with Consul down the last known services must stay: %s", body)
	}
}

func TestServiceHistory(t *testing.T) {
	ts := newTestServer(t)
	code, _, body := ts.do(t, "GET", "/api/services/n1%2Fweb-1/history?granularity=15", "")
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	h := decode[historyResponse](t, body)
	// Polled 12:00 to 12:29 and still watching at 12:30: history ends at the
	// last certified moment, 12:29, after 96 full windows and a 14 min one.
	if h.ServiceID != "n1/web-1" || h.Granularity != 15 || !h.Until.Equal(pollTime.Add(29*time.Minute)) || len(h.Data) != 97 {
		t.Fatalf("history: id %q granularity %d until %v, %d windows", h.ServiceID, h.Granularity, h.Until, len(h.Data))
	}
	for _, w := range h.Data {
		if sum := w.Passing + w.Warning + w.Critical + w.NoData; sum < 99.95 || sum > 100.05 {
			t.Fatalf("window %v sums to %v", w.Timestamp, sum)
		}
		if ms := w.PassingMs + w.WarningMs + w.CriticalMs + w.NoDataMs; ms != min(15*60_000, h.Until.Sub(w.Timestamp).Milliseconds()) {
			t.Fatalf("window %v: %d ms", w.Timestamp, ms)
		}
	}
	if !strings.Contains(string(body), `"until":"2026-11-24T12:29:00Z"`) || !strings.Contains(string(body), `"warning_ms":840000`) {
		t.Errorf("until and exact times in the body: %s", body[len(body)-300:])
	}
	last := h.Data[len(h.Data)-1]
	if !last.Timestamp.Equal(pollTime.Add(15*time.Minute)) || last.Warning != 100 || last.WarningMs != 14*60_000 {
		t.Errorf("last window %+v", last)
	}
	if first := h.Data[0]; first.NoData != 100 || first.NoDataMs != 15*60_000 {
		t.Errorf("first window %+v, want no data", first)
	}
	// Not watching any more: the time since the last certified moment is
	// no data, up to now.
	ts.store.EndObservation()
	_, _, body = ts.do(t, "GET", "/api/services/n1%2Fweb-1/history?granularity=15", "")
	h = decode[historyResponse](t, body)
	last = h.Data[len(h.Data)-1]
	if !h.Until.Equal(ts.now) || len(h.Data) != 96 || last.WarningMs != 14*60_000 || last.NoDataMs != 60_000 || last.Warning != 93.3 || last.NoData != 6.7 {
		t.Errorf("not observing: until %v, %d windows, last %+v", h.Until, len(h.Data), last)
	}

	for _, bad := range []string{"10", "abc", "", "15.0", "-5"} {
		code, hdr, body := ts.do(t, "GET", "/api/services/n1%2Fweb-1/history?granularity="+bad, "")
		if code != 400 || hdr.Get("Content-Type") != "application/json" || !strings.Contains(string(body), `"error":"granularity`) {
			t.Errorf("granularity %q: %d %s", bad, code, body)
		}
	}
	for _, unknown := range []string{"n1%2Fnope", "nope", "n9%2Fweb-1"} {
		code, _, body := ts.do(t, "GET", "/api/services/"+unknown+"/history", "")
		if code != 404 || decode[errorBody](t, body).Error == "" {
			t.Errorf("%s: %d %s", unknown, code, body)
		}
	}

	// Without the parameter the browser's saved granularity applies.
	if code, _, body := ts.do(t, "POST", "/api/config", `{"display":{"historyGranularity":60}}`); code != 200 {
		t.Fatalf("save settings: %d %s", code, body)
	}
	_, _, body = ts.do(t, "GET", "/api/services/n1%2Fweb-1/history", "")
	// 12:30 is not on the hour: 24 full hours and the current half hour.
	if h := decode[historyResponse](t, body); h.Granularity != 60 || len(h.Data) != 25 {
		t.Errorf("default granularity from the cookie: %d, %d windows", h.Granularity, len(h.Data))
	}
}

func TestConfig(t *testing.T) {
	ts := newTestServer(t)
	code, _, body := ts.do(t, "GET", "/api/config", "")
	if code != 200 || strings.TrimSpace(string(body)) != `{"autoRefresh":{"enabled":false,"interval":60,"options":[30,60,120,300,600]},"display":{"historyGranularity":15,"granularityOptions":[5,15,30,60]}}` {
		t.Fatalf("defaults: %d %s", code, body)
	}
	code, hdr, body := ts.do(t, "POST", "/api/config", `{"autoRefresh":{"enabled":true,"interval":120}}`)
	if code != 200 || !strings.Contains(hdr.Get("Set-Cookie"), "HttpOnly") {
		t.Fatalf("post: %d %s %v", code, body, hdr)
	}
	_, _, body = ts.do(t, "GET", "/api/config", "")
	got := decode[Settings](t, body)
	if !got.AutoRefresh.Enabled || got.AutoRefresh.Interval != 120 || got.Display.HistoryGranularity != 15 {
		t.Errorf("after post: %s", body)
	}

	code, hdr, body = ts.do(t, "POST", "/api/config", `{"autoRefresh":{"enabled":false,"interval":99}}`)
	if code != 400 || hdr.Get("Set-Cookie") != "" || !strings.Contains(decode[errorBody](t, body).Error, "autoRefresh.interval") {
		t.Errorf("invalid post: %d %s", code, body)
	}
	_, _, body = ts.do(t, "GET", "/api/config", "")
	if got := decode[Settings](t, body); !got.AutoRefresh.Enabled || got.AutoRefresh.Interval != 120 {
		t.Errorf("a rejected post changed the settings: %s", body)
	}

	huge := `{"autoRefresh":{"enabled":true},"pad":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	code, _, body = ts.do(t, "POST", "/api/config", huge)
	if code != 413 || !strings.Contains(decode[errorBody](t, body).Error, "larger than") {
		t.Errorf("huge body: %d %s", code, body)
	}
}

func TestErrorsAreJSON(t *testing.T) {
	ts := newTestServer(t)
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/api/nope", 404},
		{"GET", "/api/services/a/b/c/history", 404},
		{"DELETE", "/api/services", 405},
		{"PUT", "/api/config", 405},
	} {
		code, hdr, body := ts.do(t, tc.method, tc.path, "")
		if code != tc.status || hdr.Get("Content-Type") != "application/json" || decode[errorBody](t, body).Error == "" {
			t.Errorf("%s %s: %d %q %s", tc.method, tc.path, code, hdr.Get("Content-Type"), body)
		}
		if code == 405 && hdr.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", tc.method, tc.path)
		}
	}
}

func TestHealthz(t *testing.T) {
	ts := newTestServer(t)
	code, _, body := ts.do(t, "GET", "/healthz", "")
	h := decode[healthzResponse](t, body)
	if code != 200 || !h.Consul.Available || !h.Database.OK {
		t.Errorf("healthy: %d %s", code, body)
	}
	ts.watcher.status = consulDown("connection refused")
	ts.store.Close()
	code, _, body = ts.do(t, "GET", "/healthz", "")
	h = decode[healthzResponse](t, body)
	if code != 200 || h.Consul.Available || h.Database.OK || h.Database.Error == nil {
		t.Errorf("with Consul and the database down: %d %s", code, body)
	}
}

func TestDashboardAssets(t *testing.T) {
	ts := newTestServer(t)
	code, hdr, body := ts.do(t, "GET", "/", "")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") || !strings.Contains(hdr.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("index: %d %v", code, hdr)
	}
	page := string(body)
	for _, forbidden := range []string{"http://", "https://", "//cdn", "unsafe-eval"} {
		if strings.Contains(page, forbidden) {
			t.Errorf("the page refers to %q: everything must come from the binary", forbidden)
		}
	}
	srcs := regexp.MustCompile(`(?:src|href)="(/static/[^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(srcs) != 5 {
		t.Fatalf("want 5 static references (icon, css, chart.js, app, alpine), found %v", srcs)
	}
	for _, m := range srcs {
		ref := strings.ReplaceAll(m[1], "&amp;", "&")
		code, hdr, body := ts.do(t, "GET", ref, "")
		if code != 200 || len(body) == 0 || hdr.Get("Cache-Control") != "public, max-age=31536000, immutable" || hdr.Get("ETag") == "" {
			t.Errorf("%s: %d, cache %q, etag %q", ref, code, hdr.Get("Cache-Control"), hdr.Get("ETag"))
			continue
		}
		// The same file without its hash may be anything: revalidate it.
		plain, _, _ := strings.Cut(ref, "?")
		_, hdr2, _ := ts.do(t, "GET", plain, "")
		if hdr2.Get("Cache-Control") != "no-cache" {
			t.Errorf("%s without hash: cache %q", plain, hdr2.Get("Cache-Control"))
		}
		req, _ := http.NewRequest("GET", ts.URL+plain, nil)
		req.Header.Set("If-None-Match", hdr.Get("ETag"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotModified {
			t.Errorf("%s with its ETag: %d, want 304", plain, resp.StatusCode)
		}
	}
	// The page's modules import each other at hashed URLs, so every one of
	// them is cached for good and none can be stale.
	seen := map[string]bool{}
	queue := []string{}
	for _, m := range srcs {
		if strings.Contains(m[1], "/js/") {
			queue = append(queue, m[1])
		}
	}
	importRe := regexp.MustCompile(`(?m)^import [^\n;]* from '([^']+)';$`)
	for len(queue) > 0 {
		ref := queue[0]
		queue = queue[1:]
		if seen[ref] {
			continue
		}
		seen[ref] = true
		code, hdr, body := ts.do(t, "GET", ref, "")
		if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/javascript") || hdr.Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Errorf("module %s: %d %q %q", ref, code, hdr.Get("Content-Type"), hdr.Get("Cache-Control"))
			continue
		}
		for _, imp := range importRe.FindAllStringSubmatch(string(body), -1) {
			if !strings.HasPrefix(imp[1], "./") || !strings.Contains(imp[1], ".js?v=") {
				t.Errorf("%s imports %q, not a hashed sibling", ref, imp[1])
				continue
			}
			queue = append(queue, ref[:strings.LastIndex(ref, "/")+1]+strings.TrimPrefix(imp[1], "./"))
		}
	}
	if len(seen) < 7 {
		t.Errorf("only %d modules reached from the page: %v", len(seen), seen)
	}
	for _, licence := range []string{"/static/lib/alpinejs.LICENSE.md", "/static/lib/chart.js.LICENSE.md"} {
		if code, _, body := ts.do(t, "GET", licence, ""); code != 200 || !strings.Contains(string(body), "MIT License") {
			t.Errorf("%s: %d", licence, code)
		}
	}
	if code, hdr, _ := ts.do(t, "GET", "/static/nope.js", ""); code != 404 || hdr.Get("Content-Type") != "application/json" {
		t.Errorf("missing asset: %d %q", code, hdr.Get("Content-Type"))
	}
}

func TestAllHistory(t *testing.T) {
	ts := newTestServer(t)
	code, _, body := ts.do(t, "GET", "/api/history?granularity=5", "")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	batch := decode[batchHistoryResponse](t, body)
	// History ends at the last certified moment, 12:29: 288 full windows from 12:25 the day before and a 4 min one.
	until := pollTime.Add(29 * time.Minute)
	if batch.Granularity != 5 || batch.Windows != 289 || !batch.Until.Equal(until) || !batch.Start.Equal(until.Add(-4*time.Minute-24*time.Hour)) || len(batch.Services) != 3 {
		t.Fatalf("batch: granularity %d, %d windows from %v until %v, %d services", batch.Granularity, batch.Windows, batch.Start, batch.Until, len(batch.Services))
	}
	if len(batch.Gone) != 0 || len(batch.Groups) != 3 {
		t.Errorf("gone %v, %d groups", batch.Gone, len(batch.Groups))
	}
	expand := func(runs []runJSON) []runJSON {
		var out []runJSON
		for _, run := range runs {
			for range int(run[0]) {
				w := run
				w[0] = 1
				out = append(out, w)
			}
		}
		return out
	}
	for id, runs := range batch.Services {
		_, _, single := ts.do(t, "GET", "/api/services/"+url.PathEscape(id)+"/history?granularity=5", "")
		expanded := expand(runs)
		windows := decode[historyResponse](t, single).Data
		if len(expanded) != len(windows) {
			t.Fatalf("%s: runs cover %d windows, want %d", id, len(expanded), len(windows))
		}
		for i, w := range windows {
			want := runJSON{1, w.Passing, w.Warning, w.Critical, w.NoData, float64(w.PassingMs), float64(w.WarningMs), float64(w.CriticalMs), float64(w.NoDataMs)}
			if want != expanded[i] {
				t.Fatalf("%s window %d: batch %v, single %v", id, i, expanded[i], want)
			}
		}
	}
	// A healthy instance compresses to a few runs: no data, then its status
	// in full windows, then the current, shorter window.
	runs := batch.Services["n1/web-1"]
	if len(runs) != 3 || runs[0] != (runJSON{283, 0, 0, 0, 100, 0, 0, 0, 300_000}) ||
		runs[1] != (runJSON{5, 0, 100, 0, 0, 0, 300_000, 0, 0}) || runs[2] != (runJSON{1, 0, 100, 0, 0, 0, 240_000, 0, 0}) {
		t.Errorf("web-1 runs %v", runs)
	}
	// Its service has only it.
	if groups := batch.Groups["web"]; len(groups) != 3 || groups[1] != runs[1] || groups[2] != runs[2] {
		t.Errorf("web group %v", groups)
	}
	if code, _, _ := ts.do(t, "GET", "/api/history?granularity=7", ""); code != 400 {
		t.Errorf("bad granularity: %d", code)
	}

	// A deploy at 12:29:30: evil leaves, web-2 joins web.
	snap := health.Snapshot{
		Instances: []health.Instance{
			{Node: "n1", ServiceID: "web-1", Name: "web", Address: "10.0.0.1", Port: 8443, Tags: []string{"https"}},
			{Node: "n1", ServiceID: "web-2", Name: "web"},
			{Node: "n/2", ServiceID: "bare", Name: "bare"},
		},
		Checks: []health.Check{
			{Node: "n1", CheckID: "serfHealth", Name: "Serf", Status: health.Passing, Output: "alive", OutputTruncated: true},
			{Node: "n1", CheckID: "web-ttl", ServiceID: "web-1", Name: "ttl", Status: health.Warning, Output: "slow"},
		},
	}
	deploy := until.Add(30 * time.Second)
	if _, err := ts.store.Record(context.Background(), deploy, snap); err != nil {
		t.Fatal(err)
	}
	_, _, body = ts.do(t, "GET", "/api/history?granularity=5", "")
	batch = decode[batchHistoryResponse](t, body)
	evil := batch.Gone["n1/evil"]
	if len(batch.Services) != 4 || len(batch.Gone) != 1 || evil.Name != "<img src=x onerror=alert(1)>" || evil.Node != "n1" || evil.ServiceID != "evil" || !evil.DeregisteredAt.Equal(deploy) {
		t.Fatalf("after the deploy: %d services, gone %+v", len(batch.Services), batch.Gone)
	}
	if _, ok := batch.Services["n1/evil"]; !ok {
		t.Error("the gone instance's history is not in services")
	}
	if !strings.Contains(string(body), `"gone":{"n1/evil":{"name":"\u003cimg src=x onerror=alert(1)\u003e","node":"n1","service_id":"evil","deregistered_at":"2026-11-24T12:29:30Z"}}`) {
		t.Errorf("gone as the contract shapes it: %s", body)
	}
	// web-2 has existed for no time of the current window (12:25-12:29:30):
	// web stays 100 % warning, not diluted with no data.
	web := batch.Groups["web"]
	if last := web[len(web)-1]; last != (runJSON{1, 0, 100, 0, 0, 0, 270_000, 0, 0}) {
		t.Errorf("web group's current window %v", last)
	}
	if code, _, body := ts.do(t, "GET", "/api/services/n1%2Fevil/history?granularity=5", ""); code != 200 {
		t.Errorf("a gone instance's history: %d %s", code, body)
	}
}

func TestServicesAnswerFollowsChangesAndGzip(t *testing.T) {
	ts := newTestServer(t)
	get := func(gz bool) []byte {
		req, _ := http.NewRequest("GET", ts.URL+"/api/services", nil)
		if gz {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body io.Reader = resp.Body
		if gz {
			if resp.Header.Get("Content-Encoding") != "gzip" {
				t.Fatalf("no gzip: %v", resp.Header)
			}
			zr, err := gzip.NewReader(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	plain := get(false)
	if zipped := get(true); string(zipped) != string(plain) {
		t.Errorf("gzip and plain answers differ")
	}
	// A new poll with a changed status must show at once, not a kept answer.
	snap := health.Snapshot{
		Instances: []health.Instance{{Node: "n1", ServiceID: "web-1", Name: "web", Address: "10.0.0.1", Port: 8443}},
		Checks:    []health.Check{{Node: "n1", CheckID: "web-ttl", ServiceID: "web-1", Status: health.Critical}},
	}
	if _, err := ts.store.Record(context.Background(), pollTime.Add(40*time.Minute), snap); err != nil {
		t.Fatal(err)
	}
	after := decode[servicesResponse](t, get(true))
	if len(after.Services) != 1 || after.Services[0].CurrentStatus != health.Critical || after.LastPoll == nil || !after.LastPoll.Equal(pollTime.Add(40*time.Minute)) {
		t.Errorf("after a new poll: %+v", after)
	}
	// So must a change in the watcher's status.
	ts.watcher.status = consulDown("connection refused")
	if got := decode[servicesResponse](t, get(false)); got.ConsulAvailable || got.Error == nil {
		t.Errorf("after the watcher lost Consul: %+v", got)
	}
}

func TestHistoryKeepsShortFailure(t *testing.T) {
	ts := newTestServer(t)
	snap := health.Snapshot{
		Instances: []health.Instance{{Node: "n1", ServiceID: "web-1", Name: "web", Address: "10.0.0.1", Port: 8443, Tags: []string{"https"}}},
		Checks:    []health.Check{{Node: "n1", CheckID: "web-ttl", ServiceID: "web-1", Name: "ttl", Status: health.Passing}},
	}
	flap := pollTime.Add(29*time.Minute + 30*time.Second)
	for i, status := range []health.Status{health.Critical, health.Passing} {
		snap.Checks[0].Status = status
		if _, err := ts.store.Record(context.Background(), flap.Add(time.Duration(i)*1500*time.Millisecond), snap); err != nil {
			t.Fatal(err)
		}
	}
	// 12:00-12:29:31.5: critical for 1.5 s, 0.08 %: shown as 0.1, told to the millisecond.
	_, _, body := ts.do(t, "GET", "/api/services/n1%2Fweb-1/history?granularity=60", "")
	h := decode[historyResponse](t, body)
	last := h.Data[len(h.Data)-1]
	if !h.Until.Equal(flap.Add(1500*time.Millisecond)) || last.CriticalMs != 1500 || last.Critical != 0.1 {
		t.Errorf("until %v, last window %+v", h.Until, last)
	}
	_, _, body = ts.do(t, "GET", "/api/history?granularity=60", "")
	batch := decode[batchHistoryResponse](t, body)
	for _, runs := range [][]runJSON{batch.Services["n1/web-1"], batch.Groups["web"]} {
		if run := runs[len(runs)-1]; run[3] != 0.1 || run[7] != 1500 {
			t.Errorf("last run %v, want critical 0.1 %% and 1500 ms", run)
		}
	}
}

func TestModuleHashesCoverImports(t *testing.T) {
	hashOf := func(bodies map[string][]byte) (map[string]staticFile, error) {
		a := &assets{static: map[string]staticFile{}}
		for name := range bodies {
			if err := a.add(name, bodies, nil); err != nil {
				return nil, err
			}
		}
		return a.static, nil
	}
	v1, err := hashOf(map[string][]byte{"js/main.js": []byte("import { x } from './dep.js';\nx();\n"), "js/dep.js": []byte("export function x() {}\n")})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := hashOf(map[string][]byte{"js/main.js": []byte("import { x } from './dep.js';\nx();\n"), "js/dep.js": []byte("export function x() { return 1; }\n")})
	if err != nil {
		t.Fatal(err)
	}
	if want := "import { x } from './dep.js?v=" + v1["js/dep.js"].hash + "';\n"; !strings.HasPrefix(string(v1["js/main.js"].body), want) {
		t.Errorf("main.js served as %q, want it to start %q", v1["js/main.js"].body, want)
	}
	if v1["js/main.js"].hash == v2["js/main.js"].hash {
		t.Error("a changed dependency leaves its importer's hash unchanged: browsers would keep running the old one")
	}
	if _, err := hashOf(map[string][]byte{"js/a.js": []byte("import { b } from './b.js';\n"), "js/b.js": []byte("import { a } from './a.js';\n")}); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("an import cycle: %v", err)
	}
	if _, err := hashOf(map[string][]byte{"js/a.js": []byte("import { b } from './nope.js';\n")}); err == nil {
		t.Error("an import of a missing module is accepted")
	}
}
