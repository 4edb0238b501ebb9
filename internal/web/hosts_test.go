package web

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
)

func TestHostsAllows(t *testing.T) {
	h, err := NewHosts("localhost", "127.0.0.0/8", "::1", "Monitor.Example.", "10.1.2.3:8080", "[2001:db8::7]:443", "10.9.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"localhost", true},
		{"localhost:8080", true},
		{"LOCALHOST:8080", true},
		{"localhost.", true},
		{"localhost.:8080", true},
		{"localhost..", false},
		{"127.0.0.1", true},
		{"127.0.0.1:1", true},
		{"127.255.1.2:8080", true}, // all of 127.0.0.0/8
		{"[::1]", true},
		{"[::1]:8080", true},
		{"::1", true}, // unbracketed, so without port
		{"[::ffff:127.0.0.1]:8080", true},
		{"[0:0:0:0:0:0:0:1]:80", true},
		{"monitor.example", true},
		{"MONITOR.example:443", true},
		{"monitor.example.", true},
		{"10.1.2.3", true},
		{"10.1.2.3:9999", true}, // the port of an entry is ignored
		{"[2001:db8::7]", true},
		{"[2001:DB8:0::7]:8443", true},
		{"10.9.200.1", true},

		{"evil.example", false},
		{"evil.example:8080", false},
		{"monitor.example.evil.example", false},
		{"evilmonitor.example", false},
		{"localhost.evil.example", false},
		{"127.0.0.1.evil.example", false},
		{"128.0.0.1", false},
		{"10.1.2.4", false},
		{"10.10.0.1", false},
		{"[::2]:8080", false},
		{"[::1%25lo]:8080", false}, // a zone
		{"[::1%lo]", false},
		{"[127.0.0.1]", false}, // brackets hold IPv6 only
		{"[localhost]", false},
		{"[::1", false},
		{"[::1]x", false},
		{"[::1]:x", false},
		{"localhost:x", false},
		{"localhost:80:80", false},
		{"", false},
		{":8080", false},
		{".", false},
		{"user@localhost", false},
		{"localhost/x", false},
		{"2130706433", false}, // 127.0.0.1 as a number: browsers send it as 127.0.0.1
	} {
		if got := h.Allows(tc.host); got != tc.want {
			t.Errorf("Allows(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}

	any, _ := NewHosts("*")
	if !any.Allows("evil.example") {
		t.Error(`"*" refuses a host`)
	}
	for _, bad := range []string{"evil/x", "[::1", "a@b", "[fe80::1%eth0]", "x:y"} {
		if _, err := NewHosts(bad); err == nil {
			t.Errorf("NewHosts(%q) accepted", bad)
		}
	}
}

func TestDefaultHosts(t *testing.T) {
	h, err := DefaultHosts("monitor.internal:8080", "public.example")
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{
		"monitor.internal:8080": true, "public.example": true, "localhost": true, "127.0.0.1:8080": true, "[::1]:8080": true,
		"evil.example": false, "10.0.0.1": false,
	} {
		if got := h.Allows(host); got != want {
			t.Errorf("listening on a name: Allows(%q) = %v", host, got)
		}
	}

	// On every interface: this machine's name and addresses too.
	name, _ := os.Hostname()
	addrs, _ := net.InterfaceAddrs()
	for _, listen := range []string{":8080", "0.0.0.0:8080", "[::]:8080"} {
		h, err := DefaultHosts(listen)
		if err != nil {
			t.Fatal(err)
		}
		if name != "" && !h.Allows(name+":8080") {
			t.Errorf("%s: host name %q refused", listen, name)
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !h.Allows(net.JoinHostPort(n.IP.String(), "8080")) {
				t.Errorf("%s: interface address %s refused", listen, n.IP)
			}
		}
		if h.Allows("evil.example") || h.Allows("0.0.0.0") && !isLocalAddr(addrs, "0.0.0.0") {
			t.Errorf("%s: allows a foreign host", listen)
		}
	}
	// Listening on one address allows that address, not the others.
	h, _ = DefaultHosts("127.0.0.1:8080")
	if h.Allows(name) && name != "localhost" {
		t.Errorf("listening on loopback allows the host name %q", name)
	}
}

func isLocalAddr(addrs []net.Addr, ip string) bool {
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.String() == ip {
			return true
		}
	}
	return false
}

// A page on evil.example whose name now resolves to this machine (DNS
// rebinding) sends its own name as Host: nothing it asks for is answered.
func TestRebindingGets421(t *testing.T) {
	ts := newTestServer(t)
	var logged bytes.Buffer
	srv := ts.Config.Handler.(*Server)
	srv.log = slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, port, _ := net.SplitHostPort(ts.Listener.Addr().String())

	requests := []struct{ method, path, body string }{
		{"GET", "/", ""},
		{"GET", "/api/services", ""},
		{"GET", "/api/history", ""},
		{"GET", "/api/history?granularity=15", ""},
		{"GET", "/api/services/n1%2Fweb-1/history", ""},
		{"GET", "/api/config", ""},
		{"GET", "/healthz", ""},
		{"GET", "/healthz?x=1", ""},
		{"POST", "/api/config", `{"display":{"historyGranularity":60}}`},
		{"GET", "/static/js/main.js", ""},
		{"GET", "/no/such/path", ""},
		{"GET", "//api/services", ""},
	}
	send := func(host, method, path, body string) (int, http.Header, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := (&http.Transport{}).RoundTrip(req) // no redirects followed
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, b
	}
	for _, host := range []string{"evil.example", "evil.example:" + port, "EVIL.example.", "127.0.0.1.nip.example:" + port, "localhost.evil.example"} {
		for _, rq := range requests {
			code, hdr, body := send(host, rq.method, rq.path, rq.body)
			if code != http.StatusMisdirectedRequest || hdr.Get("Content-Type") != "application/json" || hdr.Get("Set-Cookie") != "" {
				t.Errorf("Host %s, %s %s: %d %v %s", host, rq.method, rq.path, code, hdr, body)
			}
			if got := decode[map[string]string](t, body); len(got) != 1 || !strings.Contains(got["error"], "--web.allowed-hosts") {
				t.Errorf("Host %s, %s %s: body %s", host, rq.method, rq.path, body)
			}
			for _, leak := range []string{"web-1", "n1", "10.0.0.1", "passing", "consul"} {
				if strings.Contains(string(body), leak) {
					t.Errorf("Host %s, %s %s: body carries %q: %s", host, rq.method, rq.path, leak, body)
				}
			}
		}
	}
	// The refused POST changed nothing.
	if code, _, body := ts.do(t, "GET", "/api/config", ""); code != 200 || !strings.Contains(string(body), `"historyGranularity":15`) {
		t.Errorf("settings after refused POST: %d %s", code, body)
	}
	if strings.Contains(logged.String(), "level=ERROR") || !strings.Contains(logged.String(), "level=INFO msg=\"refused a request for a host not served here") {
		t.Errorf("log:\n%s", logged.String())
	}

	// The names the server is reached by still work.
	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port, "localhost", "[::1]:" + port, "LocalHost.:" + port} {
		for _, rq := range requests[:9] {
			if rq.method == "POST" {
				continue // the same-origin rules of POST are tested on their own
			}
			if code, _, body := send(host, rq.method, rq.path, rq.body); code != 200 {
				t.Errorf("Host %s, %s %s: %d %s", host, rq.method, rq.path, code, body)
			}
		}
	}
}
