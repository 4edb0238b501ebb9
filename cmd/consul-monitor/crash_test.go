package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/consul-monitor/consul-monitor/internal/consultest"
)

// checkKey names a check as Consul does: node and check ID.
type checkKey struct{ node, check string }

// shownStatus is a check status that /api/services showed, and when its
// answer had arrived: the change behind it was committed by then.
type shownStatus struct {
	status string
	at     time.Time
}

// shown is what the API showed across all runs of the monitor: per check,
// the statuses in the order they were shown, repeats left out.
type shown struct {
	mu       sync.Mutex
	checks   map[checkKey][]shownStatus
	lastPoll time.Time
	answers  int
}

func (s *shown) add(body servicesBody, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers++
	if body.LastPoll != nil && body.LastPoll.After(s.lastPoll) {
		s.lastPoll = *body.LastPoll
	}
	for _, svc := range body.Services {
		for _, c := range svc.Checks {
			k := checkKey{svc.Node, c.ID}
			seq := s.checks[k]
			if len(seq) > 0 && seq[len(seq)-1].status == c.Status {
				continue
			}
			s.checks[k] = append(seq, shownStatus{c.Status, at})
		}
	}
}

// changes counts the shown statuses that differ from the one before.
func (s *shown) changes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, seq := range s.checks {
		n += len(seq) - 1
	}
	return n
}

// watchAPI reads /api/services as fast as it answers until ctx ends,
// adding every answer to s. Answers that arrive whole were served before
// any kill, so each of them counts as shown to a user.
func watchAPI(ctx context.Context, addr string, s *shown) {
	client := &http.Client{Timeout: 5 * time.Second}
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/services", nil)
		resp, err := client.Do(req)
		if err != nil {
			// Not serving yet, or killed: try again until told to stop.
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
			continue
		}
		var body servicesBody
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err == nil && resp.StatusCode == http.StatusOK {
			s.add(body, time.Now())
		}
	}
}

// storedSpan is a row of check_spans, with its check's natural key.
type storedSpan struct {
	atMs   int64
	status string
}

// readStored reads every check's stored timeline straight from the file.
func readStored(t *testing.T, path string) (map[checkKey][]storedSpan, int64) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT c.node, c.check_id, s.at_ms, s.status
		FROM check_spans s JOIN checks c ON c.id = s.check_id
		ORDER BY c.node, c.check_id, s.at_ms`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	spans := map[checkKey][]storedSpan{}
	for rows.Next() {
		var k checkKey
		var sp storedSpan
		if err := rows.Scan(&k.node, &k.check, &sp.atMs, &sp.status); err != nil {
			t.Fatal(err)
		}
		spans[k] = append(spans[k], sp)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var lastEnd sql.NullInt64
	if err := db.QueryRow(`SELECT max(end_ms) FROM observations`).Scan(&lastEnd); err != nil {
		t.Fatal(err)
	}
	return spans, lastEnd.Int64
}

// missingShown returns the first status shown for a check that the stored
// timeline lacks. Each shown status must match a stored change of that
// status, recorded no later than the answer that showed it, in the order
// shown; so a lost change cannot hide behind the same status recorded
// again by the next process, which starts long after. Matching each to the
// earliest stored change that fits leaves the most room for the rest, so a
// miss is a real one.
func missingShown(seq []shownStatus, stored []storedSpan) (shownStatus, bool) {
	// Two changes in one millisecond are stored a millisecond apart, so a
	// change may carry a time a little past the answer that showed it.
	const slackMs = 20
	j := 0
	for _, want := range seq {
		latest := want.at.UnixMilli() + slackMs
		for j < len(stored) && stored[j].status != want.status && stored[j].atMs <= latest {
			j++
		}
		if j == len(stored) || stored[j].atMs > latest {
			return want, true
		}
		j++
	}
	return shownStatus{}, false
}

// checkShares fails the test for any history window, per instance or per
// service group, whose shares leave [0, 100] or do not add up to 100.
func checkShares(t *testing.T, addr string, ids []string) {
	t.Helper()
	for _, g := range []int{5, 60} {
		var all struct {
			Services map[string][][]float64 `json:"services"`
			Groups   map[string][][]float64 `json:"groups"`
		}
		if code := getJSON(t, fmt.Sprintf("http://%s/api/history?granularity=%d", addr, g), &all); code != 200 {
			t.Fatalf("/api/history: %d", code)
		}
		for kind, rows := range map[string]map[string][][]float64{"instance": all.Services, "group": all.Groups} {
			for id, runs := range rows {
				for _, run := range runs {
					if len(run) < 5 {
						t.Fatalf("/api/history %s %s: run %v is too short", kind, id, run)
					}
					sharesOK(t, fmt.Sprintf("/api/history?granularity=%d %s %s", g, kind, id), run[1], run[2], run[3], run[4])
				}
			}
		}
		if len(all.Services) < len(ids) {
			t.Errorf("/api/history?granularity=%d has %d instances, want at least %d", g, len(all.Services), len(ids))
		}
		for _, id := range ids {
			var h historyBody
			u := fmt.Sprintf("http://%s/api/services/%s/history?granularity=%d", addr, url.PathEscape(id), g)
			if code := getJSON(t, u, &h); code != 200 {
				t.Fatalf("%s: %d", u, code)
			}
			for _, d := range h.Data {
				sharesOK(t, u+" at "+d.Timestamp.String(), d.Passing, d.Warning, d.Critical, d.NoData)
			}
		}
	}
}

func sharesOK(t *testing.T, where string, shares ...float64) {
	t.Helper()
	sum := 0.0
	for _, s := range shares {
		if s < 0 || s > 100 {
			t.Errorf("%s: share %v outside [0, 100] in %v", where, s, shares)
		}
		sum += s
	}
	// Each share is rounded to 0.1.
	if sum < 99.7 || sum > 100.3 {
		t.Errorf("%s: shares %v add up to %v", where, shares, sum)
	}
}

// TestKillNineUnderLoad kills the monitor with SIGKILL at random moments
// while checks flip many times a second, and after each kill proves from
// the database file that every change the API had shown was stored, that
// the file is sound, and, after the restart, that history is in bounds.
func TestKillNineUnderLoad(t *testing.T) {
	const (
		rounds    = 24
		flappers  = 4
		flipEvery = 8 * time.Millisecond
		maxFlips  = 20000 // bounds the flipping to well over the test's length
	)
	agent := consultest.Start(t)
	c := agent.Client()
	var ids []string
	for i := range flappers {
		id := fmt.Sprintf("flap-%d", i)
		err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: id, Name: "flap", Port: 9000 + i,
			Check: &api.AgentServiceCheck{CheckID: id + "-ttl", TTL: "10m", Status: api.HealthPassing},
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, consultest.NodeName+"/"+id)
	}

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))

	flipCtx, stopFlipping := context.WithCancel(context.Background())
	var flipping sync.WaitGroup
	flips := 0
	flipping.Go(func() {
		statuses := []string{api.HealthPassing, api.HealthWarning, api.HealthCritical}
		frng := rand.New(rand.NewPCG(seed+1, seed))
		for ; flips < maxFlips && flipCtx.Err() == nil; flips++ {
			id := fmt.Sprintf("flap-%d-ttl", flips%flappers)
			status := statuses[frng.IntN(len(statuses))]
			_ = c.Agent().UpdateTTL(id, "flip "+status, status)
			time.Sleep(flipEvery) // pacing the load, not synchronisation
		}
	})
	defer func() { stopFlipping(); flipping.Wait() }()

	dbPath := filepath.Join(t.TempDir(), "history.db")
	seen := &shown{checks: map[checkKey][]shownStatus{}}
	started := time.Now()
	killedEarly := 0
	for round := range rounds {
		addr := freeAddr(t)
		cmd, out := startProcess(t, "--listen", addr, "--db", dbPath, "--poll-interval", "1s", "--min-query-gap", "20ms", "--consul-addr", agent.Addr())
		watchCtx, stopWatching := context.WithCancel(context.Background())
		var watching sync.WaitGroup
		watching.Go(func() { watchAPI(watchCtx, addr, seen) })

		// One round in four is killed at any moment of its start (opening,
		// migrating, the first reads and write); the others once they watch
		// Consul, at any moment of the load.
		if round%4 == 1 {
			killedEarly++
			time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		} else {
			consultest.WaitFor(t, 15*time.Second, fmt.Sprintf("round %d watching Consul", round), func() error {
				var body servicesBody
				resp, err := http.Get("http://" + addr + "/api/services")
				if err != nil {
					return fmt.Errorf("%v\n%s", err, out)
				}
				defer resp.Body.Close()
				if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
					return err
				}
				if !body.ConsulAvailable {
					return fmt.Errorf("not watching yet")
				}
				return nil
			})
			// After a restart: history as the killed runs left it.
			if round > 0 {
				checkShares(t, addr, ids)
			}
			time.Sleep(time.Duration(rng.IntN(800)) * time.Millisecond)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		stopWatching()
		watching.Wait()

		if check := integrityCheck(t, dbPath); check != "ok" {
			t.Fatalf("round %d: integrity_check says %q", round, check)
		}
		stored, lastEnd := readStored(t, dbPath)
		seen.mu.Lock()
		for k, seq := range seen.checks {
			if miss, ok := missingShown(seq, stored[k]); ok {
				t.Errorf("round %d: %s/%s was shown %s at %s, which is not in the stored history %v",
					round, k.node, k.check, miss.status, miss.at.Format(time.RFC3339Nano), stored[k])
			}
		}
		if ms := seen.lastPoll.UnixMilli(); !seen.lastPoll.IsZero() && lastEnd < ms {
			t.Errorf("round %d: last poll shown %s, but observation is stored only up to %s",
				round, seen.lastPoll.Format(time.RFC3339Nano), time.UnixMilli(lastEnd).UTC().Format(time.RFC3339Nano))
		}
		seen.mu.Unlock()
		if t.Failed() {
			t.Fatalf("round %d output:\n%s", round, out)
		}
	}

	// The last restart: history in bounds, and the API still shows what
	// the file holds.
	addr := freeAddr(t)
	cmd, out := startProcess(t, "--listen", addr, "--db", dbPath, "--poll-interval", "1s", "--min-query-gap", "20ms", "--consul-addr", agent.Addr())
	waitServing(t, addr, out)
	checkShares(t, addr, ids)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, out)
	}
	stopFlipping()
	flipping.Wait()

	changes := seen.changes()
	t.Logf("%d kills (%d during start) in %v; %d flips sent; %d API answers read, showing %d changes, all stored",
		rounds, killedEarly, time.Since(started).Round(time.Millisecond), flips, seen.answers, changes)
	// The load must be real: many changes shown, so many to lose.
	if changes < 5*rounds {
		t.Errorf("only %d changes shown over %d rounds: the load is too light to prove anything", changes, rounds)
	}
}

func TestMissingShown(t *testing.T) {
	at := func(ms int64) time.Time { return time.UnixMilli(ms) }
	stored := []storedSpan{{1000, "passing"}, {1100, "critical"}, {1200, "passing"}, {5000, "warning"}}
	for _, tc := range []struct {
		name string
		seq  []shownStatus
		miss bool
	}{
		{"all shown, in order", []shownStatus{{"passing", at(1050)}, {"critical", at(1150)}, {"passing", at(1300)}}, false},
		{"a status shown before it was stored", []shownStatus{{"critical", at(1050)}}, true},
		{"a lost change hidden behind a later record", []shownStatus{{"passing", at(1050)}, {"critical", at(1150)}, {"passing", at(1300)}, {"warning", at(1400)}}, true},
		{"out of order", []shownStatus{{"critical", at(1150)}, {"passing", at(1300)}, {"critical", at(6000)}}, true},
		{"within the slack", []shownStatus{{"warning", at(4990)}}, false},
	} {
		if _, miss := missingShown(tc.seq, stored); miss != tc.miss {
			t.Errorf("%s: miss %v, want %v", tc.name, miss, tc.miss)
		}
	}
}
