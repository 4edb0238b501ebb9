package consul

import (
	"context"
	"encoding/json"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// Consul bounds a service's meta (64 pairs) but not its tags: one catalog
// registration of 20 MB, a service with 5,000,000 empty tags, was accepted,
// and Consul repeats the tags in every check of /v1/internal/ui/nodes (240 MB
// as served). The monitor held them all: its RSS went from 19 MB to 810 MB
// peak and 587 MB after, and /api/services grew to 15 MB. The tags kept must
// be bounded while the answer streams in, like the strings are.
func TestTagsAreBoundedWhileRead(t *testing.T) {
	const tags = 2_000_000
	c := clientFor(t, leaderAnswer(func(w io.Writer) {
		_, _ = io.WriteString(w, `[{"Node":"n1","Address":"10.0.0.1","Services":[{"ID":"s1","Service":"s","Tags":["a","b"`)
		chunk := strings.Repeat(`,""`, 10_000)
		for n := 0; n < tags; n += 10_000 {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
		_, _ = io.WriteString(w, `],"Port":80}],"Checks":[{"ServiceTags":[""`+strings.Repeat(`,""`, 100_000)+`],"Output":"x"}]}]`)
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
	if len(instances) != 1 {
		t.Fatalf("got %d instances, want 1", len(instances))
	}
	if got := instances[0].Tags; len(got) > MaxTags || len(got) < 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("kept %d tags (first %q), want the first ones, at most %d", len(got), got[:min(2, len(got))], MaxTags)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("reading a service with %d tags (a %d MB answer) allocated %d MB", tags, 3*tags>>20, alloc>>20)
	}
}

// FuzzTagLists checks the tag-list cut: valid JSON stays valid JSON, and a
// tag list keeps exactly its first tags.
func FuzzTagLists(f *testing.F) {
	f.Add(`{"Tags":["a","b\"]","c"],"ServiceTags":[ "x" , "y","z"],"Other":["1","2","3"]}`, 2, false)
	f.Add(`{"s":["a","b","c"],"t":[],"u":["\\",",","]"]}`, 1, true)
	f.Add(`{"Tags":[1,[2,3],"a"],"Tags":{"Tags":["a","b"]}}`, 1, false)
	f.Add(`[ {"Proxy" : {"a":[1, "x\"]", {"b":null}]}, "Checks": 12 , "Connect":"s\\","TaggedAddresses": true,"Port":1} ]`, 1, true)
	f.Fuzz(func(t *testing.T, src string, maxTags int, all bool) {
		if !json.Valid([]byte(src)) {
			return
		}
		maxTags = 1 + int(uint(maxTags)%4)
		c := &stringCapper{body: io.NopCloser(iotest.OneByteReader(strings.NewReader(src))), max: 1 << 20, maxTags: maxTags, allArraysTags: all,
			compact: all, skipKeys: unusedNodeValues}
		out, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(out) {
			t.Fatalf("%d tags of %q gave invalid JSON %q", maxTags, src, out)
		}
	})
}
