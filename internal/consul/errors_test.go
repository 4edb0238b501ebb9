package consul

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// clientFor returns a client for a server that answers every request with
// answer.
func clientFor(t *testing.T, answer http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(answer)
	t.Cleanup(srv.Close)
	cfg := api.DefaultNonPooledConfig()
	cfg.Address = srv.Listener.Addr().String()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// leaderAnswer answers 200 as a Consul server with a leader does, with the
// body write streams: the answers of the memory tests are too large to build.
func leaderAnswer(write func(w io.Writer)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Consul-Index", "1")
		w.Header().Set("X-Consul-KnownLeader", "true")
		write(w)
	}
}

func status(code int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}
}

// reads calls each of the three reads and returns their errors by endpoint.
func reads(ctx context.Context, c *Client) map[string]error {
	_, _, health := c.Checks(ctx, Blocking{})
	_, catalog := c.CatalogIndex(ctx, Blocking{})
	_, nodes := c.Instances(ctx)
	return map[string]error{healthEndpoint.path: health, catalogEndpoint.path: catalog, nodesEndpoint.path: nodes}
}

func TestErrorsNameTheEndpointAndConsulsMessage(t *testing.T) {
	html := "<html><body>" + strings.Repeat("<p>Bad gateway from the proxy in front of Consul</p>\n", 200) + "</body></html>"
	for _, tc := range []struct {
		name   string
		answer http.HandlerFunc
		code   int
		// want are parts every endpoint's message has; per endpoint adds
		// the parts of one of them.
		want        []string
		perEndpoint map[string]string
	}{
		{"403 unknown token", status(403, "ACL not found"), 403, []string{": 403 Forbidden: ACL not found; Consul does not know the token (CONSUL_HTTP_TOKEN); the monitor's token needs "},
			map[string]string{catalogEndpoint.path: "needs service:read", nodesEndpoint.path: "needs node:read and service:read"}},
		{"403", status(403, "Permission denied: token with AccessorID 'abc' lacks permission 'node:read'"), 403, []string{": 403 Forbidden: Permission denied: token with AccessorID 'abc' lacks permission 'node:read'; the token lacks"},
			map[string]string{
				healthEndpoint.path:  "lacks node:read and service:read",
				catalogEndpoint.path: "lacks service:read",
				nodesEndpoint.path:   "lacks node:read and service:read (node_prefix \"\" and service_prefix \"\" with policy read), or a proxy blocks /v1/internal/",
			}},
		{"429", status(429, "rate limit exceeded"), 429, []string{": 429 Too Many Requests: rate limit exceeded; Consul is rate limiting"}, nil},
		{"500", status(500, "rpc error making call: No cluster leader"), 500, []string{": 500 Internal Server Error: rpc error making call: No cluster leader"}, nil},
		{"502 with a page", status(502, html), 502, []string{": 502 Bad Gateway: <html><body><p>Bad gateway", "…; Consul or a proxy"}, nil},
		{"truncated", status(200, `[{"Node":"n1","CheckID":"serf`), 0, []string{": malformed answer (truncated"}, nil},
		{"not JSON", status(200, `<html>maintenance</html>`), 0, []string{": malformed answer"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for path, err := range reads(context.Background(), clientFor(t, tc.answer)) {
				var ce *Error
				if !errors.As(err, &ce) || ce.Endpoint != path || ce.StatusCode != tc.code {
					t.Errorf("%s: %#v", path, err)
					continue
				}
				msg := err.Error()
				if len(msg) > MaxErrorLength {
					t.Errorf("%s: %d bytes: %s", path, len(msg), msg)
				}
				if strings.Contains(msg, ", ;") || strings.HasSuffix(msg, ", ") || strings.Contains(msg, "read), (") {
					t.Errorf("%s: a hint with nothing in it: %s", path, msg)
				}
				if !strings.Contains(msg, " ("+path+")") {
					t.Errorf("%s: the endpoint is not named: %s", path, msg)
				}
				for _, part := range append(tc.want, tc.perEndpoint[path]) {
					if !strings.Contains(msg, part) {
						t.Errorf("%s: %q lacks %q", path, msg, part)
					}
				}
			}
		})
	}
}

func TestErrorsWithoutAnAnswer(t *testing.T) {
	// Connection refused: a port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := api.DefaultNonPooledConfig()
	cfg.Address = addr
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for path, err := range reads(context.Background(), c) {
		if msg := err.Error(); !strings.Contains(msg, "("+path+"): connection refused at "+addr+"; is Consul running") {
			t.Errorf("%s: %s", path, msg)
		}
	}

	// A partition: the server never answers.
	hang := make(chan struct{})
	hanging := clientFor(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})
	defer close(hang)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	for path, err := range reads(ctx, hanging) {
		if msg := err.Error(); !strings.Contains(msg, "("+path+"): no answer in time; Consul or the network") {
			t.Errorf("%s: %s", path, msg)
		}
	}
}

func TestBoundKeepsTheHead(t *testing.T) {
	head := "reading health checks (/v1/health/state/any): 403 Forbidden"
	for _, detail := range []string{"", "short", strings.Repeat("é", 1000), strings.Repeat("x ", 2000)} {
		msg := bound(head, detail, "the token lacks node:read")
		if len(msg) > MaxErrorLength || !strings.HasPrefix(msg, head) || !strings.Contains(msg, "node:read") {
			t.Errorf("bound(%d bytes of detail) = %q", len(detail), msg)
		}
		if strings.ToValidUTF8(msg, "\uFFFD") != msg {
			t.Errorf("bound cut a character: %q", msg)
		}
	}
	long := strings.Repeat("h", 600)
	if msg := bound(long, "d", "hint"); len(msg) > MaxErrorLength {
		t.Errorf("a long head gives %d bytes", len(msg))
	}
}

// An output limit left at zero (unset) keeps the default: a zero limit
// would cut every output to nothing.
func TestCheckOutputMaxZeroKeepsTheDefault(t *testing.T) {
	for n, want := range map[int]int{0: DefaultCheckOutputMax, -1: DefaultCheckOutputMax, 1: 1, 300: 300} {
		c, err := New(api.DefaultConfig(), WithCheckOutputMax(n))
		if err != nil {
			t.Fatal(err)
		}
		if c.outputMax != want {
			t.Errorf("WithCheckOutputMax(%d): limit %d, want %d", n, c.outputMax, want)
		}
	}
}
