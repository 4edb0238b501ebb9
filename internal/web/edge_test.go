package web

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/consultest"
)

// rawRequest sends head and body on a new connection, then either closes
// its sending side (a body shorter than its Content-Length) or keeps
// waiting (a body that stops arriving), and reads the answer.
func rawRequest(t *testing.T, addr, head, body string, closeWrite bool) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		return nil, nil
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, head+"\r\n"+body); err != nil {
		t.Error(err)
		return nil, nil
	}
	if closeWrite {
		_ = conn.(*net.TCPConn).CloseWrite()
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Error(err)
		return nil, nil
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, b
}

// A client's own mistakes answer 4xx with the JSON error and are logged
// below ERROR: 500 of them must not fill an operator's error log.
func TestClientMistakesAre4xxNotErrors(t *testing.T) {
	logged := &lockedBuffer{}
	s := New(nil, nil, []byte("k"), slog.New(slog.NewTextHandler(logged, &slog.HandlerOptions{Level: slog.LevelDebug})))
	srv := httptest.NewUnstartedServer(s)
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	head := func(contentLength int) string {
		return fmt.Sprintf("POST /api/config HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", addr, contentLength)
	}
	check := func(what string, resp *http.Response, body []byte, status int, msg string) {
		t.Helper()
		if resp == nil {
			return
		}
		var got errorBody
		if resp.StatusCode != status || resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &got) != nil || got.Error != msg || resp.Header.Get("Set-Cookie") != "" {
			t.Errorf("%s: %d %v %s, want %d %q", what, resp.StatusCode, resp.Header, body, status, msg)
		}
	}

	const n = 500
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50) // every stalled request waits for the ReadTimeout
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			// A body shorter than its Content-Length.
			resp, body := rawRequest(t, addr, head(100+i), `{"display":`, true)
			check("short body", resp, body, http.StatusBadRequest, "request body ended before its Content-Length")
			// A body that stops arriving.
			resp, body = rawRequest(t, addr, head(100), `{"display":`, false)
			check("stalled body", resp, body, http.StatusRequestTimeout, "request body did not arrive in time")
		})
	}
	wg.Wait()
	// Headers that never end are Go's own to answer (it closes the
	// connection); a body with a bad chunk is the client's mistake too.
	resp, body := rawRequest(t, addr, "POST /api/config HTTP/1.1\r\nHost: "+addr+"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n", "zz\r\n{}\r\n0\r\n\r\n", true)
	check("bad chunk", resp, body, http.StatusBadRequest, "request body could not be read")

	// A handler may log just after its answer reached the client, so the
	// counts are waited for, not read at once.
	consultest.WaitFor(t, 10*time.Second, "every mistake logged", func() error {
		log := logged.String()
		short := strings.Count(log, "level=DEBUG msg=\"request body ended before its Content-Length\"")
		stalled := strings.Count(log, "level=INFO msg=\"request body stopped arriving\"")
		if short < n || stalled < n {
			return fmt.Errorf("%d short bodies logged at DEBUG and %d stalled at INFO, want %d each", short, stalled, n)
		}
		return nil
	})
	log := logged.String()
	if strings.Contains(log, "level=ERROR") || strings.Contains(log, "level=WARN") {
		t.Errorf("client mistakes logged as failures:\n%.2000s", log)
	}
	if c := strings.Count(log, "level=DEBUG msg=\"request body ended before its Content-Length\""); c != n {
		t.Errorf("%d short bodies logged at DEBUG, want %d", c, n)
	}
	if c := strings.Count(log, "level=INFO msg=\"request body stopped arriving\""); c != n {
		t.Errorf("%d stalled bodies logged at INFO, want %d", c, n)
	}
}

// lockedBuffer lets a test read what a server logs while it still runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// The router's own answers (a path it cleans or completes, an unknown
// path, a wrong method) carry the same JSON error shape as the API.
func TestRouterAnswersAreJSON(t *testing.T) {
	ts := newTestServer(t)
	for _, tc := range []struct {
		method, path string
		status       int
		location     string
		msg          string
	}{
		// net/http answers these with 307, which keeps the method; only the
		// body is this server's.
		{"GET", "//api/services", 307, "/api/services", "moved to /api/services"},
		{"GET", "/api/../healthz", 307, "/healthz", "moved to /healthz"},
		{"GET", "/api/./history?granularity=15", 307, "/api/history?granularity=15", "moved to /api/history?granularity=15"},
		{"GET", "/static", 307, "/static/", "moved to /static/"},
		{"GET", "//nothing/here", 307, "/nothing/here", "moved to /nothing/here"},
		{"POST", "//api/config", 307, "/api/config", "moved to /api/config"},
		{"GET", "/nothing", 404, "", "not found"},
		{"DELETE", "/api/services", 405, "", "method not allowed"},
	} {
		// Sent raw: Go's client would read "//api" as a host name.
		resp, body := rawRequest(t, ts.Listener.Addr().String(), fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", tc.method, tc.path, ts.Listener.Addr()), "", false)
		if resp == nil {
			continue
		}
		var got errorBody
		if resp.StatusCode != tc.status || resp.Header.Get("Location") != tc.location || resp.Header.Get("Content-Type") != "application/json" ||
			json.Unmarshal(body, &got) != nil || got.Error != tc.msg {
			t.Errorf("%s %s: %d %v %s, want %d %q", tc.method, tc.path, resp.StatusCode, resp.Header, body, tc.status, tc.msg)
		}
	}
}
