package consul

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// A Consul server that has lost its cluster's leader (a partition, or a
// majority of servers down) still answers stale reads, from a state that no
// longer changes: checks that failed since show as passing, dead servers as
// alive. Such an answer certifies nothing; it must be an error that says
// why, or the monitor records the outage as observed passing.
func TestAnswerWithoutALeaderIsAnError(t *testing.T) {
	c := clientFor(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Consul-Index", "42")
		w.Header().Set("X-Consul-KnownLeader", "false")
		w.Header().Set("X-Consul-LastContact", "23055")
		switch r.URL.Path {
		case healthEndpoint.path:
			_, _ = w.Write([]byte(`[{"Node":"s1","CheckID":"pay-ttl","ServiceID":"pay-1","Status":"passing"}]`))
		case catalogEndpoint.path:
			_, _ = w.Write([]byte(`{"pay":[]}`))
		default:
			_, _ = w.Write([]byte(`[]`))
		}
	})
	for path, err := range reads(context.Background(), c) {
		if err == nil {
			t.Errorf("%s: an answer from a server without a leader was taken as current", path)
			continue
		}
		if !strings.Contains(err.Error(), "leader") {
			t.Errorf("%s: %v, want it to say the server has no leader", path, err)
		}
	}
}
