// Command consul-monitor-bench measures consul-monitor against a real Consul
// dev agent holding a synthetic cluster, side by side with the plain Consul
// API client, and prints a table and writes the same figures as JSON.
// Everything runs on loopback; every load loop is bounded in count and time.
//
//	scripts/bench                       # 1,000 nodes x 10 services
//	scripts/bench --nodes 10 --services 10 --flips 10   # the small run CI does
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/consul-monitor/consul-monitor/internal/consul"
	"github.com/consul-monitor/consul-monitor/internal/devagent"
	"github.com/consul-monitor/consul-monitor/internal/health"
	"github.com/consul-monitor/consul-monitor/internal/loadgen"
	"github.com/consul-monitor/consul-monitor/internal/store"
)

type options struct {
	nodes, services int
	runs            int
	flips           int
	clients         int
	requests        int
	historyRequests int
	monitorBin      string
	jsonPath        string
}

// result holds every figure; it is written as JSON as it is.
type result struct {
	Nodes     int `json:"nodes"`
	Instances int `json:"instances"`
	Checks    int `json:"checks"`

	FloorMedianMs float64 `json:"a_floor_health_state_median_ms"`
	FloorP90Ms    float64 `json:"a_floor_health_state_p90_ms"`
	CycleMedianMs float64 `json:"b_cycle_median_ms"`
	CycleP90Ms    float64 `json:"b_cycle_p90_ms"`
	CycleRatio    float64 `json:"b_cycle_to_floor_ratio"`
	// Every timed cycle carried a flipped check; CycleSpans are the span
	// rows those cycles wrote, at least one each.
	CycleRuns  int `json:"b_cycle_runs"`
	CycleSpans int `json:"b_cycle_span_rows"`

	NoChangeSpanRows int     `json:"c_no_change_span_rows"`
	NoChangeRows     int     `json:"c_no_change_rows"`
	NoChangeBytes    int64   `json:"c_no_change_bytes_written"`
	OnePctChecks     int     `json:"c_one_percent_checks_changed"`
	OnePctSpanRows   int     `json:"c_one_percent_span_rows"`
	OnePctRows       int     `json:"c_one_percent_rows"`
	OnePctBytes      int64   `json:"c_one_percent_bytes_written"`
	BytesPerSpan     float64 `json:"d_db_bytes_per_span"`
	GrowthMBPerDay   float64 `json:"d_projected_growth_mb_per_day"`

	ServicesP50Ms float64 `json:"e_api_services_p50_ms"`
	ServicesP99Ms float64 `json:"e_api_services_p99_ms"`
	ServicesReqs  int     `json:"e_api_services_requests"`
	ServicesBytes int     `json:"e_api_services_response_bytes"`
	// The answer's size with node checks once per node, and as it was with
	// them copied into every instance.
	ServicesPlainBytes int     `json:"e_api_services_plain_bytes"`
	ServicesGzipBytes  int     `json:"e_api_services_gzip_bytes"`
	CopiedPlainBytes   int     `json:"e_api_services_node_checks_copied_plain_bytes"`
	CopiedGzipBytes    int     `json:"e_api_services_node_checks_copied_gzip_bytes"`
	HistoryP50Ms       float64 `json:"e_api_history_5m_p50_ms"`
	HistoryP99Ms       float64 `json:"e_api_history_5m_p99_ms"`
	HistoryReqs        int     `json:"e_api_history_requests"`
	HistoryBytes       int     `json:"e_api_history_response_bytes"`

	PeakRSSMB float64 `json:"f_peak_rss_mb"`

	ChangeMedianMs float64 `json:"g_change_to_api_median_ms"`
	ChangeMaxMs    float64 `json:"g_change_to_api_max_ms"`
	ChangeFlips    int     `json:"g_flips"`

	PruneRows           int64   `json:"retention_rows_deleted"`
	PruneBatches        int     `json:"retention_batches"`
	PruneLongestBatchMs float64 `json:"retention_longest_batch_ms"`
}

func main() {
	var o options
	flag.IntVar(&o.nodes, "nodes", 1000, "nodes in the synthetic cluster")
	flag.IntVar(&o.services, "services", 10, "service instances per node")
	flag.IntVar(&o.runs, "runs", 30, "repetitions of each timed read and cycle")
	flag.IntVar(&o.flips, "flips", 100, "check changes timed from Consul to the API")
	flag.IntVar(&o.clients, "clients", 20, "concurrent clients on /api/services")
	flag.IntVar(&o.requests, "requests", 2000, "requests to /api/services, across all clients")
	flag.IntVar(&o.historyRequests, "history-requests", 30, "requests to /api/history, one at a time")
	flag.StringVar(&o.monitorBin, "monitor-bin", "", "the consul-monitor binary to measure (scripts/bench builds it)")
	flag.StringVar(&o.jsonPath, "json", "bench.json", "where to write the figures as JSON")
	flag.Parse()
	if o.monitorBin == "" {
		fmt.Fprintln(os.Stderr, "consul-monitor-bench: --monitor-bin is needed (scripts/bench builds it)")
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The whole run is bounded in time, whatever happens.
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	res, err := run(ctx, o, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "consul-monitor-bench:", err)
		os.Exit(1)
	}
	printTable(os.Stdout, res)
	out, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(o.jsonPath, append(out, '\n'), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "consul-monitor-bench:", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func run(ctx context.Context, o options, log *slog.Logger) (result, error) {
	var res result
	work, err := os.MkdirTemp("", "consul-monitor-bench")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(work)

	bin, err := devagent.Binary()
	if err != nil {
		return res, err
	}
	agent, err := devagent.Start(ctx, bin, work)
	if err != nil {
		return res, err
	}
	defer agent.Stop()
	client, err := agent.Client()
	if err != nil {
		return res, err
	}
	step("registering %d nodes x %d services in Consul", o.nodes, o.services)
	gen := loadgen.New(client, loadgen.Config{Nodes: o.nodes, ServicesPerNode: o.services, Concurrency: 32, Seed: 7}, log)
	if err := gen.Register(ctx); err != nil {
		return res, err
	}
	cc, err := consul.New(agent.Config())
	if err != nil {
		return res, err
	}
	snap, err := cc.Snapshot(ctx)
	if err != nil {
		return res, err
	}
	res.Nodes, res.Instances, res.Checks = o.nodes, len(snap.Instances), len(snap.Checks)

	step("(a) floor and (b) cycle, %d runs each", o.runs)
	if err := measureCycle(ctx, o, client, cc, gen, filepath.Join(work, "cycle.db"), &res); err != nil {
		return res, err
	}

	step("seeding 24 h of history through the store, 1%% of checks flipping per hour")
	historyDB := filepath.Join(work, "history.db")
	if err := seedDay(ctx, historyDB, snap, &res); err != nil {
		return res, err
	}

	step("starting consul-monitor on the seeded database")
	mon, err := startMonitor(ctx, o.monitorBin, historyDB, agent.Addr(), work)
	if err != nil {
		return res, err
	}
	defer mon.stop()
	if err := mon.waitInstances(ctx, res.Instances); err != nil {
		return res, err
	}

	step("(e) /api/services under %d clients, /api/history one at a time", o.clients)
	if err := measureAPI(ctx, o, mon, &res); err != nil {
		return res, err
	}
	if err := measureServicesShape(ctx, mon, &res); err != nil {
		return res, err
	}
	step("(g) change-to-API latency over %d flips", o.flips)
	if err := measureChanges(ctx, o, gen, mon, &res); err != nil {
		return res, err
	}
	rss, err := peakRSS(mon.cmd.Process.Pid)
	if err != nil {
		return res, err
	}
	res.PeakRSSMB = rss
	return res, nil
}

// measureCycle times (a) the plain client's read of every check and (b)
// the watcher's cycle on a health change: the same read through
// internal/consul, then the diff and write through internal/store.
func measureCycle(ctx context.Context, o options, client *api.Client, cc *consul.Client, gen *loadgen.Generator, dbPath string, res *result) error {
	st, err := store.Open(ctx, dbPath)
	if err != nil {
		return err
	}
	defer st.Close()
	instances, err := cc.Instances(ctx)
	if err != nil {
		return err
	}
	checks, index, err := cc.Checks(ctx, consul.Blocking{})
	if err != nil {
		return err
	}
	// The first write stores everything, as the watcher's first does.
	if _, err := st.Record(ctx, time.Now(), health.Snapshot{Instances: instances, Checks: checks}); err != nil {
		return err
	}
	// Each timed cycle carries a change, as the watcher's does when the
	// health watch answers: a check is flipped in Consul (not timed), then
	// the blocking read it releases, the diff and the write are timed. A
	// cycle that did not store the flipped status is an error, not a figure.
	// Floor reads and cycles alternate, so that a busy machine slows both
	// alike and their ratio stays fair.
	floor := make([]time.Duration, 0, o.runs)
	cycles := make([]time.Duration, 0, o.runs)
	var spans int
	for range o.runs {
		started := time.Now()
		if _, _, err := client.Health().State(api.HealthAny, (&api.QueryOptions{AllowStale: true}).WithContext(ctx)); err != nil {
			return err
		}
		floor = append(floor, time.Since(started))

		changed, err := gen.FlipRandom(ctx, 1)
		if err != nil {
			return err
		}
		started = time.Now()
		checks, next, err := cc.Checks(ctx, consul.Blocking{Index: index, Wait: 10 * time.Second})
		if err != nil {
			return err
		}
		w, err := st.Apply(ctx, time.Now(), store.Changes{Checks: checks})
		if err != nil {
			return err
		}
		cycles = append(cycles, time.Since(started))
		index = next
		if c := changed[0]; w.Spans == 0 || storedStatus(st, c) != health.ParseCheckStatus(c.Status) {
			return fmt.Errorf("(b) a timed cycle did not store the flip of %s on %s to %s (%d spans written)", c.CheckID, c.Node, c.Status, w.Spans)
		}
		spans += w.Spans
	}
	res.FloorMedianMs, res.FloorP90Ms = ms(percentile(floor, 50)), ms(percentile(floor, 90))
	res.CycleMedianMs, res.CycleP90Ms = ms(percentile(cycles, 50)), ms(percentile(cycles, 90))
	res.CycleRatio = res.CycleMedianMs / res.FloorMedianMs
	res.CycleRuns, res.CycleSpans = len(cycles), spans

	// Untimed from here: what a cycle writes, with and without a change.
	cycle := func() (store.Written, error) {
		checks, _, err := cc.Checks(ctx, consul.Blocking{})
		if err != nil {
			return store.Written{}, err
		}
		return st.Apply(ctx, time.Now(), store.Changes{Checks: checks})
	}

	// (c) what one cycle writes: rows, and bytes into the write-ahead log.
	written := func() (store.Written, int64, error) {
		if err := st.Checkpoint(ctx); err != nil {
			return store.Written{}, 0, err
		}
		w, err := cycle()
		if err != nil {
			return w, 0, err
		}
		info, err := os.Stat(dbPath + "-wal")
		if err != nil {
			return w, 0, err
		}
		return w, info.Size(), nil
	}
	w, bytes, err := written()
	if err != nil {
		return err
	}
	res.NoChangeRows, res.NoChangeSpanRows, res.NoChangeBytes = w.Total(), w.Spans, bytes
	onePct := max(1, res.Checks/100)
	if _, err := gen.FlipRandom(ctx, onePct); err != nil {
		return err
	}
	w, bytes, err = written()
	if err != nil {
		return err
	}
	res.OnePctChecks, res.OnePctRows, res.OnePctSpanRows, res.OnePctBytes = onePct, w.Total(), w.Spans, bytes
	return nil
}

// seedDay writes 24 hours of polls, five minutes apart, ending now, through
// the store's own write path with an injected clock, 1% of checks flipping
// every hour; it measures (d) what a span costs on disk, and how long a
// day's retention takes at this size.
func seedDay(ctx context.Context, dbPath string, snap health.Snapshot, res *result) error {
	st, err := store.Open(ctx, dbPath)
	if err != nil {
		return err
	}
	defer st.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	checks := slices.Clone(snap.Checks)
	const polls = 2 * 24 * 12 // two days, so that retention has a day to delete
	perPoll := float64(len(checks)) / 100 / 12
	var owed float64
	end := time.Now()
	var spans int
	var sizeAfterFirst int64
	for i := range polls {
		at := end.Add(-time.Duration(polls-1-i) * 5 * time.Minute)
		owed += perPoll
		for ; owed >= 1; owed-- {
			c := &checks[rng.IntN(len(checks))]
			if c.Status == health.Passing {
				c.Status = []health.Status{health.Warning, health.Critical}[rng.IntN(2)]
			} else {
				c.Status = health.Passing
			}
		}
		w, err := st.Record(ctx, at, health.Snapshot{Instances: snap.Instances, Checks: slices.Clone(checks)})
		if err != nil {
			return err
		}
		if i == 0 {
			if err := st.Checkpoint(ctx); err != nil {
				return err
			}
			sizeAfterFirst = fileSize(dbPath)
			continue
		}
		spans += w.Spans
	}
	if err := st.Checkpoint(ctx); err != nil {
		return err
	}
	res.BytesPerSpan = float64(fileSize(dbPath)-sizeAfterFirst) / float64(spans)
	spansPerDay := float64(len(checks)) / 100 * 24
	res.GrowthMBPerDay = res.BytesPerSpan * spansPerDay / 1e6

	pruned, err := st.Prune(ctx, end.Add(-24*time.Hour))
	if err != nil {
		return err
	}
	res.PruneRows, res.PruneBatches, res.PruneLongestBatchMs = pruned.Rows, pruned.Batches, ms(pruned.LongestBatch)
	return nil
}

func fileSize(path string) int64 {
	info, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return info.Size()
}

type monitorProcess struct {
	cmd  *exec.Cmd
	addr string
}

func startMonitor(ctx context.Context, bin, dbPath, consulAddr, work string) (*monitorProcess, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	logFile, err := os.Create(filepath.Join(work, "monitor.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--listen", addr, "--db", dbPath, "--consul-addr", consulAddr, "--log-format", "json")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &monitorProcess{cmd: cmd, addr: addr}, nil
}

func (m *monitorProcess) stop() {
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
}

type servicesBody struct {
	Services []struct {
		ID     string       `json:"id"`
		Checks []checkState `json:"checks"`
	} `json:"services"`
	Nodes map[string]struct {
		Checks []checkState `json:"checks"`
	} `json:"nodes"`
}

type checkState struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

func (m *monitorProcess) services(ctx context.Context) (servicesBody, error) {
	var body servicesBody
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+m.addr+"/api/services", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return body, err
	}
	defer resp.Body.Close()
	return body, json.NewDecoder(resp.Body).Decode(&body)
}

func (m *monitorProcess) waitInstances(ctx context.Context, want int) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		body, err := m.services(ctx)
		if err == nil && len(body.Services) >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("consul-monitor did not list %d instances: %v", want, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// timedGet fetches url and returns how long it took and the body's size.
func timedGet(ctx context.Context, url string) (time.Duration, int, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	started := time.Now()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return 0, 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return time.Since(started), int(n), err
}

func measureAPI(ctx context.Context, o options, m *monitorProcess, res *result) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var latencies []time.Duration
	var firstErr error
	jobs := make(chan struct{})
	var wg sync.WaitGroup
	for range o.clients {
		wg.Go(func() {
			for range jobs {
				d, n, err := timedGet(ctx, "http://"+m.addr+"/api/services")
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				latencies = append(latencies, d)
				res.ServicesBytes = n
				mu.Unlock()
			}
		})
	}
	for range o.requests {
		select {
		case jobs <- struct{}{}:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	res.ServicesReqs = len(latencies)
	res.ServicesP50Ms, res.ServicesP99Ms = ms(percentile(latencies, 50)), ms(percentile(latencies, 99))

	var history []time.Duration
	for range o.historyRequests {
		d, n, err := timedGet(ctx, "http://"+m.addr+"/api/history?granularity=5")
		if err != nil {
			return err
		}
		history = append(history, d)
		res.HistoryBytes = n
	}
	res.HistoryReqs = len(history)
	res.HistoryP50Ms, res.HistoryP99Ms = ms(percentile(history, 50)), ms(percentile(history, 99))
	return nil
}

// measureChanges flips one check at a time and times how long until
// /api/services shows its new status.
func measureChanges(ctx context.Context, o options, gen *loadgen.Generator, m *monitorProcess, res *result) error {
	var latencies []time.Duration
	for range o.flips {
		changed, err := gen.FlipRandom(ctx, 1)
		if err != nil {
			return err
		}
		c := changed[0]
		flipped := time.Now()
		deadline := flipped.Add(30 * time.Second)
		for {
			body, err := m.services(ctx)
			if err != nil {
				return err
			}
			if hasCheckStatus(body, c) {
				break
			}
			if time.Now().After(deadline) {
				return errors.New("a flipped check did not reach the API within 30 s")
			}
			time.Sleep(20 * time.Millisecond)
		}
		latencies = append(latencies, time.Since(flipped))
	}
	res.ChangeFlips = len(latencies)
	res.ChangeMedianMs, res.ChangeMaxMs = ms(percentile(latencies, 50)), ms(slices.Max(latencies))
	return nil
}

// storedStatus is the status the store holds for c now, or "" if it holds
// no such check.
func storedStatus(st *store.Store, c loadgen.Check) health.Status {
	current := st.Published()
	for _, ch := range current.NodeChecks[c.Node] {
		if ch.CheckID == c.CheckID {
			return ch.Status
		}
	}
	for _, inst := range current.Instances {
		if inst.Node != c.Node {
			continue
		}
		for _, ch := range inst.Checks {
			if ch.CheckID == c.CheckID {
				return ch.Status
			}
		}
	}
	return ""
}

func hasCheckStatus(body servicesBody, c loadgen.Check) bool {
	for _, ch := range body.Nodes[c.Node].Checks {
		if ch.ID == c.CheckID {
			return ch.Status == c.Status
		}
	}
	prefix := health.InstanceID(c.Node, "x")
	prefix = prefix[:len(prefix)-1]
	for _, s := range body.Services {
		if !strings.HasPrefix(s.ID, prefix) {
			continue
		}
		for _, ch := range s.Checks {
			if ch.ID == c.CheckID {
				return ch.Status == c.Status
			}
		}
	}
	return false
}

// measureServicesShape gives /api/services' size, plain and gzipped, as it
// is (each node's checks once, under nodes) and as it was before node
// checks moved there: copied into every instance on the node, with no
// nodes map and no output_truncated.
func measureServicesShape(ctx context.Context, m *monitorProcess, res *result) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+m.addr+"/api/services", nil)
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	plain, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	var body map[string]any
	if err := json.Unmarshal(plain, &body); err != nil {
		return err
	}
	nodes, _ := body["nodes"].(map[string]any)
	delete(body, "nodes")
	services, _ := body["services"].([]any)
	for _, s := range services {
		svc := s.(map[string]any)
		checks, _ := svc["checks"].([]any)
		if n, ok := nodes[svc["node"].(string)].(map[string]any); ok {
			nodeChecks, _ := n["checks"].([]any)
			checks = append(checks, nodeChecks...)
		}
		for _, c := range checks {
			delete(c.(map[string]any), "output_truncated")
		}
		svc["checks"] = checks
	}
	copied, err := json.Marshal(body)
	if err != nil {
		return err
	}
	res.ServicesPlainBytes, res.ServicesGzipBytes = len(plain)+1, gzipLen(plain)
	res.CopiedPlainBytes, res.CopiedGzipBytes = len(copied)+1, gzipLen(copied)
	return nil
}

func gzipLen(b []byte) int {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Len()
}

// peakRSS reads the process's high-water resident set size.
func peakRSS(pid int) (float64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return float64(kb) / 1024, err
		}
	}
	return 0, errors.New("no VmHWM in /proc status")
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p/100))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func printTable(w io.Writer, r result) {
	check := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	fmt.Fprintf(w, "consul-monitor benchmark: %d nodes, %d instances, %d checks\n\n", r.Nodes, r.Instances, r.Checks)
	fmt.Fprintf(w, "%-4s %-58s %-28s %s\n", "", "measure", "figure", "target")
	row := func(id, what, figure, target string) {
		fmt.Fprintf(w, "%-4s %-58s %-28s %s\n", id, what, figure, target)
	}
	row("a", "plain api client: GET /v1/health/state/any", fmt.Sprintf("%.1f ms median, %.1f p90", r.FloorMedianMs, r.FloorP90Ms), "(floor)")
	row("b", "watcher cycle on a change: fetch + diff + store", fmt.Sprintf("%.1f ms median, %.1f p90", r.CycleMedianMs, r.CycleP90Ms), "")
	row("b", fmt.Sprintf("changes those %d cycles stored", r.CycleRuns), fmt.Sprintf("%d span rows", r.CycleSpans), ">= 1 a cycle "+check(r.CycleRuns > 0 && r.CycleSpans >= r.CycleRuns))
	row("b", "cycle / floor", fmt.Sprintf("%.2f", r.CycleRatio), "<= 1.5 "+check(r.CycleRatio <= 1.5))
	row("c", "written per cycle, no change", fmt.Sprintf("%d span rows, %d rows, %d B", r.NoChangeSpanRows, r.NoChangeRows, r.NoChangeBytes), "no span rows "+check(r.NoChangeSpanRows == 0))
	row("c", fmt.Sprintf("written per cycle, 1%% changed (%d checks)", r.OnePctChecks), fmt.Sprintf("%d span rows, %d rows, %d B", r.OnePctSpanRows, r.OnePctRows, r.OnePctBytes), "")
	row("d", "projected growth, 1% of checks flipping hourly", fmt.Sprintf("%.2f MB/day (%.0f B/span)", r.GrowthMBPerDay, r.BytesPerSpan), "<= 50 MB/day "+check(r.GrowthMBPerDay <= 50))
	row("e", fmt.Sprintf("GET /api/services, %d requests", r.ServicesReqs), fmt.Sprintf("p50 %.1f ms, p99 %.1f ms", r.ServicesP50Ms, r.ServicesP99Ms), "p99 <= 100 ms "+check(r.ServicesP99Ms <= 100))
	row("e", fmt.Sprintf("GET /api/history?granularity=5, %d requests", r.HistoryReqs), fmt.Sprintf("p50 %.1f ms, p99 %.1f ms", r.HistoryP50Ms, r.HistoryP99Ms), "p99 <= 300 ms "+check(r.HistoryP99Ms <= 300))
	row("f", "consul-monitor peak RSS", fmt.Sprintf("%.1f MB", r.PeakRSSMB), "<= 150 MB "+check(r.PeakRSSMB <= 150))
	row("g", fmt.Sprintf("change to API, %d flips", r.ChangeFlips), fmt.Sprintf("median %.0f ms, max %.0f ms", r.ChangeMedianMs, r.ChangeMaxMs), "max <= 2000 ms "+check(r.ChangeMaxMs <= 2000))
	row("ret", "retention: a day deleted in batches", fmt.Sprintf("%d rows, %d batches, longest %.1f ms", r.PruneRows, r.PruneBatches, r.PruneLongestBatchMs), "<= 100 ms a batch "+check(r.PruneLongestBatchMs <= 100))
	fmt.Fprintf(w, "\nresponse sizes: /api/services %d B, /api/history %d B (as sent, gzip if the server compresses)\n", r.ServicesBytes, r.HistoryBytes)
	fmt.Fprintf(w, "/api/services at %d instances: %d B plain, %d B gzip with each node's checks once (nodes map); %d B plain, %d B gzip with them copied into every instance, as before\n",
		r.Instances, r.ServicesPlainBytes, r.ServicesGzipBytes, r.CopiedPlainBytes, r.CopiedGzipBytes)
}
