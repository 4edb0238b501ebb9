package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/consul-monitor/consul-monitor/internal/consultest"
	"github.com/consul-monitor/consul-monitor/internal/faultproxy"
)

// A proxy in front of Consul that answers every endpoint with a 200 KB HTML
// error page: /healthz and /api/services (and so the page's banners) carry
// at most 512 characters of it in each error, and still say the status and
// the endpoint.
func TestUpstreamErrorPageIsBounded(t *testing.T) {
	agent := consultest.Start(t)
	registerWeb(t, agent.Client())
	web := consultest.NodeName + "/web-1"
	r := startRig(t, agent, time.Second)
	r.waitWatching(t, web, "passing")

	const pageSize = 200 << 10
	page := faultproxy.ErrorPage(502, pageSize)
	for _, prefix := range []string{healthEndpoint, servicesEndpoint, nodesEndpoint} {
		r.proxy.Set(prefix, faultproxy.ErrorPageFault(502, pageSize))
	}
	r.waitFor(t, 30*time.Second, "both watches failing with the page", func(s faultServicesBody, h faultHealthzBody) error {
		for name, part := range map[string]*watchState{"consul": s.Consul, "catalog": s.Catalog, "healthz consul": h.Consul, "healthz catalog": h.Catalog} {
			if part == nil || part.Error == nil || !strings.Contains(*part.Error, "upstream proxy: line") {
				return fmt.Errorf("%s: %v", name, part)
			}
		}
		return nil
	})

	for _, path := range []string{"/api/services", "/healthz"} {
		resp, err := http.Get("http://" + r.m.Addr + path)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(raw) > 16<<10 {
			t.Errorf("%s: %d bytes with a %d-byte upstream page", path, len(raw), pageSize)
		}
		var body any
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		found := 0
		walkStrings(body, "", func(where, s string) {
			if !strings.Contains(s, "upstream proxy: line") {
				return
			}
			found++
			if n := utf8.RuneCountInString(s); n > 512 {
				t.Errorf("%s %s: %d characters: %.200s...", path, where, n, s)
			}
			if !strings.Contains(s, "502 Bad Gateway") || !strings.Contains(s, "(/v1/") {
				t.Errorf("%s %s lost the status or the endpoint: %s", path, where, s)
			}
			if strings.Contains(s, page[:1024]) {
				t.Errorf("%s %s carries the page's first KB", path, where)
			}
		})
		if found < 2 {
			t.Errorf("%s: %d error texts from the page, want the health and the catalog watch's", path, found)
		}
		t.Logf("%s: %d bytes with a %d-byte upstream page", path, len(raw), pageSize)
	}
}

// walkStrings calls f with every string in a decoded JSON value and its place.
func walkStrings(v any, where string, f func(where, s string)) {
	switch v := v.(type) {
	case string:
		f(where, v)
	case map[string]any:
		for k, e := range v {
			walkStrings(e, where+"."+k, f)
		}
	case []any:
		for i, e := range v {
			walkStrings(e, fmt.Sprintf("%s[%d]", where, i), f)
		}
	}
}

// The command wires --web.allowed-hosts into the server: the names given
// and the defaults are served, any other gets 421.
func TestAllowedHostsWired(t *testing.T) {
	cfg, err := ParseConfig([]string{"--listen", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "h.db"),
		"--consul-addr", "127.0.0.1:1", "--web.allowed-hosts", "monitor.example.com, 10.20.30.40:8080"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	m := &Main{Config: cfg, Log: slog.New(slog.DiscardHandler)}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	for host, want := range map[string]int{
		"monitor.example.com": 200, "MONITOR.example.com.:443": 200, "10.20.30.40": 200, m.Addr: 200, "localhost": 200,
		"evil.example": 421, "monitor.example.com.evil.example": 421, "10.20.30.41": 421,
	} {
		req, _ := http.NewRequest("GET", "http://"+m.Addr+"/healthz", nil)
		req.Host = host
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: %d, want %d", host, resp.StatusCode, want)
		}
	}
}
