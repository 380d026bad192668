package consumer_test

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/recstream/recstream/internal/kafkatest"
)

// run runs a consumer's Run until the test ends.
func run(t *testing.T, what string, runs ...func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r(ctx); err != nil {
				t.Errorf("%s: %v", what, err)
			}
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline (the machine may be loaded).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nothingCommitted fails the test when group committed any offset of topic.
func nothingCommitted(t *testing.T, kf *kafkatest.Cluster, group, topic, while string) {
	t.Helper()
	for p, off := range kf.Committed(t, group, topic) {
		if off > 0 {
			t.Fatalf("%s: partition %d committed up to %d", while, p, off)
		}
	}
}

// waitCommitted waits until group committed every partition of topic up
// to its high watermark.
func waitCommitted(t *testing.T, kf *kafkatest.Cluster, group, topic string) {
	t.Helper()
	_, high := kf.Offsets(t, topic)
	waitFor(t, "every offset of "+topic+" committed", func() bool {
		c := kf.Committed(t, group, topic)
		for p, h := range high {
			if c[p] != h {
				return false
			}
		}
		return true
	})
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
