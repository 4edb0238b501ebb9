package web

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/health"
	"github.com/consul-monitor/consul-monitor/internal/store"
	"github.com/consul-monitor/consul-monitor/internal/watch"
)

// fixedWatcher reports a status set by the test.
type fixedWatcher struct{ status watch.Status }

func (f *fixedWatcher) Status() watch.Status { return f.status }

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
			{Node: "n1", CheckID: "serfHealth", Name: "Serf", Status: health.Passing, Output: "alive"},
			{Node: "n1", CheckID: "web-ttl", ServiceID: "web-1", Name: "ttl", Status: health.Warning, Output: "slow"},
		},
	}
	for m := range 30 {
		if _, err := st.Record(context.Background(), pollTime.Add(time.Duration(m)*time.Minute), snap); err != nil {
			t.Fatal(err)
		}
	}
	w := &fixedWatcher{watch.Status{ConsulAvailable: true, LastPoll: pollTime.Add(29 * time.Minute)}}
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
	if web.CurrentStatus != health.Warning || web.URL == nil || *web.URL != "https://10.0.0.1:8443" || len(web.Checks) != 2 ||
		web.Checks[0].ID != "web-ttl" || web.Checks[0].NodeCheck || !web.Checks[1].NodeCheck || web.Checks[0].Output != "slow" {
		t.Errorf("web-1: %+v", web)
	}
	evil := byID["n1/evil"]
	if evil.Name != "<img src=x onerror=alert(1)>" || evil.URL == nil || *evil.URL != "http://10.0.0.2" {
		t.Errorf("evil: name %q url %v: the javascript: URL must never be given", evil.Name, evil.URL)
	}
	bare := byID["n%2F2/bare"]
	if bare.URL != nil || bare.CurrentStatus != health.Unknown || bare.Tags == nil || bare.Meta == nil {
		t.Errorf("bare: %+v", bare)
	}
	if !strings.Contains(string(body), `"tags":[]`) || !strings.Contains(string(body), `"url":null`) {
		t.Errorf("empty tags must be [] and a missing URL null: %s", body)
	}

	ts.watcher.status = watch.Status{ConsulAvailable: false, LastPoll: pollTime, Error: "connection refused"}
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
	// now is 12:30, aligned: exactly 24 h of 15-minute windows.
	if h.ServiceID != "n1/web-1" || h.Granularity != 15 || len(h.Data) != 96 {
		t.Fatalf("history: id %q granularity %d, %d windows", h.ServiceID, h.Granularity, len(h.Data))
	}
	for _, w := range h.Data {
		if sum := w.Passing + w.Warning + w.Critical + w.NoData; sum < 99.95 || sum > 100.05 {
			t.Fatalf("window %v sums to %v", w.Timestamp, sum)
		}
	}
	// Polled 12:00 to 12:29, warning all along, and the watcher no longer
	// extends the period (the store's observation is open: it does, to now).
	last := h.Data[len(h.Data)-1]
	if !last.Timestamp.Equal(pollTime.Add(15*time.Minute)) || last.Warning != 100 {
		t.Errorf("last window %+v", last)
	}
	if first := h.Data[0]; first.NoData != 100 {
		t.Errorf("first window %+v, want no data", first)
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
	ts.watcher.status = watch.Status{Error: "connection refused"}
	ts.store.Close()
	code, _, body = ts.do(t, "GET", "/healthz", "")
	h = decode[healthzResponse](t, body)
	if code != 200 || h.Consul.Available || h.Database.OK || h.Database.Error == nil {
		t.Errorf("with Consul and the database down: %d %s", code, body)
	}
}
