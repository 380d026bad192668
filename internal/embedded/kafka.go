package embedded

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// MinSessionTimeout is the smallest consumer group session timeout the
// embedded broker accepts (kfake's own default minimum is 6 s).
const MinSessionTimeout = 100 * time.Millisecond

// Kafka is a running in-process Kafka-protocol broker.
type Kafka struct {
	Brokers []string // host:port, one broker
	Cluster *kfake.Cluster
	// Close stops the broker; the data, in memory, is gone.
	Close func()
}

// StartKafka starts a one-broker kfake cluster on a free 127.0.0.1 port with
// each topic created with the given number of partitions.
func StartKafka(partitions int, topics ...string) (*Kafka, error) {
	if partitions < 1 {
		return nil, fmt.Errorf("embedded: %d partitions", partitions)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.GroupMinSessionTimeout(MinSessionTimeout),
	}
	if len(topics) > 0 {
		opts = append(opts, kfake.SeedTopics(int32(partitions), topics...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("embedded: starting kfake: %w", err)
	}
	return &Kafka{Brokers: c.ListenAddrs(), Cluster: c, Close: c.Close}, nil
}
