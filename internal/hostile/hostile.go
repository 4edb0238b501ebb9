// Package hostile registers in a real Consul the data that once broke the
// monitor or its page (issue 9), beside a few ordinary services, so that
// browser and API tests can be run against it. Every later change to the
// page is meant to be tried against it: add a case here when Consul data
// breaks something new, and every test that uses the fixture covers it.
//
// Each case sits on a node of its own, registered through the catalog API
// the way other agents' and external services appear, so a test can
// register them one at a time and see which one breaks a page.
package hostile

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/consul-monitor/consul-monitor/internal/consultest"
)

// A Case is one registration: a service instance on a node, with its checks.
type Case struct {
	// Label says what the case tries, for test names and failure messages.
	Label   string
	Node    string
	Address string
	Service *api.AgentService
	Checks  []*api.HealthCheck
	// BadURL is set when meta.url must not become a link.
	BadURL bool
	// PrototypeName is set when the service name is a property of
	// Object.prototype: a page keeping state in a plain object breaks on it.
	PrototypeName bool
}

// InstanceID is the monitor's id of the case's instance: "<node>/<service
// id>" with '/' and '%' escaped in each part.
func (c Case) InstanceID() string {
	esc := func(s string) string {
		return strings.NewReplacer("%", "%25", "/", "%2F").Replace(s)
	}
	return esc(c.Node) + "/" + esc(c.Service.ID)
}

// Register registers the case in Consul's catalog.
func (c Case) Register(tb testing.TB, client *api.Client) {
	tb.Helper()
	consultest.RegisterExternal(tb, client, c.Node, c.Address, c.Service, c.Checks...)
}

// Script is a name that runs alert(what) if a page ever puts it into HTML;
// the image it asks for, /x, shows up as a request even where the
// Content-Security-Policy stops the handler.
func Script(what string) string {
	return fmt.Sprintf(`<img src=x onerror=alert(%q)>`, what)
}

const (
	// LongLen is the length of the long node name, service id, service
	// name and tag.
	LongLen = 1000
	// LongOutputLen is the length of the long check output, one word with
	// no place to break.
	LongOutputLen = 64 << 10
	// ManyTags is the number of tags of the many-tags instance.
	ManyTags = 300
)

// RLONode is a node name with a right-to-left override: unisolated, it
// reverses the service id shown after it ("node‮-evil sid-123" reads
// "node321-dis live-").
const (
	RLONode      = "node\u202e-evil"
	RLOServiceID = "sid-123"
)

// PrototypeNames are the service names that are properties of every plain
// JavaScript object.
var PrototypeNames = []string{"__proto__", "constructor", "toString", "hasOwnProperty", "valueOf"}

func long(prefix string) string {
	return prefix + strings.Repeat("x", LongLen-len(prefix))
}

func passing(node, serviceID, output string) *api.HealthCheck {
	return &api.HealthCheck{Node: node, CheckID: serviceID + "-check", Name: "alive", ServiceID: serviceID, Status: api.HealthPassing, Output: output}
}

// Normal is a few ordinary services: a page must draw them the same with
// the hostile cases registered as without. "web" has a status, a link, tags
// and a history bar in its service row.
func Normal() []Case {
	return []Case{
		{Label: "web", Node: "normal-1", Address: "10.1.0.1",
			Service: &api.AgentService{ID: "web-1", Service: "web", Port: 8443, Tags: []string{"https", "frontend"}, Meta: map[string]string{"url": "https://web.example/"}},
			Checks:  []*api.HealthCheck{passing("normal-1", "web-1", "HTTP GET /health: 200 OK")}},
		{Label: "api 1", Node: "normal-2", Address: "10.1.0.2",
			Service: &api.AgentService{ID: "api-1", Service: "api", Port: 9000, Tags: []string{"api", "v2"}},
			Checks:  []*api.HealthCheck{passing("normal-2", "api-1", "200 OK")}},
		{Label: "api 2", Node: "normal-3", Address: "10.1.0.3",
			Service: &api.AgentService{ID: "api-2", Service: "api", Port: 9000, Tags: []string{"api", "v2"}},
			Checks: []*api.HealthCheck{{Node: "normal-3", CheckID: "api-2-check", Name: "alive", ServiceID: "api-2",
				Status: api.HealthCritical, Output: "dial tcp 10.1.0.3:9000: connection refused"}}},
		{Label: "db", Node: "normal-4", Address: "10.1.0.4",
			Service: &api.AgentService{ID: "db-1", Service: "db", Port: 5432},
			Checks:  []*api.HealthCheck{passing("normal-4", "db-1", "")}},
	}
}

// Cases is every hostile case of issue 9.
func Cases() []Case {
	var cases []Case
	for i, name := range PrototypeNames {
		node := fmt.Sprintf("hostile-proto-%d", i+1)
		id := fmt.Sprintf("proto-%d", i+1)
		cases = append(cases, Case{Label: "service named " + name, Node: node, Address: fmt.Sprintf("10.9.1.%d", i+1), PrototypeName: true,
			Service: &api.AgentService{ID: id, Service: name, Port: 80},
			Checks:  []*api.HealthCheck{passing(node, id, "")}})
	}
	longNode := long("long-node-")
	longID := long("long-id-")
	longName := long("long-name-")
	rloTag := "tag\u202e-evil"
	cases = append(cases,
		Case{Label: "1,000-character node name", Node: longNode, Address: "10.9.2.1",
			Service: &api.AgentService{ID: "on-long-node", Service: "long-node", Port: 80},
			Checks:  []*api.HealthCheck{passing(longNode, "on-long-node", "")}},
		Case{Label: "1,000-character service id", Node: "hostile-long-id", Address: "10.9.2.2",
			Service: &api.AgentService{ID: longID, Service: "long-id", Port: 80},
			Checks:  []*api.HealthCheck{passing("hostile-long-id", longID, "")}},
		Case{Label: "1,000-character service name", Node: "hostile-long-name", Address: "10.9.2.3",
			Service: &api.AgentService{ID: "long-name-1", Service: longName, Port: 80},
			Checks:  []*api.HealthCheck{passing("hostile-long-name", "long-name-1", "")}},
		Case{Label: "right-to-left override in a node name and a tag", Node: RLONode, Address: "10.9.3.1",
			Service: &api.AgentService{ID: RLOServiceID, Service: "rlo", Port: 80, Tags: []string{rloTag, "after"}},
			Checks:  []*api.HealthCheck{passing(RLONode, RLOServiceID, "out\u202eput")}},
		Case{Label: "script in names, tags, meta, checks and outputs", Node: "hostile-script-" + Script("node"), Address: "10.9.4.1",
			Service: &api.AgentService{ID: "script-" + Script("id"), Service: Script("name"), Port: 80,
				Tags: []string{Script("tag"), "<script>alert('tag')</script>"},
				Meta: map[string]string{"owner": Script("meta")}},
			Checks: []*api.HealthCheck{
				{Node: "hostile-script-" + Script("node"), CheckID: "script-check", Name: "<script>alert('check')</script>",
					ServiceID: "script-" + Script("id"), Status: api.HealthWarning, Output: Script("output") + "<script>alert('output')</script>"},
				{Node: "hostile-script-" + Script("node"), CheckID: "script-node-check", Name: Script("node check"),
					Status: api.HealthPassing, Output: Script("node output")},
			}},
	)
	for i, u := range []struct{ label, url string }{
		{"meta.url with credentials", "http://user:pass@internal/"},
		{"meta.url with a misleading userinfo", "https://good.example@evil.example/"},
		{"meta.url with port 70000", "http://example.com:70000/"},
		{"meta.url with an IPv6 zone", "http://[fe80::1%25eth0]:8080/"},
		{"meta.url with a bidi character in the host", "http://exa\u202emple.com/"},
		{"meta.url with javascript:", "javascript:alert('url')"},
		{"meta.url with data:", "data:text/html,<script>alert('data')</script>"},
	} {
		node := fmt.Sprintf("hostile-url-%d", i+1)
		id := fmt.Sprintf("bad-url-%d", i+1)
		cases = append(cases, Case{Label: u.label, Node: node, Address: fmt.Sprintf("10.9.5.%d", i+1), BadURL: true,
			Service: &api.AgentService{ID: id, Service: fmt.Sprintf("bad-url-%d", i+1), Port: 80, Meta: map[string]string{"url": u.url}},
			Checks:  []*api.HealthCheck{passing(node, id, "")}})
	}
	tags := make([]string, 0, ManyTags+1)
	for i := range ManyTags {
		tags = append(tags, fmt.Sprintf("tag-%03d", i))
	}
	tags = append(tags, long("long-tag-"))
	cases = append(cases,
		Case{Label: "long check output", Node: "hostile-output", Address: "10.9.6.1",
			Service: &api.AgentService{ID: "long-output-1", Service: "long-output", Port: 80},
			Checks: []*api.HealthCheck{{Node: "hostile-output", CheckID: "long-output-check", Name: "chatty", ServiceID: "long-output-1",
				Status: api.HealthCritical, Output: LongOutput()}}},
		Case{Label: "many tags", Node: "hostile-tags", Address: "10.9.6.2",
			Service: &api.AgentService{ID: "many-tags-1", Service: "many-tags", Port: 80, Tags: tags},
			Checks:  []*api.HealthCheck{passing("hostile-tags", "many-tags-1", "")}},
	)
	return cases
}

// LongOutput is the long check output: LongOutputLen bytes in one word.
func LongOutput() string {
	return "begin-" + strings.Repeat("y", LongOutputLen-len("begin--end")) + "-end"
}

// RegisterAll registers the normal services and every hostile case.
func RegisterAll(tb testing.TB, client *api.Client) {
	tb.Helper()
	for _, c := range append(Normal(), Cases()...) {
		c.Register(tb, client)
	}
}
