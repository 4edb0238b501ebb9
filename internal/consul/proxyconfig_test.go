package consul

import (
	"context"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"
)

// A service registration may carry a proxy configuration of any size and
// shape, which the monitor does not use, and Consul serves
// /v1/internal/ui/nodes indented, one line per array element. One
// registration of 3 MB (a connect-proxy whose Proxy.Config holds 1,000,000
// numbers) made that answer 31 MB and took the monitor's RSS from 20 MB to
// 107 MB: the decoder holds a whole answer. What the monitor does not use
// must not be held.
func TestUnusedConfigIsNotHeld(t *testing.T) {
	const elems = 1_000_000
	c := clientFor(t, leaderAnswer(func(w io.Writer) {
		_, _ = io.WriteString(w, "[\n    {\n        \"Node\": \"n1\",\n        \"Address\": \"10.0.0.1\",\n        \"Services\": [\n            {\n                \"ID\": \"p-1\",\n                \"Service\": \"p\",\n                \"Proxy\": {\n                    \"Config\": {\n                        \"x\": [\n")
		chunk := strings.Repeat("                            1,\n", 10_000)
		for n := 0; n < elems; n += 10_000 {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
		_, _ = io.WriteString(w, "                            1\n                        ]\n                    }\n                },\n                \"Port\": 21000,\n                \"Tags\": [\"t\"],\n                \"Meta\": {\"Proxy\": \"envoy\", \"Checks\": \"3\"}\n            }\n        ]\n    }\n]")
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	instances, err := c.Instances(ctx)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if len(instances) != 1 || instances[0].ServiceID != "p-1" || instances[0].Port != 21000 || len(instances[0].Tags) != 1 {
		t.Fatalf("got %+v", instances)
	}
	// A meta key that happens to be named as a skipped value is kept.
	if m := instances[0].Meta; m["Proxy"] != "envoy" || m["Checks"] != "3" {
		t.Errorf("meta %v, want Proxy=envoy and Checks=3", m)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("reading one instance with a %d-element proxy config (a %d MB answer) allocated %d MB", elems, 29*elems>>20, alloc>>20)
	}
}
