// Package health holds consul-monitor's domain rules: what an instance is,
// how its status follows from its checks, which URL it is reached at, and how
// recorded history turns into time-in-status windows. It does no I/O, so every
// rule here is tested with plain values.
package health

import (
	"cmp"
	"slices"
	"strings"
	"unicode/utf8"
)

// Status is the health of a check or of an instance.
type Status string

const (
	Passing  Status = "passing"
	Warning  Status = "warning"
	Critical Status = "critical"
	// Maintenance is not a check status in Consul: Consul puts an instance in
	// maintenance by registering a critical check with a reserved ID, and its
	// UI shows that as maintenance rather than as a failure.
	Maintenance Status = "maintenance"
	// Unknown is an instance that nothing checks.
	Unknown Status = "unknown"
)

// Consul reserves these check IDs for maintenance mode.
const (
	nodeMaintenanceCheckID          = "_node_maintenance"
	serviceMaintenanceCheckIDPrefix = "_service_maintenance:"
)

// ParseCheckStatus maps Consul's check status text to a Status. Anything
// Consul might add later is taken as critical: a monitor that cannot read a
// status must not show it as healthy.
func ParseCheckStatus(s string) Status {
	switch Status(s) {
	case Passing, Warning, Critical, Maintenance:
		return Status(s)
	}
	return Critical
}

func (s Status) severity() int {
	switch s {
	case Passing:
		return 1
	case Warning:
		return 2
	case Critical:
		return 3
	case Maintenance:
		return 4
	}
	return 0
}

// Check is one Consul health check.
type Check struct {
	Node    string
	CheckID string
	Name    string
	// ServiceID is empty for a node check, which counts against every
	// instance on Node.
	ServiceID string
	Status    Status
	Output    string
	// OutputTruncated is set when Output was cut (see TruncateOutput).
	OutputTruncated bool
}

// TruncateOutput cuts output to at most max bytes, on a UTF-8 character
// boundary, and reports whether it cut: a check's output has no size limit
// in Consul, and the monitor keeps a bounded part of each.
func TruncateOutput(output string, max int) (string, bool) {
	if len(output) <= max {
		return output, false
	}
	cut := max
	// Back off to the start of the character that max falls inside.
	for cut > 0 && cut > max-utf8.UTFMax && !utf8.RuneStart(output[cut]) {
		cut--
	}
	return output[:cut], true
}

// NodeOutputBudget is how many of each check's kept output bytes one node's
// checks may hold together: one registration may carry any number of
// checks, and their outputs must not cost more than a few full ones.
func NodeOutputBudget(outputMax int) int { return 16 * outputMax }

// BoundNodeOutputs drops, in order, the outputs that would take a node's
// checks past budget bytes together, marking them truncated. Statuses are
// all kept: only the text is bounded, never what the checks say.
func BoundNodeOutputs(checks []Check, budget int) {
	used := map[string]int{}
	for i := range checks {
		c := &checks[i]
		if used[c.Node]+len(c.Output) > budget {
			c.Output, c.OutputTruncated = "", c.OutputTruncated || c.Output != ""
			continue
		}
		used[c.Node] += len(c.Output)
	}
}

// IsNodeCheck reports whether the check belongs to the node rather than to
// one service instance.
func (c Check) IsNodeCheck() bool { return c.ServiceID == "" }

// IsMaintenance reports whether Consul registered this check to put its node
// or service instance in maintenance mode.
func (c Check) IsMaintenance() bool {
	return c.CheckID == nodeMaintenanceCheckID || strings.HasPrefix(c.CheckID, serviceMaintenanceCheckIDPrefix)
}

// Instance is one registration of a service on a node. Two nodes may both run
// an instance with the same service ID, so the pair identifies it.
type Instance struct {
	Node      string
	ServiceID string
	Name      string
	// Address is where the instance listens: the service's own address, or
	// the node's when the service registered none.
	Address string
	Port    int
	Tags    []string
	Meta    map[string]string
}

// ID is the instance's identifier in the API: node and service ID, each
// with '%' and '/' escaped so that the pair reads back unambiguously.
func (i Instance) ID() string { return InstanceID(i.Node, i.ServiceID) }

// InstanceID builds the API identifier of the instance ServiceID on node.
func InstanceID(node, serviceID string) string {
	return escapeIDPart(node) + "/" + escapeIDPart(serviceID)
}

var idPartEscaper = strings.NewReplacer("%", "%25", "/", "%2F")
var idPartUnescaper = strings.NewReplacer("%25", "%", "%2F", "/")

func escapeIDPart(s string) string { return idPartEscaper.Replace(s) }

// ParseInstanceID splits an identifier made by InstanceID. ok is false for
// text that InstanceID cannot have produced.
func ParseInstanceID(id string) (node, serviceID string, ok bool) {
	node, serviceID, found := strings.Cut(id, "/")
	if !found || node == "" || serviceID == "" || strings.Contains(serviceID, "/") {
		return "", "", false
	}
	node, serviceID = idPartUnescaper.Replace(node), idPartUnescaper.Replace(serviceID)
	if InstanceID(node, serviceID) != id {
		return "", "", false
	}
	return node, serviceID, true
}

// Snapshot is everything seen in Consul at one moment.
type Snapshot struct {
	Instances []Instance
	Checks    []Check
}

// InstanceHealth is an instance with its own checks and its status.
type InstanceHealth struct {
	Instance
	// Checks holds the instance's own service checks. Its node's checks are
	// kept once per node (Evaluation.NodeChecks), not copied into every
	// instance, since one node check may carry a large output.
	Checks []Check
	// Status counts the instance's own checks and its node's checks.
	Status Status
}

// Evaluation is a snapshot's instances with their status, and each node's
// checks once.
type Evaluation struct {
	Instances []InstanceHealth
	// NodeChecks holds the node checks of every node that runs an instance.
	NodeChecks map[string][]Check
}

// InstanceStatus is the status Consul's UI gives an instance with these
// service and node checks: maintenance if either kind of maintenance check is
// present, otherwise the worst status, and unknown when nothing checks it.
func InstanceStatus(checks []Check) Status {
	if len(checks) == 0 {
		return Unknown
	}
	worst := Passing
	for _, c := range checks {
		if c.IsMaintenance() {
			return Maintenance
		}
		if c.Status.severity() > worst.severity() {
			worst = c.Status
		}
	}
	return worst
}

// Evaluate pairs each instance with its checks and status. Checks that
// belong to no instance in the snapshot (for example an instance registered
// between the two reads of a poll) are left out until a snapshot holds both.
// The instances are sorted by name, node and service ID.
func Evaluate(s Snapshot) Evaluation {
	type instanceKey struct{ node, serviceID string }
	serviceChecks := make(map[instanceKey][]Check)
	nodeChecks := make(map[string][]Check)
	for _, c := range s.Checks {
		if c.IsNodeCheck() {
			nodeChecks[c.Node] = append(nodeChecks[c.Node], c)
		} else {
			k := instanceKey{c.Node, c.ServiceID}
			serviceChecks[k] = append(serviceChecks[k], c)
		}
	}
	out := Evaluation{Instances: make([]InstanceHealth, 0, len(s.Instances)), NodeChecks: map[string][]Check{}}
	// The status needs own and node checks together; this buffer is reused
	// so that node checks are never copied per instance.
	var both []Check
	for _, inst := range s.Instances {
		own := serviceChecks[instanceKey{inst.Node, inst.ServiceID}]
		node := nodeChecks[inst.Node]
		if len(node) > 0 {
			out.NodeChecks[inst.Node] = node
		}
		both = append(append(both[:0], own...), node...)
		out.Instances = append(out.Instances, InstanceHealth{Instance: inst, Checks: own, Status: InstanceStatus(both)})
	}
	slices.SortFunc(out.Instances, func(a, b InstanceHealth) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Node, b.Node), cmp.Compare(a.ServiceID, b.ServiceID))
	})
	return out
}
