//go:build unix

package apps_test

import (
	"syscall"
	"testing"
	"time"
)

// reportCPU reports the process's CPU time (user + system) per operation as cpu-ns/op.
// On a machine shared with other work, wall-clock ns/op grows with contention; CPU time
// per op is what one core spends, so 1e9 / cpu-ns/op is the per-core throughput.
// Call it after setup: defer reportCPU(b)().
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
