package health

import "unicode/utf8"

// EventKind says what an event in the history is.
type EventKind string

const (
	// EventStatus is a check going from one status to another.
	EventStatus EventKind = "status"
	// EventCheckAdded is a check first seen: it has no from status. The
	// checks of the first poll ever recorded are all added, as the monitor
	// cannot know what they were before.
	EventCheckAdded EventKind = "check_added"
	// EventCheckRemoved is a check leaving Consul: it has no to status.
	EventCheckRemoved EventKind = "check_removed"
	// EventRegistered and EventDeregistered are an instance entering and
	// leaving the catalog.
	EventRegistered   EventKind = "registered"
	EventDeregistered EventKind = "deregistered"
)

// EventStatuses are the statuses a check event can go to, and so the ones
// events can be filtered by.
var EventStatuses = []Status{Passing, Warning, Critical, Maintenance}

// CheckChange is a check's status change as an event. From and To are ""
// where the check did not exist.
type CheckChange struct {
	Kind     EventKind
	From, To Status
}

// ChangeOfCheck turns one stored status change of check checkID, from the
// status before it to the one after ("" for none, which are never both),
// into an event. A maintenance check is stored with Consul's status for it
// (critical) but reads as maintenance, as it does in an instance's status:
// putting an instance in maintenance is not a failure.
func ChangeOfCheck(checkID string, from, to Status) CheckChange {
	c := CheckChange{From: shownCheckStatus(checkID, from), To: shownCheckStatus(checkID, to)}
	switch {
	case from == "":
		c.Kind = EventCheckAdded
	case to == "":
		c.Kind = EventCheckRemoved
	default:
		c.Kind = EventStatus
	}
	return c
}

// shownCheckStatus is the status an event shows for check checkID in
// stored status s: maintenance for Consul's maintenance checks.
func shownCheckStatus(checkID string, s Status) Status {
	if s != "" && (Check{CheckID: checkID}).IsMaintenance() {
		return Maintenance
	}
	return s
}

// ChangeOfRegistration is an instance entering (registered) or leaving the
// catalog, as an event kind.
func ChangeOfRegistration(registered bool) EventKind {
	if registered {
		return EventRegistered
	}
	return EventDeregistered
}

// EventOutputMax is the most of a check's output kept with each status
// change. Outputs are bounded when read from Consul, but a change is kept
// for the whole retention and a flapping check makes many: the first
// kilobyte says what went wrong, and the current output is shown whole.
const EventOutputMax = 1024

// EventOutput is output cut to EventOutputMax bytes on a character
// boundary, and whether it was cut.
func EventOutput(output string) (string, bool) {
	if len(output) <= EventOutputMax {
		return output, false
	}
	cut := EventOutputMax
	// Back off to the start of the character the limit falls inside; bytes
	// that are no UTF-8 are cut where they are.
	for cut > EventOutputMax-utf8.UTFMax+1 && !utf8.RuneStart(output[cut]) {
		cut--
	}
	return output[:cut], true
}
