package health

import (
	"strings"
	"testing"
)

func TestChangeOfCheck(t *testing.T) {
	for _, tc := range []struct {
		name     string
		checkID  string
		from, to Status
		want     CheckChange
	}{
		{"status change", "service:web", Passing, Critical, CheckChange{EventStatus, Passing, Critical}},
		{"recovery", "service:web", Warning, Passing, CheckChange{EventStatus, Warning, Passing}},
		{"first seen", "service:web", "", Passing, CheckChange{EventCheckAdded, "", Passing}},
		{"removed", "service:web", Critical, "", CheckChange{EventCheckRemoved, Critical, ""}},
		{"node maintenance on", "_node_maintenance", "", Critical, CheckChange{EventCheckAdded, "", Maintenance}},
		{"service maintenance off", "_service_maintenance:web-1", Critical, "", CheckChange{EventCheckRemoved, Maintenance, ""}},
		// Only Consul's reserved IDs mean maintenance.
		{"a check named like one", "service_maintenance:web-1", "", Critical, CheckChange{EventCheckAdded, "", Critical}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ChangeOfCheck(tc.checkID, tc.from, tc.to); got != tc.want {
				t.Errorf("ChangeOfCheck(%q, %q, %q) = %+v, want %+v", tc.checkID, tc.from, tc.to, got, tc.want)
			}
		})
	}
}

func TestChangeOfRegistration(t *testing.T) {
	if got := ChangeOfRegistration(true); got != EventRegistered {
		t.Errorf("registered: %q", got)
	}
	if got := ChangeOfRegistration(false); got != EventDeregistered {
		t.Errorf("deregistered: %q", got)
	}
}

func TestEventOutput(t *testing.T) {
	euro := "€" // 3 bytes
	for _, tc := range []struct {
		name    string
		in      string
		wantLen int
		cut     bool
	}{
		{"empty", "", 0, false},
		{"short", "HTTP GET: 200 OK", 16, false},
		{"exactly the limit", strings.Repeat("a", EventOutputMax), EventOutputMax, false},
		{"one over", strings.Repeat("a", EventOutputMax+1), EventOutputMax, true},
		// 1023 ASCII bytes then a 3-byte character straddling the limit:
		// the character goes whole.
		{"character at the limit", strings.Repeat("a", EventOutputMax-1) + euro, EventOutputMax - 1, true},
		{"characters throughout", strings.Repeat(euro, 400), 341 * 3, true},
		// Not UTF-8: cut at the limit, at most UTFMax-1 bytes earlier.
		{"continuation bytes", strings.Repeat("\x80", 2000), EventOutputMax - 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, cut := EventOutput(tc.in)
			if len(got) != tc.wantLen || cut != tc.cut || !strings.HasPrefix(tc.in, got) {
				t.Errorf("EventOutput: %d bytes, cut %v; want %d bytes, cut %v", len(got), cut, tc.wantLen, tc.cut)
			}
		})
	}
}
