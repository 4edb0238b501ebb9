package faultproxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/consultest"
	"github.com/consul-monitor/consul-monitor/internal/faultproxy"
)

// fakeConsul answers blocking queries the way Consul does: a request with
// an index at or past the current one waits for a change or its wait time.
type fakeConsul struct {
	mu      sync.Mutex
	index   uint64
	changed chan struct{}

	served    atomic.Int32 // requests received
	waiting   atomic.Int32 // blocking requests in progress
	cancelled atomic.Int32 // requests whose client went away
}

func newFakeConsul(t *testing.T) (*fakeConsul, string) {
	f := &fakeConsul{index: 10, changed: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	return f, strings.TrimPrefix(srv.URL, "http://")
}

func (f *fakeConsul) bump() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index++
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeConsul) serve(w http.ResponseWriter, r *http.Request) {
	f.served.Add(1)
	want, _ := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	f.mu.Lock()
	index, changed := f.index, f.changed
	f.mu.Unlock()
	if want > 0 && want >= index {
		f.waiting.Add(1)
		select {
		case <-changed:
		case <-time.After(time.Minute):
		case <-r.Context().Done():
			f.waiting.Add(-1)
			f.cancelled.Add(1)
			return
		}
		f.waiting.Add(-1)
		f.mu.Lock()
		index = f.index
		f.mu.Unlock()
	}
	w.Header().Set("X-Consul-Index", strconv.FormatUint(index, 10))
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `[{"Node":"n1","CheckID":"serfHealth","Status":"passing","Output":"%s"}]`, strings.Repeat("x", 2000))
}

func startProxy(t *testing.T) (*fakeConsul, *faultproxy.Proxy) {
	t.Helper()
	f, addr := newFakeConsul(t)
	p, err := faultproxy.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return f, p
}

type answer struct {
	status int
	index  uint64
	body   string
	err    error
}

var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: false}}

func get(ctx context.Context, p *faultproxy.Proxy, path string) answer {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+p.Addr()+path, nil)
	if err != nil {
		return answer{err: err}
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	index, _ := strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64)
	return answer{status: resp.StatusCode, index: index, body: string(b), err: err}
}

const healthPath = "/v1/health/state/any"

func TestPassThrough(t *testing.T) {
	_, p := startProxy(t)
	a := get(context.Background(), p, healthPath)
	if a.err != nil || a.status != 200 || a.index != 10 || !strings.Contains(a.body, "serfHealth") {
		t.Fatalf("got %d index %d err %v body %.40q", a.status, a.index, a.err, a.body)
	}
	ev := p.Events()
	if len(ev) != 1 || !ev[0].OK || ev[0].Fault != "" || ev[0].ConsulIndex != 10 || ev[0].Path != healthPath {
		t.Fatalf("events %+v", ev)
	}
}

func TestBlockingQueryStreamsAndCancels(t *testing.T) {
	f, p := startProxy(t)

	t.Run("the answer comes when Consul's index moves", func(t *testing.T) {
		done := make(chan answer, 1)
		go func() { done <- get(context.Background(), p, healthPath+"?index=10&wait=1m") }()
		consultest.WaitFor(t, 5*time.Second, "query blocking in Consul", func() error {
			if f.waiting.Load() != 1 {
				return errors.New("not yet")
			}
			return nil
		})
		select {
		case a := <-done:
			t.Fatalf("answered before any change: %+v", a)
		default:
		}
		f.bump()
		select {
		case a := <-done:
			if a.err != nil || a.status != 200 || a.index != 11 {
				t.Fatalf("got %+v", a)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no answer after the change")
		}
		if ev := p.EventsFor(healthPath); len(ev) != 1 || ev[0].Index != 10 || !ev[0].OK {
			t.Fatalf("events %+v", ev)
		}
	})

	t.Run("a client that gives up cancels the request to Consul", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan answer, 1)
		go func() { done <- get(ctx, p, healthPath+"?index=11&wait=1m") }()
		consultest.WaitFor(t, 5*time.Second, "query blocking in Consul", func() error {
			if f.waiting.Load() != 1 {
				return errors.New("not yet")
			}
			return nil
		})
		cancel()
		if a := <-done; !errors.Is(a.err, context.Canceled) {
			t.Fatalf("got %+v", a)
		}
		consultest.WaitFor(t, 5*time.Second, "Consul to see the cancel", func() error {
			if f.cancelled.Load() != 1 || f.waiting.Load() != 0 {
				return fmt.Errorf("cancelled %d, waiting %d", f.cancelled.Load(), f.waiting.Load())
			}
			return nil
		})
	})
}

func TestFaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault faultproxy.Fault
		check func(t *testing.T, a answer)
	}{
		{"refuse", faultproxy.RefuseFault(), func(t *testing.T, a answer) {
			if !errors.Is(a.err, syscall.ECONNRESET) {
				t.Fatalf("answered: %+v", a)
			}
		}},
		{"403", faultproxy.StatusFault(403), func(t *testing.T, a answer) {
			if a.err != nil || a.status != 403 || a.body != "ACL not found" {
				t.Fatalf("got %+v", a)
			}
		}},
		{"429", faultproxy.StatusFault(429), func(t *testing.T, a answer) {
			if a.err != nil || a.status != 429 || !strings.Contains(a.body, "rate limit") {
				t.Fatalf("got %+v", a)
			}
		}},
		{"500 with a chosen body", faultproxy.Fault{Kind: faultproxy.Status, Status: 500, Body: "boom"}, func(t *testing.T, a answer) {
			if a.err != nil || a.status != 500 || a.body != "boom" {
				t.Fatalf("got %+v", a)
			}
		}},
		{"truncate", faultproxy.TruncateFault(100), func(t *testing.T, a answer) {
			if a.err == nil || a.status != 200 || len(a.body) != 100 {
				t.Fatalf("got status %d, %d bytes, err %v", a.status, len(a.body), a.err)
			}
		}},
		{"old index", faultproxy.OldIndexFault(3), func(t *testing.T, a answer) {
			if a.err != nil || a.status != 200 || a.index != 3 || !strings.Contains(a.body, "serfHealth") {
				t.Fatalf("got %+v", a)
			}
		}},
		{"delay", faultproxy.DelayFault(200 * time.Millisecond), func(t *testing.T, a answer) {
			if a.err != nil || a.status != 200 || a.index != 10 {
				t.Fatalf("got %+v", a)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, p := startProxy(t)
			p.Set("/v1/health/", tc.fault)
			start := time.Now()
			tc.check(t, get(context.Background(), p, healthPath))
			ev := p.EventsFor(healthPath)
			// Only the faults that let Consul's answer through whole count as answered.
			wantOK := tc.fault.Kind == faultproxy.Delay || tc.fault.Kind == faultproxy.OldIndex
			if len(ev) != 1 || ev[0].Fault != tc.fault.Kind || ev[0].OK != wantOK {
				t.Fatalf("events %+v", ev)
			}
			if tc.fault.Kind == faultproxy.Delay {
				// A lower bound only: the delay is at least what was asked.
				if d := time.Since(start); d < tc.fault.Delay {
					t.Fatalf("answered after %v", d)
				}
			}

			// Other endpoints are untouched.
			if a := get(context.Background(), p, "/v1/catalog/services"); a.err != nil || a.status != 200 || a.index != 10 {
				t.Fatalf("catalog: %+v", a)
			}
			p.Clear("/v1/health/")
			if a := get(context.Background(), p, healthPath); a.err != nil || a.status != 200 || a.index != 10 {
				t.Fatalf("after Clear: %+v", a)
			}
		})
	}
}

func TestFaultTimesAndPrefixes(t *testing.T) {
	_, p := startProxy(t)
	p.Set("/v1/", faultproxy.StatusFault(500))
	p.Set(healthPath, faultproxy.Fault{Kind: faultproxy.Status, Status: 403, Times: 1})
	if a := get(context.Background(), p, healthPath); a.status != 403 {
		t.Fatalf("longest prefix should win: %+v", a)
	}
	if a := get(context.Background(), p, healthPath); a.status != 500 {
		t.Fatalf("after its one use, the shorter prefix applies: %+v", a)
	}
	p.ClearAll()
	if a := get(context.Background(), p, healthPath); a.status != 200 {
		t.Fatalf("after ClearAll: %+v", a)
	}
}

func TestHang(t *testing.T) {
	f, p := startProxy(t)
	p.Set(healthPath, faultproxy.HangFault())

	t.Run("until the client gives up", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if a := get(ctx, p, healthPath); !errors.Is(a.err, context.DeadlineExceeded) {
			t.Fatalf("got %+v", a)
		}
	})

	t.Run("until the fault is cleared, then the held request goes on to Consul", func(t *testing.T) {
		served := f.served.Load()
		done := make(chan answer, 1)
		go func() { done <- get(context.Background(), p, healthPath) }()
		consultest.WaitFor(t, 5*time.Second, "request held", func() error {
			if p.Holding() != 1 {
				return fmt.Errorf("holding %d", p.Holding())
			}
			return nil
		})
		p.Clear(healthPath)
		if f.served.Load() != served {
			t.Fatal("a held request reached Consul during the partition")
		}
		select {
		case a := <-done:
			if a.err != nil || a.status != 200 {
				t.Fatalf("the held request after the partition healed: %+v", a)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("held request still hanging after Clear")
		}
		if f.served.Load() == served {
			t.Fatal("the held request never reached Consul")
		}
		if a := get(context.Background(), p, healthPath); a.err != nil || a.status != 200 {
			t.Fatalf("after Clear: %+v", a)
		}
	})
}

func TestRefuseAll(t *testing.T) {
	f, p := startProxy(t)
	addr := p.Addr()
	// A blocking query in progress is cut when Consul's port closes.
	done := make(chan answer, 1)
	go func() { done <- get(context.Background(), p, healthPath+"?index=10&wait=1m") }()
	consultest.WaitFor(t, 5*time.Second, "query blocking in Consul", func() error {
		if f.waiting.Load() != 1 {
			return errors.New("not yet")
		}
		return nil
	})
	p.RefuseAll()
	if a := <-done; a.err == nil {
		t.Fatalf("blocking query survived: %+v", a)
	}
	a := get(context.Background(), p, healthPath)
	if !errors.Is(a.err, syscall.ECONNREFUSED) {
		t.Fatalf("want connection refused, got %+v", a)
	}
	if err := p.AcceptAll(); err != nil {
		t.Fatal(err)
	}
	if p.Addr() != addr {
		t.Fatalf("moved from %s to %s", addr, p.Addr())
	}
	if a := get(context.Background(), p, healthPath); a.err != nil || a.status != 200 {
		t.Fatalf("after AcceptAll: %+v", a)
	}
}

func TestCertified(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	ok := func(end float64) faultproxy.Event { return faultproxy.Event{OK: true, End: at(end)} }
	bad := func(end float64) faultproxy.Event { return faultproxy.Event{End: at(end)} }
	// Out of order on purpose: the log is sorted by End.
	events := []faultproxy.Event{ok(1), ok(3), ok(2), bad(4), bad(5), ok(7), ok(9), {Path: faultproxy.AllPaths, End: at(10)}, ok(12)}
	got := faultproxy.Certified(events)
	want := []faultproxy.Period{{at(1), at(3)}, {at(7), at(9)}, {at(12), at(12)}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Certified:\n got %v\nwant %v", got, want)
	}
	if d := faultproxy.Overlap(got, at(2), at(8)); d != 2*time.Second {
		t.Fatalf("Overlap from 2 to 8 s: %v, want 2s", d)
	}
	if d := faultproxy.Overlap(got, at(0), at(20)); d != 4*time.Second {
		t.Fatalf("Overlap of everything: %v, want 4s", d)
	}
}

func TestErrorPageHasItsSize(t *testing.T) {
	for _, size := range []int{200, 4096, 200 << 10} {
		page := faultproxy.ErrorPage(502, size)
		if len(page) != size || !strings.HasPrefix(page, "<!DOCTYPE html>") || !strings.HasSuffix(page, "</body></html>\n") || !strings.Contains(page, "502 Bad Gateway") {
			t.Errorf("size %d: got %d bytes: %.120q...", size, len(page), page)
		}
	}
}
