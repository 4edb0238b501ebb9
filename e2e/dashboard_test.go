package e2e

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/hashicorp/consul/api"

	"github.com/consul-monitor/consul-monitor/internal/consultest"
	"github.com/consul-monitor/consul-monitor/internal/health"
)

const evilName = `<img src=x onerror=alert(1)>`

// registerSample registers a small but varied cluster: agent services with
// TTL checks, the same service on three nodes, a critical instance, one in
// maintenance, and one whose name and URL are hostile.
func registerSample(t testing.TB, c *api.Client) {
	t.Helper()
	for _, reg := range []*api.AgentServiceRegistration{
		{ID: "web-1", Name: "web", Port: 8443, Tags: []string{"https", "frontend"},
			Check: &api.AgentServiceCheck{CheckID: "web-1-ttl", Name: "web alive", TTL: "30m", Status: api.HealthPassing}},
		{ID: "evil", Name: evilName, Port: 80, Tags: []string{"<b>bold</b>"}, Meta: map[string]string{"url": "javascript:alert(1)"},
			Check: &api.AgentServiceCheck{CheckID: "evil-ttl", Name: "<script>alert(2)</script>", TTL: "30m", Status: api.HealthWarning}},
	} {
		if err := c.Agent().ServiceRegister(reg); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 3; i++ {
		status, output := api.HealthPassing, "HTTP GET /health: 200 OK"
		if i == 2 {
			status, output = api.HealthCritical, "dial tcp 10.0.0.2:9000: connection refused"
		}
		node := fmt.Sprintf("node-%d", i)
		consultest.RegisterExternal(t, c, node, fmt.Sprintf("10.0.0.%d", i),
			&api.AgentService{ID: fmt.Sprintf("api-%d", i), Service: "api", Port: 9000, Tags: []string{"api", "v2"}},
			&api.HealthCheck{Node: node, CheckID: fmt.Sprintf("api-%d-http", i), Name: "http", ServiceID: fmt.Sprintf("api-%d", i), Status: status, Output: output})
	}
	consultest.RegisterExternal(t, c, "node-4", "10.0.0.4",
		&api.AgentService{ID: "db-1", Service: "db", Address: "10.0.0.40", Port: 5432, Meta: map[string]string{"url": "https://db-admin.example/"}},
		&api.HealthCheck{Node: "node-4", CheckID: "db-1-tcp", Name: "tcp", ServiceID: "db-1", Status: api.HealthPassing},
		// A node check with an output over --check-output-max (4096 B).
		&api.HealthCheck{Node: "node-4", CheckID: "node-health", Name: "node health", Status: api.HealthPassing, Output: strings.Repeat("disk ok ", 700)})
	consultest.RegisterExternal(t, c, "node-5", "10.0.0.5",
		&api.AgentService{ID: "cache-1", Service: "cache", Port: 6379},
		&api.HealthCheck{Node: "node-5", CheckID: "_service_maintenance:cache-1", Name: "Service Maintenance Mode", ServiceID: "cache-1", Status: api.HealthCritical, Output: "Planned upgrade"})
}

// sampleHistory gives the seeded day some events to draw.
func sampleHistory(i int, c health.Check) health.Status {
	switch {
	case c.CheckID == "web-1-ttl" && i >= 100 && i < 106:
		return health.Warning
	case c.CheckID == "web-1-ttl" && i >= 200 && i < 203:
		return health.Critical
	case c.CheckID == "api-2-http" && i < 264:
		if i >= 50 && i < 53 {
			return health.Warning
		}
		return health.Passing
	}
	return c.Status
}

func TestDashboard(t *testing.T) {
	b := newBrowser(t, 1280, 900)
	agent := consultest.Start(t)
	c := agent.Client()
	registerSample(t, c)
	dbPath := filepath.Join(t.TempDir(), "history.db")
	consultest.WaitFor(t, 10*time.Second, "sample registered", func() error {
		nodes, _, err := c.Catalog().Nodes(nil)
		if err != nil || len(nodes) < 6 {
			return fmt.Errorf("%d nodes, %v", len(nodes), err)
		}
		return nil
	})
	seedHistory(t, agent, dbPath, sampleHistory)
	m := startMonitor(t, agent.Addr(), dbPath)
	m.waitAPI(t, "first poll", func(s apiServices) error {
		if s.LastPoll == nil || len(s.Services) != 8 {
			return fmt.Errorf("%d services", len(s.Services))
		}
		return nil
	})
	b.open(t, m)

	t.Run("loads with no errors and no request to another origin; rows match the API", func(t *testing.T) {
		api := m.services(t)
		wantGroups := map[string]int{}
		for _, s := range api.Services {
			wantGroups[s.Name]++
		}
		var rows map[string]int
		b.eval(t, `Object.fromEntries([...document.querySelectorAll('#services tbody.group')].map(g =>
			[g.querySelector('.name').textContent, g.querySelector('.instances') ? parseInt(g.querySelector('.instances').textContent) : 1]))`, &rows)
		if fmt.Sprint(rows) != fmt.Sprint(wantGroups) {
			t.Errorf("rows %v, API groups %v", rows, wantGroups)
		}
		var statuses map[string]string
		b.eval(t, `Object.fromEntries([...document.querySelectorAll('#services tbody.group')].map(g =>
			[g.dataset.service, g.querySelector('.service-row .status-text').textContent]))`, &statuses)
		want := map[string]string{"api": "critical", "web": "passing", "db": "passing", "cache": "maintenance", "consul": "passing", evilName: "warning"}
		if fmt.Sprint(statuses) != fmt.Sprint(want) {
			t.Errorf("statuses %v, want %v", statuses, want)
		}
		var counts map[string]string
		b.eval(t, `Object.fromEntries([...document.querySelectorAll('#status-counts .count')].map(c => [c.dataset.status, c.querySelector('.count-number').textContent]))`, &counts)
		if fmt.Sprint(counts) != fmt.Sprint(map[string]string{"critical": "1", "warning": "1", "maintenance": "1", "unknown": "0", "passing": "5"}) {
			t.Errorf("status counts %v", counts)
		}
		errs, requests, _ := b.recorded()
		if len(errs) > 0 {
			t.Errorf("console errors: %v", errs)
		}
		for _, r := range requests {
			if u, err := url.Parse(r); err != nil || u.Host != m.addr {
				t.Errorf("request to another origin: %s", r)
			}
		}
		if len(requests) < 7 {
			t.Errorf("only %d requests recorded: %v", len(requests), requests)
		}
	})

	t.Run("untrusted names, tags, checks and URLs stay text", func(t *testing.T) {
		var got struct {
			Name    string
			Tag     string
			Links   int
			Imgs    int
			Scripts int
			BadHref int
		}
		b.run(t, chromedp.Click(`tbody[data-service="`+evilName+`"] .expander`, chromedp.ByQuery))
		b.waitJS(t, "evil expanded", `document.querySelectorAll('tr.instance-row').length === 1`)
		b.eval(t, `(() => {
			const g = document.querySelector('tbody.group[data-service="`+evilName+`"]');
			return {
				Name: g.querySelector('.name').textContent,
				Tag: g.querySelector('.tag').textContent,
				Links: g.querySelectorAll('a').length,
				Imgs: document.querySelectorAll('#services img, #services b').length,
				Scripts: document.querySelectorAll('#services script').length,
				BadHref: [...document.querySelectorAll('a')].filter(a => !/^https?:/.test(a.href)).length,
			};
		})()`, &got)
		if got.Name != evilName || got.Tag != "<b>bold</b>" || got.Links != 0 || got.Imgs != 0 || got.Scripts != 0 || got.BadHref != 0 {
			t.Errorf("hostile data: %+v", got)
		}
		var checkName string
		b.eval(t, `document.querySelector('tr.instance-row .check-name').textContent`, &checkName)
		if checkName != "<script>alert(2)</script>" {
			t.Errorf("check name %q", checkName)
		}
		b.run(t, chromedp.Click(`tbody[data-service="`+evilName+`"] .expander`, chromedp.ByQuery))
		if _, _, dialogs := b.recorded(); len(dialogs) > 0 {
			t.Errorf("script ran: dialogs %v", dialogs)
		}
	})

	t.Run("links open in a new tab without opener", func(t *testing.T) {
		var links []map[string]string
		b.eval(t, `[...document.querySelectorAll('#services a')].map(a => ({href: a.href, target: a.target, rel: a.rel}))`, &links)
		if len(links) < 3 {
			t.Fatalf("links %v", links)
		}
		for _, l := range links {
			if l["target"] != "_blank" || !strings.Contains(l["rel"], "noopener") {
				t.Errorf("link %v", l)
			}
		}
		var dbURL string
		b.eval(t, `document.querySelector('tbody[data-service="db"] a').href`, &dbURL)
		if dbURL != "https://db-admin.example/" {
			t.Errorf("db link %q", dbURL)
		}
	})

	t.Run("an instance shows its node's checks, sent once per node, and a cut output says so", func(t *testing.T) {
		api := m.services(t)
		if nc := api.Nodes["node-4"].Checks; len(nc) != 1 || nc[0].ID != "node-health" || !nc[0].NodeCheck || !nc[0].OutputTruncated || len(nc[0].Output) != 4096 {
			t.Errorf("nodes[node-4]: %+v", api.Nodes["node-4"])
		}
		b.run(t, chromedp.Click(`tbody[data-service="db"] .expander`, chromedp.ByQuery))
		b.waitJS(t, "db instance", `document.querySelectorAll('tbody[data-service="db"] tr.instance-row').length === 1`)
		var shown struct {
			Summary string
			Checks  []string
		}
		b.eval(t, `(() => {
			const row = document.querySelector('tr.instance-row[data-instance="node-4/db-1"]');
			return { summary: row.querySelector('summary').textContent,
				checks: [...row.querySelectorAll('.checks li')].map(li => li.textContent.replace(/disk ok .*disk ok/s, 'OUTPUT')) };
		})()`, &shown)
		if shown.Summary != "2 checks" || len(shown.Checks) != 2 || !strings.Contains(shown.Checks[0], "tcp") ||
			!strings.Contains(shown.Checks[1], "node health (node check)") || !strings.Contains(shown.Checks[1], "(output truncated)") {
			t.Errorf("node-4/db-1 shows %+v", shown)
		}
		b.run(t, chromedp.Click(`tbody[data-service="db"] .expander`, chromedp.ByQuery))
	})

	t.Run("expanding a service shows its instances with node, URL and check output", func(t *testing.T) {
		b.run(t, chromedp.Click(`tbody[data-service="api"] .expander`, chromedp.ByQuery))
		b.waitJS(t, "api instances", `document.querySelectorAll('tbody[data-service="api"] tr.instance-row').length === 3`)
		var nodes []string
		b.eval(t, `[...document.querySelectorAll('tbody[data-service="api"] tr.instance-row .node')].map(n => n.textContent)`, &nodes)
		if !slices.Equal(nodes, []string{"node-1", "node-2", "node-3"}) {
			t.Errorf("nodes %v", nodes)
		}
		var output string
		b.eval(t, `document.querySelector('tr.instance-row[data-instance="node-2/api-2"] pre.output').textContent`, &output)
		if output != "dial tcp 10.0.0.2:9000: connection refused" {
			t.Errorf("check output %q", output)
		}
		var expanded string
		b.eval(t, `document.querySelector('tbody[data-service="api"] .expander').getAttribute('aria-expanded')`, &expanded)
		if expanded != "true" {
			t.Errorf("aria-expanded %q", expanded)
		}
		b.waitJS(t, "instance charts drawn", `document.querySelectorAll('tr.instance-row canvas').length === 3 &&
			[...document.querySelectorAll('tr.instance-row canvas')].every(c => Chart.getChart(c))`)
		b.run(t, chromedp.Click(`tbody[data-service="api"] .expander`, chromedp.ByQuery))
		b.waitJS(t, "api collapsed", `document.querySelectorAll('tr.instance-row').length === 0`)
	})

	t.Run("filter and problems first", func(t *testing.T) {
		var order []string
		b.eval(t, `[...document.querySelectorAll('#services tbody.group')].map(g => g.dataset.service)`, &order)
		if len(order) != 6 || order[0] != "api" || order[1] != evilName || order[2] != "cache" {
			t.Errorf("problems-first order %v", order)
		}
		for _, tc := range []struct {
			query string
			want  []string
		}{{"node-3", []string{"api"}}, {"frontend", []string{"web"}}, {"DB", []string{"db"}}, {"nothing-matches", nil}, {"", order}} {
			b.setField(t, "filter", tc.query, "input")
			quoted := make([]string, len(tc.want))
			for i, w := range tc.want {
				quoted[i] = strconv.Quote(w)
			}
			b.waitJS(t, "filter "+tc.query, `JSON.stringify([...document.querySelectorAll('#services tbody.group')].map(g => g.dataset.service)) === JSON.stringify([`+strings.Join(quoted, ",")+`])`)
		}
	})

	t.Run("granularity sets the number of bars and persists", func(t *testing.T) {
		for _, tc := range []struct {
			value    string
			min, max int
		}{{"5", 288, 289}, {"60", 24, 25}} {
			b.setField(t, "granularity", tc.value, "change")
			b.waitJS(t, "bars for "+tc.value, fmt.Sprintf(`(() => {
				const charts = [...document.querySelectorAll('#services canvas')].map(c => Chart.getChart(c)).filter(Boolean);
				return charts.length >= 6 && charts.every(ch => ch.data.labels.length >= %d && ch.data.labels.length <= %d && ch.data.datasets[0].data.length === ch.data.labels.length);
			})()`, tc.min, tc.max))
		}
		// Seeded history shows up: web-1 was warning for 30 minutes.
		var warning float64
		b.eval(t, `Chart.getChart(document.querySelector('canvas[data-chart="group:web"]')).data.datasets[1].data.reduce((a, b) => a + b, 0)`, &warning)
		if warning < 40 || warning > 60 {
			t.Errorf("web's hourly warning percentages add up to %v, want 50 (30 minutes)", warning)
		}
		// The tooltip of a bar names its window in local time and its shares.
		var tooltip struct{ Title, Label string }
		b.eval(t, `(() => {
			const ch = Chart.getChart(document.querySelector('canvas[data-chart="group:web"]'));
			const cb = ch.options.plugins.tooltip.callbacks;
			const i = ch.data.labels.length - 2;
			return {Title: cb.title([{dataIndex: i}]), Label: cb.label({datasetIndex: 0, dataIndex: i})};
		})()`, &tooltip)
		if !strings.Contains(tooltip.Title, " – ") || !strings.HasPrefix(tooltip.Label, "passing ") || !strings.Contains(tooltip.Label, "%") {
			t.Errorf("tooltip %+v", tooltip)
		}
		b.reload(t)
		var selected string
		b.eval(t, `document.getElementById('granularity').value`, &selected)
		if selected != "60" {
			t.Errorf("granularity after reload %q", selected)
		}
	})

	t.Run("a status change in Consul appears after the next refresh", func(t *testing.T) {
		if err := c.Agent().UpdateTTL("web-1-ttl", "disk full", api.HealthCritical); err != nil {
			t.Fatal(err)
		}
		m.waitAPI(t, "web-1 critical in the API", func(apiServices) error {
			if s := m.statusOf(t, consultest.NodeName+"/web-1"); s != "critical" {
				return fmt.Errorf("web-1 is %s", s)
			}
			return nil
		})
		b.clickRefresh(t)
		var status string
		b.eval(t, `document.querySelector('tbody[data-service="web"] .status-text').textContent`, &status)
		if status != "critical" {
			t.Errorf("web shows %q after refresh", status)
		}
	})

	t.Run("auto-refresh persists and its interval sets the cadence", func(t *testing.T) {
		// Test-only: intervals of 30 s and 600 s become 0.3 s and 6 s.
		b.run(t, chromedp.Evaluate(`localStorage.setItem('consul-monitor.test.interval-scale', '0.01')`, nil))
		b.reload(t)
		var disabled bool
		b.eval(t, `document.getElementById('refresh-interval').disabled`, &disabled)
		if !disabled {
			t.Error("the interval select is enabled while auto-refresh is off")
		}
		b.run(t, chromedp.Click("#auto-refresh", chromedp.ByID))
		b.waitJS(t, "switch on", `document.getElementById('auto-refresh').getAttribute('aria-checked') === 'true'`)
		b.reload(t)
		b.waitJS(t, "switch still on after reload", `document.getElementById('auto-refresh').getAttribute('aria-checked') === 'true' && !document.getElementById('refresh-interval').disabled`)

		cadence := func(seconds string) int {
			b.setField(t, "refresh-interval", seconds, "change")
			b.waitJS(t, "interval saved", `document.getElementById('refresh-interval').value === '`+seconds+`'`)
			start := b.refreshes(t)
			time.Sleep(3 * time.Second)
			return b.refreshes(t) - start
		}
		fast := cadence("30")
		slow := cadence("600")
		t.Logf("refreshes in 3 s: %d at 30 s (scaled to 0.3 s), %d at 600 s (scaled to 6 s)", fast, slow)
		if fast < 4 || slow > 1 {
			t.Errorf("cadence does not follow the interval: %d fast, %d slow", fast, slow)
		}
		// Switched off at the shortest interval (0.3 s scaled), the page must
		// stay still for many intervals, not just for less than one.
		cadence("30")
		b.run(t, chromedp.Click("#auto-refresh", chromedp.ByID))
		b.waitJS(t, "switch off", `document.getElementById('auto-refresh').getAttribute('aria-checked') === 'false' && document.getElementById('refresh-interval').disabled`)
		before := b.refreshes(t)
		time.Sleep(3 * time.Second) // ten intervals of 0.3 s
		if after := b.refreshes(t); after != before {
			t.Errorf("%d refreshes in 3 s (ten intervals) after auto-refresh was turned off", after-before)
		}
		b.reload(t)
		before = b.refreshes(t)
		time.Sleep(3 * time.Second)
		if after := b.refreshes(t); after != before {
			t.Errorf("%d refreshes in 3 s after a reload with auto-refresh off", after-before)
		}
		b.run(t, chromedp.Evaluate(`localStorage.removeItem('consul-monitor.test.interval-scale')`, nil))
	})

	t.Run("memory stays flat over 200 refreshes of changing data", func(t *testing.T) {
		// web is open, so each refresh rebuilds its row and its instance's
		// row with the new check output and status.
		b.run(t, chromedp.Click(`tbody[data-service="web"] .expander`, chromedp.ByQuery))
		b.waitJS(t, "web expanded", `document.querySelectorAll('tbody[data-service="web"] tr.instance-row').length === 1`)
		webCheck := consultest.NodeName + "/web-1"
		round := func(i int) {
			// The status changes every round: Consul's agent passes on an
			// output-only change to its servers only every few minutes.
			status := api.HealthWarning
			if i%2 == 1 {
				status = api.HealthPassing
			}
			output := fmt.Sprintf("round %d", i)
			if err := c.Agent().UpdateTTL("web-1-ttl", output, status); err != nil {
				t.Fatal(err)
			}
			m.waitAPI(t, "round "+output+" in the API", func(s apiServices) error {
				if got := s.checkOutput(webCheck, "web-1-ttl"); got != output {
					return fmt.Errorf("web-1-ttl says %q", got)
				}
				return nil
			})
			b.clickRefresh(t)
			var shown struct{ Error, Output, Status string }
			b.eval(t, `(() => {
				const err = document.getElementById('api-error');
				const row = document.querySelector('tbody[data-service="web"] tr.instance-row');
				return {Error: getComputedStyle(err).display === 'none' ? '' : err.textContent,
					Output: row ? row.querySelector('pre.output').textContent : '',
					Status: document.querySelector('tbody[data-service="web"] .service-row .status-text').textContent};
			})()`, &shown)
			if shown.Error != "" || shown.Output != output || shown.Status != status {
				t.Fatalf("refresh %d: page shows %+v, want output %q and status %s", i, shown, output, status)
			}
		}
		for i := range 20 { // warm-up: caches and compiled code settle
			round(i)
		}
		var chartsBefore, nodesBefore, chartsAfter, nodesAfter int
		b.eval(t, `Object.keys(Chart.instances).length`, &chartsBefore)
		b.eval(t, `document.getElementsByTagName('*').length`, &nodesBefore)
		heapBefore := b.heapAfterGC(t)
		var heapMid float64
		for i := range 200 {
			round(20 + i)
			if i == 99 {
				heapMid = b.heapAfterGC(t)
			}
		}
		heapAfter := b.heapAfterGC(t)
		b.eval(t, `Object.keys(Chart.instances).length`, &chartsAfter)
		b.eval(t, `document.getElementsByTagName('*').length`, &nodesAfter)
		t.Logf("JS heap after GC: %.0f KiB before, %.0f KiB after 100 and %.0f KiB after 200 refreshes; %d charts, %d DOM nodes", heapBefore/1024, heapMid/1024, heapAfter/1024, chartsAfter, nodesAfter)
		if chartsAfter != chartsBefore || nodesAfter != nodesBefore {
			t.Errorf("charts %d -> %d, DOM nodes %d -> %d", chartsBefore, chartsAfter, nodesBefore, nodesAfter)
		}
		// Flat: after the first hundred the heap no longer grows (about
		// 60 KiB over the next hundred, where it was measured); keeping one
		// chart, row set or answer per refresh would add megabytes.
		if limit := heapMid*1.03 + 128<<10; heapAfter > limit {
			t.Errorf("JS heap grew from %.0f KiB after 100 refreshes to %.0f KiB after 200 (limit %.0f KiB)", heapMid/1024, heapAfter/1024, limit/1024)
		}
		if limit := heapBefore * 1.25; heapAfter > limit {
			t.Errorf("JS heap grew from %.0f KiB to %.0f KiB over 200 refreshes (limit %.0f KiB)", heapBefore/1024, heapAfter/1024, limit/1024)
		}
		b.run(t, chromedp.Click(`tbody[data-service="web"] .expander`, chromedp.ByQuery))
		b.waitJS(t, "web collapsed", `document.querySelectorAll('tr.instance-row').length === 0`)
	})

	t.Run("every control is reachable by keyboard", func(t *testing.T) {
		var focused []string
		b.run(t, chromedp.Evaluate(`document.activeElement.blur()`, nil))
		// Enough presses to go round the page once, wherever focus starts.
		for range 40 {
			var id string
			b.run(t, chromedp.KeyEvent(kb.Tab), chromedp.Evaluate(`document.activeElement.id || document.activeElement.className || document.activeElement.tagName`, &id))
			focused = append(focused, id)
		}
		for _, want := range []string{"auto-refresh", "granularity", "refresh", "filter", "problems-first", "expander"} {
			if !slices.Contains(focused, want) {
				t.Errorf("%s not reached by Tab: %v", want, focused)
			}
		}
	})

	t.Run("phone width and dark mode", func(t *testing.T) {
		b.run(t,
			emulation.SetDeviceMetricsOverride(390, 844, 2, true),
			emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}),
		)
		var overflow, bg string
		b.eval(t, `String(Math.max(0, document.documentElement.scrollWidth - window.innerWidth))`, &overflow)
		b.eval(t, `getComputedStyle(document.body).backgroundColor`, &bg)
		if overflow != "0" {
			t.Errorf("the page is %s px wider than a phone", overflow)
		}
		if bg != "rgb(13, 17, 23)" {
			t.Errorf("dark mode background %s", bg)
		}
		screenshot(t, b, "dashboard-phone-dark.png")
		b.run(t, emulation.ClearDeviceMetricsOverride(), emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "light"}}))
		// The picture in the README: 15-minute windows, one service opened.
		b.setField(t, "granularity", "15", "change")
		b.run(t, chromedp.Click(`tbody[data-service="api"] .expander`, chromedp.ByQuery))
		b.waitJS(t, "15-minute bars", `(() => { const ch = Chart.getChart(document.querySelector('canvas[data-chart="group:api"]')); return ch && ch.data.labels.length >= 96; })()`)
		b.waitJS(t, "instance charts", `[...document.querySelectorAll('tr.instance-row canvas')].every(c => Chart.getChart(c))`)
		screenshot(t, b, "dashboard.png")
	})

	t.Run("consul stopped: banner shows and rows stay", func(t *testing.T) {
		var rowsBefore int
		b.eval(t, `document.querySelectorAll('#services tbody.group').length`, &rowsBefore)
		agent.Stop()
		var down apiServices
		m.waitAPI(t, "outage in the API", func(s apiServices) error {
			down = s
			if s.ConsulAvailable || s.Consul.Error == nil || s.Consul.Since == nil {
				return fmt.Errorf("still available, or no error and since: %+v", s.Consul)
			}
			return nil
		})
		b.clickRefresh(t)
		// The banner says since when, and Consul's own message.
		var since string
		b.eval(t, fmt.Sprintf(`new Date(%q).toLocaleString()`, *down.Consul.Since), &since)
		if got, want := b.text(t, "consul-headline"), "Consul is unreachable since "+since+"."; got != want {
			t.Errorf("headline %q, want %q", got, want)
		}
		if got := b.text(t, "consul-error"); got == "" || got != strings.Join(strings.Fields(*down.Consul.Error), " ") {
			t.Errorf("banner reason %q, API error %q", got, *down.Consul.Error)
		}
		var state struct {
			Banner bool
			Rows   int
			Label  string
		}
		b.eval(t, `({Banner: getComputedStyle(document.getElementById('consul-banner')).display !== 'none',
			Rows: document.querySelectorAll('#services tbody.group').length,
			Label: document.getElementById('connection-state').textContent})`, &state)
		if !state.Banner || state.Rows != rowsBefore || state.Label != "Consul unreachable" {
			t.Errorf("with Consul down: %+v (had %d rows)", state, rowsBefore)
		}
	})

	t.Run("an API error shows a message and keeps the rows", func(t *testing.T) {
		m.stop()
		b.clickRefresh(t)
		var state struct {
			Error string
			Rows  int
		}
		b.eval(t, `({Error: getComputedStyle(document.getElementById('api-error')).display === 'none' ? '' : document.getElementById('api-error').textContent,
			Rows: document.querySelectorAll('#services tbody.group').length})`, &state)
		if !strings.Contains(state.Error, "Could not load data") || state.Rows != 6 {
			t.Errorf("after the server stopped: %+v", state)
		}
	})
}

func TestDashboardEmptyState(t *testing.T) {
	b := newBrowser(t, 1024, 700)
	// No Consul at this address, and a new database: nothing to show yet.
	m := startMonitor(t, freeAddr(t), filepath.Join(t.TempDir(), "h.db"))
	m.waitAPI(t, "first failed poll", func(s apiServices) error {
		if s.ConsulAvailable {
			return fmt.Errorf("available")
		}
		return nil
	})
	b.open(t, m)
	var state struct{ Empty, Banner, Table bool }
	b.eval(t, `(() => { const shown = id => getComputedStyle(document.getElementById(id)).display !== 'none';
		return {Empty: shown('empty-state'), Banner: shown('consul-banner'), Table: shown('services')}; })()`, &state)
	if !state.Empty || !state.Banner || state.Table {
		t.Errorf("empty state: %+v", state)
	}
	var text string
	b.eval(t, `document.getElementById('empty-state').textContent`, &text)
	if !strings.Contains(text, "CONSUL_HTTP_ADDR") {
		t.Errorf("the empty state does not say how to point the monitor at Consul: %q", text)
	}
	if errs, _, _ := b.recorded(); len(errs) > 0 {
		t.Errorf("console errors: %v", errs)
	}
}

// screenshot saves a PNG of the page in the test's temporary directory, or
// in docs/ when UPDATE_SCREENSHOTS=1 (how docs/dashboard.png is made).
func screenshot(t *testing.T, b *browser, name string) {
	t.Helper()
	var png []byte
	b.run(t, chromedp.CaptureScreenshot(&png))
	dir := t.TempDir()
	if os.Getenv("UPDATE_SCREENSHOTS") == "1" {
		dir = "../docs"
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
