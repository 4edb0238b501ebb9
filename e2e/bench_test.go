package e2e

import (
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/hashicorp/consul/api"

	"github.com/consul-monitor/consul-monitor/internal/consultest"
	"github.com/consul-monitor/consul-monitor/internal/health"
)

// registerMany registers count instances, each its own service with one
// check, spread over nodes of ten; every tenth is critical, every
// twenty-fifth warning.
func registerMany(tb testing.TB, c *api.Client, count int) {
	tb.Helper()
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				status := api.HealthPassing
				switch {
				case i%10 == 0:
					status = api.HealthCritical
				case i%25 == 0:
					status = api.HealthWarning
				}
				node := fmt.Sprintf("bench-node-%03d", i/10)
				id := fmt.Sprintf("svc-%04d", i)
				consultest.RegisterExternal(tb, c, node, fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256),
					&api.AgentService{ID: id, Service: id, Port: 8000 + i%1000, Tags: []string{"bench", fmt.Sprintf("team-%d", i%7)}},
					&api.HealthCheck{Node: node, CheckID: id + "-http", Name: "http", ServiceID: id, Status: status, Output: "HTTP GET /health"})
			}
		})
	}
	for i := range count {
		work <- i
	}
	close(work)
	wg.Wait()
}

// BenchmarkDashboard measures the page with 1,000 instances (1,000 rows)
// and 24 hours of history: the time from navigation until it has drawn and
// answers input, and the JS heap over 200 refreshes.
func BenchmarkDashboard(b *testing.B) {
	const instances = 1000
	agent := consultest.Start(b)
	c := agent.Client()
	registerMany(b, c, instances)
	dbPath := filepath.Join(b.TempDir(), "history.db")
	seedHistory(b, agent, dbPath, func(i int, check health.Check) health.Status {
		// A few short outages spread over the day.
		if len(check.ServiceID) < 2 {
			return check.Status
		}
		if n, _ := strconv.Atoi(check.ServiceID[len(check.ServiceID)-2:]); (i+n)%97 == 0 {
			return health.Critical
		}
		return check.Status
	})
	m := startMonitor(b, agent.Addr(), dbPath)
	m.waitAPI(b, "all instances polled", func(s apiServices) error {
		if len(s.Services) < instances {
			return fmt.Errorf("%d instances", len(s.Services))
		}
		return nil
	})
	br := newBrowser(b, 1280, 900)

	b.Run("render-1000", func(b *testing.B) {
		var total float64
		for b.Loop() {
			br.run(b, chromedp.Navigate("about:blank"), chromedp.Navigate(m.url("/")))
			br.waitJS(b, "interactive", `Boolean(document.documentElement.dataset.interactiveAt)`)
			var ms float64
			br.eval(b, `Number(document.documentElement.dataset.interactiveAt)`, &ms)
			total += ms
		}
		var rows, charts int
		br.eval(b, `document.querySelectorAll('#services tbody.group').length`, &rows)
		br.eval(b, `Object.keys(Chart.instances).length`, &charts)
		if rows != instances+1 { // and Consul's own service
			b.Fatalf("%d rows", rows)
		}
		b.ReportMetric(total/float64(b.N), "ms-to-interactive")
		b.ReportMetric(float64(charts), "charts-drawn")
	})

	b.Run("200-refreshes-1000", func(b *testing.B) {
		br.open(b, m)
		// Each refresh carries a change: a TTL check flips between passing
		// and critical (health only, so the catalog is not read again),
		// and the page must show it, without error.
		if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "flip", Name: "flip", Port: 7000,
			Check: &api.AgentServiceCheck{CheckID: "flip-ttl", TTL: "30m", Status: api.HealthPassing}}); err != nil {
			b.Fatal(err)
		}
		flip := func(i int) {
			status := api.HealthCritical
			if i%2 == 1 {
				status = api.HealthPassing
			}
			if err := c.Agent().UpdateTTL("flip-ttl", fmt.Sprintf("round %d", i), status); err != nil {
				b.Fatal(err)
			}
			m.waitAPI(b, "flip "+status, func(s apiServices) error {
				if got := s.status(consultest.NodeName + "/flip"); got != status {
					return fmt.Errorf("flip is %s", got)
				}
				return nil
			})
			br.clickRefresh(b)
			var shown struct{ Error, Status string }
			br.eval(b, `(() => { const err = document.getElementById('api-error');
				return {Error: getComputedStyle(err).display === 'none' ? '' : err.textContent,
					Status: document.querySelector('tbody[data-service="flip"] .status-text').textContent}; })()`, &shown)
			if shown.Error != "" || shown.Status != status {
				b.Fatalf("refresh %d: page shows %+v, want %s", i, shown, status)
			}
		}
		for i := range 20 { // warm-up
			flip(i)
		}
		var before, after100, after200 float64
		var elapsed time.Duration
		for b.Loop() {
			before = br.heapAfterGC(b)
			start := time.Now()
			for i := range 200 {
				flip(20 + i)
				if i == 99 {
					after100 = br.heapAfterGC(b)
				}
			}
			elapsed = time.Since(start)
			after200 = br.heapAfterGC(b)
		}
		b.ReportMetric(before/1e6, "MB-heap-start")
		b.ReportMetric(after100/1e6, "MB-heap-100")
		b.ReportMetric(after200/1e6, "MB-heap-200")
		b.ReportMetric(float64(elapsed.Milliseconds())/200, "ms/refresh+change")
		// Flat: the second hundred refreshes may not grow the heap more
		// than noise; a chart or row set kept per refresh would add tens
		// of megabytes at 1,000 rows.
		if limit := after100*1.05 + 1e6; after200 > limit {
			b.Errorf("JS heap grew from %.1f MB after 100 refreshes to %.1f MB after 200 (limit %.1f MB)", after100/1e6, after200/1e6, limit/1e6)
		}
	})
}
