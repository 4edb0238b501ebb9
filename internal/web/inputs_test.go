package web

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// post sends body to /api/config with exactly the headers given, and no
// cookie jar, so that each case starts from the defaults.
func (ts *testServer) post(t *testing.T, body string, headers map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", ts.URL+"/api/config", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func TestConfigRefusesCrossSiteAndNonJSONRequests(t *testing.T) {
	ts := newTestServer(t)
	const change = `{"autoRefresh":{"enabled":true}}`
	const json = "application/json"
	self := strings.TrimPrefix(ts.URL, "http://")
	for _, tc := range []struct {
		name    string
		headers map[string]string
		status  int
	}{
		// The case: a cross-site form posting text/plain.
		{"foreign origin, text/plain", map[string]string{"Origin": "http://evil.example", "Content-Type": "text/plain"}, 403},
		{"foreign origin, JSON", map[string]string{"Origin": "http://evil.example", "Content-Type": json}, 403},
		{"foreign origin, same host name on another port", map[string]string{"Origin": "http://127.0.0.1:1", "Content-Type": json}, 403},
		{"opaque origin", map[string]string{"Origin": "null", "Content-Type": json}, 403},
		{"cross-site fetch", map[string]string{"Sec-Fetch-Site": "cross-site", "Content-Type": json}, 403},
		{"same-site but another origin", map[string]string{"Sec-Fetch-Site": "same-site", "Content-Type": json}, 403},
		// A browser that sends Sec-Fetch-Site is believed over Origin.
		{"cross-site fetch with a matching origin", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": ts.URL, "Content-Type": json}, 403},
		{"same-origin fetch", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": ts.URL, "Content-Type": json}, 200},
		{"typed by the user", map[string]string{"Sec-Fetch-Site": "none", "Content-Type": json}, 200},
		{"same origin, old browser", map[string]string{"Origin": "http://" + self, "Content-Type": json}, 200},
		{"curl: neither header", map[string]string{"Content-Type": json}, 200},
		{"charset utf-8", map[string]string{"Content-Type": "application/json; charset=utf-8"}, 200},
		{"charset UTF-8, media type in capitals", map[string]string{"Content-Type": "Application/JSON;charset=UTF-8"}, 200},

		{"no Content-Type", map[string]string{}, 415},
		{"text/plain", map[string]string{"Content-Type": "text/plain"}, 415},
		{"form", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415},
		{"multipart form", map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, 415},
		{"another charset", map[string]string{"Content-Type": "application/json; charset=latin1"}, 415},
		{"another parameter", map[string]string{"Content-Type": "application/json; x=y"}, 415},
		{"a JSON-like type", map[string]string{"Content-Type": "application/json-seq"}, 415},
		{"malformed Content-Type", map[string]string{"Content-Type": "application/json; charset"}, 415},
		// Origin is judged first: a foreign form gets 403 whatever it sends.
		{"foreign origin, no Content-Type", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := ts.post(t, change, tc.headers)
			if code != tc.status {
				t.Fatalf("status %d, want %d: %s", code, tc.status, body)
			}
			if code == 200 {
				if hdr.Get("Set-Cookie") == "" || !decode[Settings](t, body).AutoRefresh.Enabled {
					t.Errorf("accepted but not applied: %v %s", hdr, body)
				}
				return
			}
			if c := hdr.Get("Set-Cookie"); c != "" {
				t.Errorf("a refused request set a cookie: %s", c)
			}
			if hdr.Get("Content-Type") != "application/json" || decode[errorBody](t, body).Error == "" {
				t.Errorf("error is not JSON: %q %s", hdr.Get("Content-Type"), body)
			}
			if code == 415 && hdr.Get("Accept-Post") != "application/json" {
				t.Errorf("415 without Accept-Post: %v", hdr)
			}
		})
	}
}

func TestConfigRejectsEverythingButAnObject(t *testing.T) {
	ts := newTestServer(t)
	for _, body := range []string{`null`, ` null `, "\n\tnull", `[]`, `[{"autoRefresh":{"enabled":true}}]`, `5`, `-1`, `"x"`, `true`, `false`} {
		code, hdr, resp := ts.post(t, body, map[string]string{"Content-Type": "application/json"})
		if code != 400 || hdr.Get("Set-Cookie") != "" || !strings.Contains(decode[errorBody](t, resp).Error, "must be a JSON object") {
			t.Errorf("%q: %d %v %s", body, code, hdr.Get("Set-Cookie"), resp)
		}
	}
	for _, body := range []string{`nul`, `{`, `x`, `{}x`} {
		if code, _, resp := ts.post(t, body, map[string]string{"Content-Type": "application/json"}); code != 400 {
			t.Errorf("%q: %d %s", body, code, resp)
		}
	}
}

// getEncoded fetches path with the Accept-Encoding given ("" sends none) and
// returns the Content-Encoding and the decoded body.
func (ts *testServer) getEncoded(t *testing.T, path, acceptEncoding string) (string, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", ts.URL+path, nil)
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	// RoundTrip, not a Client: no transparent decompression, no header added.
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	var body io.Reader = resp.Body
	enc := resp.Header.Get("Content-Encoding")
	if enc == "gzip" {
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
	return enc, resp.Header, b
}

func TestJSONAnswersHonourAcceptEncodingQValues(t *testing.T) {
	ts := newTestServer(t)
	cases := []struct {
		accept string
		gzip   bool
	}{
		{"", false},
		{"gzip", true},
		{"GZIP", true},
		{"gzip, deflate, br", true},
		{"gzip;q=0", false},
		{"gzip; q=0", false},
		{"gzip;q=0.0", false},
		{"gzip;q=0.001", true},
		{"deflate, gzip;q=0", false},
		{"identity", false},
		{"identity;q=0.5, gzip;q=0.1", true},
		{"br, zstd", false},
		{"zstd", false},
		{"x-gzip-not", false},
	}
	// /api/services sends its own cached gzip; the other answers are
	// compressed by the middleware (this one is large enough to be).
	for _, path := range []string{"/api/services", "/api/services/n1%2Fweb-1/history?granularity=5"} {
		_, _, plain := ts.getEncoded(t, path, "")
		for _, tc := range cases {
			enc, hdr, body := ts.getEncoded(t, path, tc.accept)
			if (enc == "gzip") != tc.gzip || (enc != "" && enc != "gzip") {
				t.Errorf("%s with Accept-Encoding %q: Content-Encoding %q, want gzip %v", path, tc.accept, enc, tc.gzip)
			}
			if !bytes.Equal(body, plain) {
				t.Errorf("%s with Accept-Encoding %q: body differs from the plain one", path, tc.accept)
			}
			if !strings.Contains(strings.Join(hdr.Values("Vary"), ","), "Accept-Encoding") {
				t.Errorf("%s: no Vary: Accept-Encoding: %v", path, hdr)
			}
		}
	}
	// A HEAD is never compressed, and says so.
	req, _ := http.NewRequest("HEAD", ts.URL+"/api/services", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("HEAD: %s %v", resp.Status, resp.Header)
	}
}

func TestInternalErrorsDoNotLeak(t *testing.T) {
	var logged bytes.Buffer
	s := New(nil, nil, []byte("k"), slog.New(slog.NewTextHandler(&logged, nil)))
	const secret = "open /var/lib/secret-path/h.db: permission denied"
	for _, err := range []error{errors.New(secret), errors.Join(errors.New("wrapped"), errors.New(secret))} {
		rec := httptest.NewRecorder()
		s.writeError(rec, httptest.NewRequest("GET", "/api/history", nil), err)
		if rec.Code != 500 || strings.TrimSpace(rec.Body.String()) != `{"error":"internal error"}` {
			t.Errorf("500 body: %d %s", rec.Code, rec.Body)
		}
	}
	if !strings.Contains(logged.String(), "secret-path") {
		t.Errorf("the error was not logged: %s", logged.String())
	}

	// And end to end: a store that fails answers 500 with nothing of its error.
	ts := newTestServer(t)
	ts.store.Close()
	for _, path := range []string{"/api/history", "/api/services/n1%2Fweb-1/history"} {
		code, _, body := ts.do(t, "GET", path, "")
		if code != 500 || strings.TrimSpace(string(body)) != `{"error":"internal error"}` {
			t.Errorf("%s with the store closed: %d %s", path, code, body)
		}
	}
}

func TestRouterErrorsSayWhich(t *testing.T) {
	ts := newTestServer(t)
	for path, want := range map[string]struct {
		method string
		status int
		msg    string
	}{
		"/api/nope":   {"GET", 404, "not found"},
		"/api/config": {"DELETE", 405, "method not allowed"},
	} {
		code, _, body := ts.do(t, want.method, path, "")
		if code != want.status || decode[errorBody](t, body).Error != want.msg {
			t.Errorf("%s %s: %d %s, want %d %q", want.method, path, code, body, want.status, want.msg)
		}
	}
}

func TestPanicsAndGoneClients(t *testing.T) {
	var logged bytes.Buffer
	s := New(nil, nil, []byte("k"), slog.New(slog.NewTextHandler(&logged, nil)))
	s.mux.Handle("GET /test/panic", s.jsonAPI(func(http.ResponseWriter, *http.Request) error {
		panic("secret /var/lib/secret-path")
	}))
	s.mux.Handle("GET /test/abort", s.jsonAPI(func(http.ResponseWriter, *http.Request) error {
		panic(http.ErrAbortHandler)
	}))
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)

	resp, err := http.Get(srv.URL + "/test/panic")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || strings.TrimSpace(string(body)) != `{"error":"internal error"}` {
		t.Errorf("panic: %s %s", resp.Status, body)
	}
	if !strings.Contains(logged.String(), "secret-path") {
		t.Errorf("the panic was not logged: %s", logged.String())
	}
	// ErrAbortHandler is net/http's way to cut the connection: it must
	// reach the server, not become a 500.
	if resp, err := http.Get(srv.URL + "/test/abort"); err == nil {
		resp.Body.Close()
		t.Errorf("aborted handler answered %s", resp.Status)
	}

	// A cancelled request gets no answer, and is not logged as a failure;
	// a cancellation of the handler's own making is an internal error.
	logged.Reset()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec := httptest.NewRecorder()
	s.writeError(rec, httptest.NewRequest("GET", "/api/history", nil).WithContext(ctx), context.Canceled)
	if rec.Body.Len() != 0 || logged.Len() != 0 {
		t.Errorf("client gone: answered %q, logged %q", rec.Body, logged.String())
	}
	rec = httptest.NewRecorder()
	s.writeError(rec, httptest.NewRequest("GET", "/api/history", nil), fmt.Errorf("reading: %w", context.Canceled))
	if rec.Code != 500 || strings.TrimSpace(rec.Body.String()) != `{"error":"internal error"}` {
		t.Errorf("own cancellation: %d %s", rec.Code, rec.Body)
	}
}
