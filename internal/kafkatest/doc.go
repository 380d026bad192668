// Package kafkatest runs an in-process Kafka-protocol broker (kfake, from
// franz-go) for tests and gives them a synchronous producer and a reader of
// whole topics, both built on kafka-go like the code under test.
//
// [Start] makes a one-broker cluster on a free 127.0.0.1 port with the given
// topics seeded, a minimum group session timeout of [MinSessionTimeout]
// instead of kfake's 6 s (so tests may use short session timeouts for fast
// rebalances), and closes it at cleanup. The embedded *kfake.Cluster stays
// reachable for fault injection (ControlKey, KeepControl, SleepControl, ...).
//
// kafka-go v0.4.51 against this broker was checked here to produce, consume
// in a consumer group with FetchMessage and synchronous CommitMessages
// (CommitInterval 0), and resume in a new reader of the same group right
// after the committed offsets, without duplicates.
package kafkatest
