package hostile

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/consul-monitor/consul-monitor/internal/consultest"
)

// TestConsulKeepsEveryCase: the fixture is only worth its name if Consul
// accepts each hostile value and holds it as given. The checks are read
// from /v1/health/state/any, as the monitor reads them: a node name with a
// bidi character cannot even be put in a request path.
func TestConsulKeepsEveryCase(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	RegisterAll(t, c)
	all := append(Normal(), Cases()...)
	byKey := map[string]*api.HealthCheck{}
	consultest.WaitFor(t, 10*time.Second, "every check in Consul", func() error {
		checks, _, err := c.Health().State(api.HealthAny, nil)
		if err != nil {
			return err
		}
		clear(byKey)
		for _, hc := range checks {
			byKey[hc.Node+"\x00"+hc.CheckID] = hc
		}
		for _, tc := range all {
			for _, want := range tc.Checks {
				if byKey[tc.Node+"\x00"+want.CheckID] == nil {
					return fmt.Errorf("%s: no check %s on node %q", tc.Label, want.CheckID, tc.Node)
				}
			}
		}
		return nil
	})
	for _, tc := range all {
		for _, want := range tc.Checks {
			got := byKey[tc.Node+"\x00"+want.CheckID]
			if got.Output != want.Output || got.Name != want.Name || got.ServiceID != want.ServiceID {
				t.Errorf("%s: check %s holds %d bytes of output, name %q, service %q", tc.Label, want.CheckID, len(got.Output), got.Name, got.ServiceID)
			}
			if want.ServiceID != "" && (got.ServiceName != tc.Service.Service || !slices.Equal(got.ServiceTags, tc.Service.Tags)) {
				t.Errorf("%s: service %q with %d tags, want %q with %d", tc.Label, got.ServiceName, len(got.ServiceTags), tc.Service.Service, len(tc.Service.Tags))
			}
		}
		if !tc.BadURL {
			continue
		}
		svcs, _, err := c.Catalog().Service(tc.Service.Service, "", nil)
		if err != nil || len(svcs) != 1 || svcs[0].ServiceMeta["url"] != tc.Service.Meta["url"] {
			t.Errorf("%s: catalog holds %+v, %v", tc.Label, svcs, err)
		}
	}
}
