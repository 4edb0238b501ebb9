package health

import (
	"strings"
	"testing"
)

// The seeds run in every go test; scripts/fuzz explores from them.

// FuzzInstanceIDRoundTrip: every node and service ID pair Consul can hold
// (both non-empty) reads back from its API identifier unchanged.
func FuzzInstanceIDRoundTrip(f *testing.F) {
	for _, seed := range [][2]string{
		{"node-a", "web-1"}, {"a/b", "c"}, {"a", "b/c"}, {"100%", "x"}, {"n", "%2F"}, {"%25", "%2f"},
		{"/", "/"}, {"%", "%"}, {"a//b", "%%2F2F"}, {"ünï", "svc 1"}, {"n", "\x00"}, {"n\xff", "s"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, node, serviceID string) {
		id := InstanceID(node, serviceID)
		if strings.Count(id, "/") != 1 {
			t.Fatalf("InstanceID(%q, %q) = %q: not exactly one separator", node, serviceID, id)
		}
		gotNode, gotService, ok := ParseInstanceID(id)
		if node == "" || serviceID == "" {
			if ok {
				t.Fatalf("ParseInstanceID(%q) accepted an empty part: %q, %q", id, gotNode, gotService)
			}
			return
		}
		if !ok || gotNode != node || gotService != serviceID {
			t.Fatalf("ParseInstanceID(InstanceID(%q, %q) = %q) = %q, %q, %v", node, serviceID, id, gotNode, gotService, ok)
		}
		if (Instance{Node: node, ServiceID: serviceID}).ID() != id {
			t.Fatalf("Instance.ID differs from InstanceID for %q, %q", node, serviceID)
		}
	})
}

// FuzzParseInstanceID: any text either is refused or is exactly the
// identifier of what it parses to, so that two texts never name one instance.
func FuzzParseInstanceID(f *testing.F) {
	for _, seed := range []string{
		"node-a/web-1", "a%2Fb/c", "a/b%2Fc", "100%25/x", "n/%252F",
		"", "nodeonly", "/x", "x/", "a/b/c", "a%2f/b", "a%zz/b", "%/x", "a%2/b", "%2F/%2F", "a%25%2F/b", "%25%32%46/x",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, id string) {
		node, serviceID, ok := ParseInstanceID(id)
		if !ok {
			if node != "" || serviceID != "" {
				t.Fatalf("ParseInstanceID(%q) refused but returned %q, %q", id, node, serviceID)
			}
			return
		}
		if node == "" || serviceID == "" {
			t.Fatalf("ParseInstanceID(%q) = %q, %q: an empty part", id, node, serviceID)
		}
		if back := InstanceID(node, serviceID); back != id {
			t.Fatalf("ParseInstanceID(%q) = %q, %q, whose identifier is %q", id, node, serviceID, back)
		}
	})
}
