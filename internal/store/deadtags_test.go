package store

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// An instance that leaves Consul is kept for its history, which needs only
// its node, id and name; its tags and meta stayed until retention (30 days).
// Ten registrations of 64 tags of 60,000 bytes, each removed again, left
// 38 MB of tags in the database, as check outputs did before.
func TestRemovedInstanceTagsLeaveTheDisk(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "h.db"))
	snap := cluster(2)
	big := strings.Repeat("x", 60000)
	snap.Instances[1].Tags = []string{big, big + "y"}
	snap.Instances[1].Meta = map[string]string{"k": big}
	mustRecord(t, s, t0, snap)
	gone := snap
	gone.Instances = snap.Instances[:1]
	mustRecord(t, s, t0.Add(time.Second), gone)
	var tags, meta int
	if err := s.reader.QueryRow(`SELECT length(tags), length(meta) FROM instances WHERE service_id = ?`, snap.Instances[1].ServiceID).Scan(&tags, &meta); err != nil {
		t.Fatal(err)
	}
	if tags+meta > 100 {
		t.Errorf("a removed instance keeps %d bytes of tags and %d of meta on disk", tags, meta)
	}
	// It comes back with its catalog entry whole.
	mustRecord(t, s, t0.Add(2*time.Second), snap)
	if err := s.reader.QueryRow(`SELECT length(tags), length(meta) FROM instances WHERE service_id = ?`, snap.Instances[1].ServiceID).Scan(&tags, &meta); err != nil {
		t.Fatal(err)
	}
	if tags < 120000 || meta < 60000 {
		t.Errorf("a returning instance has %d bytes of tags and %d of meta, want its own", tags, meta)
	}
}
