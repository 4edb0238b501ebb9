package web

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/consul-monitor/consul-monitor/internal/consul"
	"github.com/consul-monitor/consul-monitor/internal/consultest"
	"github.com/consul-monitor/consul-monitor/internal/faultproxy"
	"github.com/consul-monitor/consul-monitor/internal/health"
	"github.com/consul-monitor/consul-monitor/internal/store"
	"github.com/consul-monitor/consul-monitor/internal/watch"
)

// A monitor restarted while the instance list cannot be read (a token
// without node:read, a proxy that blocks /v1/internal/) still reads health
// fine, and says Consul is available. It must then not show the statuses
// the database held before the restart as Consul's current ones: web-1 went
// critical while the monitor was down.
func TestRestartWithCatalogFailingShowsNoStaleStatus(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "web-1", Name: "web",
		Check: &api.AgentServiceCheck{CheckID: "web-ttl", TTL: "10m", Status: api.HealthPassing}}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "h.db")
	id := consultest.NodeName + "/web-1"

	// The previous run saw web-1 passing.
	st, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Record(context.Background(), time.Now(), health.Snapshot{
		Instances: []health.Instance{{Node: consultest.NodeName, ServiceID: "web-1", Name: "web"}},
		Checks:    []health.Check{{Node: consultest.NodeName, CheckID: "web-ttl", ServiceID: "web-1", Name: "web", Status: health.Passing}},
	}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	// While it was down, web-1 went critical.
	if err := c.Agent().UpdateTTL("web-ttl", "backend down", api.HealthCritical); err != nil {
		t.Fatal(err)
	}

	proxy, err := faultproxy.New(agent.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	proxy.Set("/v1/internal/", faultproxy.StatusFault(http.StatusForbidden))

	st, err = store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := agent.Config()
	cfg.Address = proxy.Addr()
	client, err := consul.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	w := watch.New(client, st, watch.Config{Reconcile: time.Hour, MinQueryGap: 20 * time.Millisecond, MaxWait: 500 * time.Millisecond}, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	srv := httptest.NewServer(New(st, w, []byte("key"), quiet))
	t.Cleanup(srv.Close)

	var r servicesResponse
	consultest.WaitFor(t, 20*time.Second, "health read and the catalog failure shown", func() error {
		r = getJSON[servicesResponse](t, srv.URL+"/api/services")
		if !r.Consul.OK || r.Consul.LastOK == nil || r.Catalog.OK || r.Catalog.Error == nil {
			return fmt.Errorf("consul %+v, catalog %+v", r.Consul, r.Catalog)
		}
		return nil
	})
	// Give the health watch a few more answers.
	last := *r.Consul.LastOK
	consultest.WaitFor(t, 20*time.Second, "more health answers", func() error {
		r = getJSON[servicesResponse](t, srv.URL+"/api/services")
		if r.Consul.LastOK == nil || !r.Consul.LastOK.After(last.Add(time.Second)) {
			return fmt.Errorf("last ok %v", r.Consul.LastOK)
		}
		return nil
	})
	if s := serviceStatus(r, id); r.ConsulAvailable && s == health.Passing {
		t.Errorf("/api/services says Consul is available and web-1 is %q, but Consul has had it critical since before the start (last_poll %v)", s, r.LastPoll)
	}
}
