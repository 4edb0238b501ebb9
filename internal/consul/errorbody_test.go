package consul

import (
	"bytes"
	"context"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// A proxy in front of Consul may answer with an error page of any size. The
// API client reads a whole error body into memory (and keeps it in the
// error), so a 400 MB page cost the monitor 3.6 GB of RSS. Only the start
// of it is ever shown, so only the start may be read.
func TestHugeErrorBodyIsNotHeld(t *testing.T) {
	const size = 64 << 20
	chunk := bytes.Repeat([]byte("<p>Bad gateway</p>\n"), 4096)
	c := clientFor(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		for n := 0; n < size; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	errs := reads(ctx, c)
	runtime.ReadMemStats(&after)
	for ep, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "502") {
			t.Errorf("%s: got %v, want a 502 error", ep, err)
		}
	}
	// Three reads of a 64 MB page: anything near the page's size means it
	// was read whole.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("three reads of a %d MB error page allocated %d MB; an error body must be read only as far as it is shown", size>>20, alloc>>20)
	}
}
