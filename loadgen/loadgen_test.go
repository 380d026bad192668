package loadgen_test

import (
	"testing"
	"time"

	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/loadgen"
)

func TestClustersAndDeterminism(t *testing.T) {
	opt := loadgen.Options{Users: 100, Items: 50, Clusters: 5, Affinity: 0.9, Seed: 9, Start: time.Unix(1700000000, 0), Step: time.Second}
	a, b := loadgen.New(opt), loadgen.New(opt)
	own, n := 0, 20000
	types := map[event.Type]int{}
	for i := 0; i < n; i++ {
		x, y := a.Next(), b.Next()
		if x != y {
			t.Fatalf("event %d differs between equal generators: %+v vs %+v", i, x, y)
		}
		if err := x.Validate(event.Decoder{Now: func() time.Time { return time.Unix(1800000000, 0) }}); err != nil {
			t.Fatalf("invalid event %+v: %v", x, err)
		}
		if a.Cluster(x.UserID) == a.Cluster(x.ItemID) {
			own++
		}
		types[x.Type]++
	}
	// 90% stay in the cluster, plus 1/5 of the 10% that move at random.
	if share := float64(own) / float64(n); share < 0.9 || share > 0.94 {
		t.Errorf("own-cluster share %.3f, want about 0.92", share)
	}
	for _, ty := range event.Types {
		if types[ty] == 0 {
			t.Errorf("no %s events", ty)
		}
	}
	if c := a.Cluster(a.ItemIn(3, 7)); c != 3 {
		t.Errorf("ItemIn(3, 7) in cluster %d", c)
	}
}
