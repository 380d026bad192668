package consumer_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/consumer"
	"github.com/recstream/recstream/internal/kafkatest"
	"github.com/recstream/recstream/store"
)

// flakyRefresher records the users it rescored; it fails while fail is set.
type flakyRefresher struct {
	fail   atomic.Bool
	errors atomic.Int64
	mu     sync.Mutex
	done   map[string]int
}

func (f *flakyRefresher) Refresh(_ context.Context, users []string) ([]store.List, error) {
	if f.fail.Load() {
		f.errors.Add(1)
		return nil, errOutage
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range users {
		f.done[u]++
	}
	return nil, nil
}

func (f *flakyRefresher) RefreshTrending(context.Context) (store.List, error) {
	return store.List{}, nil
}

// The refresh consumer commits requests only after their users' lists are
// written: while rescoring fails nothing is committed and the role is not
// ready; afterwards every requested user was rescored and every request
// committed.
func TestScoreCommitsOnlyAfterRescoring(t *testing.T) {
	const topic, group = "refresh", "score"
	kf := kafkatest.Start(t, 2, topic)
	ref := &flakyRefresher{done: map[string]int{}}
	ref.fail.Store(true)
	reg := prometheus.NewRegistry()
	m := consumer.NewMetrics(reg)
	sc, err := consumer.NewScore(consumer.ScoreOptions{
		Kafka: consumer.Kafka{Brokers: kf.Brokers, MaxWait: 50 * time.Millisecond},
		Topic: topic, Group: group, Debounce: 10 * time.Millisecond, ShutdownTimeout: 5 * time.Second,
		Workers: 2, Metrics: m,
	}, ref)
	if err != nil {
		t.Fatal(err)
	}

	var msgs []kafka.Message
	users := map[string]bool{}
	for i := 0; i < 40; i++ {
		u := "u" + strconv.Itoa(i%15)
		users[u] = true
		msgs = append(msgs, kafka.Message{Key: []byte(u), Value: consumer.EncodeRefresh(consumer.RefreshRequest{User: u, TS: time.Now().UnixMilli()})})
	}
	kf.Produce(t, topic, msgs...)
	// Produced before the consumer starts: the broker answers the producer
	// without a group join in flight.
	run(t, "score", sc.Run)

	waitFor(t, "rescoring retries", func() bool { return ref.errors.Load() >= 3 })
	nothingCommitted(t, kf, group, topic, "rescoring failing")
	if sc.Ready() {
		t.Fatal("score reports ready while rescoring fails")
	}
	ref.fail.Store(false)
	waitCommitted(t, kf, group, topic)
	if !sc.Ready() {
		t.Fatal("score not ready after rescoring recovered")
	}
	ref.mu.Lock()
	defer ref.mu.Unlock()
	for u := range users {
		if ref.done[u] == 0 {
			t.Fatalf("user %s requested, never rescored", u)
		}
	}
	if len(ref.done) != len(users) {
		t.Fatalf("rescored %d users, %d requested", len(ref.done), len(users))
	}
}
