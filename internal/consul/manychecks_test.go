package consul

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/health"
)

// Consul takes any number of checks in one catalog registration. One of
// 25 MB, a node with 5,000 critical checks of 5,000-byte outputs, took the
// monitor's RSS from 19 MB to 175 MB, /api/services to 21 MB and the
// database to 46 MB, against the README's "N instances with maximal outputs
// cost at most N x 160 KB". What one node's checks keep must be bounded as
// one output is.
func TestOneNodesChecksAreBounded(t *testing.T) {
	const checks = 5000
	out := strings.Repeat("y", 5000)
	c := clientFor(t, leaderAnswer(func(w io.Writer) {
		_, _ = io.WriteString(w, "[")
		for i := 0; i < checks; i++ {
			if i > 0 {
				_, _ = io.WriteString(w, ",")
			}
			if _, err := fmt.Fprintf(w, `{"Node":"n1","CheckID":"c%d","Name":"c%d","Status":"critical","Output":%q,"ServiceID":""}`, i, i, out); err != nil {
				return
			}
		}
		_, _ = io.WriteString(w, "]")
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	got, _, err := c.Checks(ctx, Blocking{})
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if len(got) != checks {
		t.Fatalf("%d of %d checks kept: a status must never be dropped", len(got), checks)
	}
	kept := 0
	for _, ch := range got {
		kept += len(ch.Output)
		if ch.Status != health.Critical {
			t.Fatalf("check %s read as %q", ch.CheckID, ch.Status)
		}
	}
	// Outputs: at most the node's budget. Heap: that, plus what each
	// check's identity and status cost (a few hundred bytes).
	budget := health.NodeOutputBudget(DefaultCheckOutputMax)
	perCheck := int64(400)
	if held := int64(after.HeapAlloc) - int64(before.HeapAlloc); kept > budget || held > int64(budget)+perCheck*checks {
		t.Errorf("one node's %d checks keep %d KB of output and %d KB of heap; at most %d KB of output and %d KB in all", len(got), kept>>10, held>>10, budget>>10, (int64(budget)+perCheck*checks)>>10)
	}
	runtime.KeepAlive(got)
}
