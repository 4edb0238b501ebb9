package health

import (
	"testing"
	"time"
)

// A service that runs on every node (a node exporter, a log shipper) has
// thousands of instances, and its window's instance-time is the sum of
// theirs: 3,000 instances passing for an hour are 3,000 h. The shares of
// that must still be 100 % passing, not overflow into nonsense or a panic.
func TestServiceSharesOfThousandsOfInstances(t *testing.T) {
	start := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	for _, n := range []int{2000, 3000, 10000} {
		one := Window{Start: start, Passing: 99.9, Critical: 0.1, PassingTime: time.Hour - time.Second, CriticalTime: time.Second}
		instances := make([]Window, n)
		for i := range instances {
			instances[i] = one
		}
		var w Window
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%d instances: panic %v", n, r)
				}
			}()
			w = Aggregate(instances)
		}()
		sum := w.Passing + w.Warning + w.Critical + w.NoData
		for _, s := range []float64{w.Passing, w.Warning, w.Critical, w.NoData} {
			if s < 0 || s > 100 {
				t.Errorf("%d instances: a share of %v (window %+v)", n, s, w)
			}
		}
		if sum < 99.95 || sum > 100.05 || w.Passing != 99.9 || w.Critical != 0.1 {
			t.Errorf("%d instances: shares %v/%v/%v/%v, want 99.9 passing, 0.1 critical", n, w.Passing, w.Warning, w.Critical, w.NoData)
		}
	}
}
