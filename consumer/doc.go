// Package consumer is recstream's Kafka side: the ingest consumer (decode,
// validate, dead-letter, micro-batch, apply to the store, publish refresh
// requests, commit), the refresh consumer that drives the scorer, the
// control consumer (erasure requests), the catalog writer and the catalog
// index loader of the items topic, and the lag poller that measures the
// groups from the broker. Every consumer that commits uses one reader
// configuration, one batch collector (batches.go), one committer
// (commit.go) and one retry with readiness (health.go).
//
// # Offsets
//
// Offsets are committed synchronously and only after a batch's effects are
// acknowledged by Redis and its refresh requests and dead letters by Kafka.
// A batch that fails is retried until it succeeds; every write is fenced in
// Redis, so a replay (after a crash, a retry or a rebalance) is harmless.
//
// # Lag
//
// Lag is measured twice, never with kafka-go's Reader.Stats().Lag (one gauge
// overwritten by whichever partition fetched last, ignoring commits):
//
//   - after each commit, per partition, from the fetched message's high
//     watermark minus the committed offset;
//   - by LagMonitor every admin.lag_interval, from the broker: the high
//     watermark (ListOffsets) minus the group's committed offset
//     (OffsetFetch) for every partition of the topic, the age of the oldest
//     unconsumed message (one small Fetch per lagging partition) and the
//     group's members and assignment (DescribeGroups). These values stay
//     current while the consumer is stuck or gone, which is when they
//     matter. The poll's success is also /readyz's broker check.
//
// Every process that runs a role exports the lag of all partitions of that
// role's group (as kafka-lag-exporter does); aggregate with
// max by (group, topic, partition).
//
// # Metrics
//
// Labels are bounded: group, topic and partition come from the
// configuration and the topic's partition count, type and reason from fixed
// lists, command from a fixed set of Redis commands; never a user or an
// item.
//
// Consumer (Metrics):
//
//	recstream_events_consumed_total{type}                  counter    valid events consumed
//	recstream_events_invalid_total{reason}                 counter    invalid events sent to the DLQ
//	recstream_dlq_writes_total                             counter    messages written to the DLQ
//	recstream_events_fenced_total                          counter    events skipped by fences (replays)
//	recstream_batches_total                                counter    ingest batches applied and committed
//	recstream_batch_events                                 histogram  messages per ingest batch
//	recstream_item_window_events_total                     counter    events whose item half was written
//	recstream_batch_duration_seconds                       histogram  apply + publish + commit of one batch
//	recstream_batch_errors_total                           counter    failed batch applications (retried)
//	recstream_commits_total{group,result}                  counter    offset commits, result ok or error
//	recstream_consumer_lag_messages{group,topic,partition} gauge      high watermark minus committed offset
//	recstream_consumer_lag_seconds{group,topic,partition}  gauge      age of the oldest unconsumed message (0 without lag)
//	recstream_last_event_timestamp_seconds{partition}      gauge      event time of the newest processed event
//	recstream_refresh_backlog_users                        gauge      users waiting in the scorer's debounce window
//	recstream_rescore_duration_seconds                     histogram  rescoring and writing one batch of users
//	recstream_lists_written_total                          counter    per-user lists written
//	recstream_freshness_seconds                            histogram  event time to the user's list written
//	recstream_ready{role}                                  gauge      1 when the role (ingest, score, catalog) is ready (set by the processor's readiness check)
//	recstream_assigned_partitions{group}                   gauge      partitions this process committed in the last minute
//	recstream_rebalances_total{group}                      counter    assignment changes seen by the lag poller
//	recstream_item_updates_total{result}                   counter    repartition messages sent by ingest, written by the item owner, or invalid (skipped)
//	recstream_item_flush_duration_seconds                  histogram  writing the item owner's changed items
//
// Catalog consumers (CatalogMetrics, registered only with the catalog enabled):
//
//	recstream_catalog_records_total{role,result}           counter    catalog records consumed by the writer or the index loader
//	recstream_catalog_invalid_total{reason}                counter    invalid catalog records sent to the DLQ
//	recstream_catalog_items                                gauge      items in the in-memory catalog index
//	recstream_catalog_withdrawn_total                      counter    items that became unavailable
//	recstream_catalog_refresh_requests_total               counter    refreshes requested for lists holding a withdrawn item
//
// Scorer:
//
//	recstream_variant_lists_total{variant}                 counter    lists written per A/B variant (package scorer)
//	recstream_variant_items_total{variant,source}          counter    listed items per variant and source
//	recstream_experiment_impressions_total{variant}        counter    impressions counted for the experiment (package experiment, read from Redis)
//	recstream_experiment_shown_items_total{variant}        counter    items shown in them
//	recstream_experiment_attributed_total{variant,type,via} counter   attributed clicks, carts, purchases
//	recstream_experiment_purchase_value_total{variant,via} counter    value of attributed purchases
//	recstream_experiment_rate{variant,metric}              gauge      the A/B report's rates (package experiment)
//	recstream_experiment_rate_ci_low{variant,metric}       gauge      lower end of the 95% interval
//	recstream_experiment_rate_ci_high{variant,metric}      gauge      upper end of the 95% interval
//	recstream_experiment_diff{variant,metric}              gauge      rate minus the control's
//	recstream_experiment_p_value{variant,metric}           gauge      p-value of the difference to the control
//
// Lag poller (LagMonitor):
//
//	recstream_consumer_committed_offset{group,topic,partition}  gauge    committed offset (next message to consume)
//	recstream_partition_high_watermark{topic,partition}         gauge    offset of the next message produced
//	recstream_consumer_group_members{group}                     gauge    members of the group
//	recstream_consumer_group_assigned_partitions{group,topic}   gauge    partitions assigned to some member
//	recstream_lag_polls_total{result}                           counter  broker polls, result ok or error
//	recstream_broker_reachable                                  gauge    1 when the last poll succeeded
//
// Registered elsewhere on the same registry: the Redis client's
// recstream_redis_command_duration_seconds{command},
// recstream_redis_errors_total{command} and recstream_redis_dials_total{result},
// the item owner's recstream_item_owner_items,
// recstream_item_owner_writes_total{result},
// recstream_item_owner_contributions_total{result} and
// recstream_item_owner_evicted_total{reason},
// the user half's recstream_ingest_users_total{copy},
// recstream_ingest_user_writes_refused_total,
// recstream_ingest_user_copies and
// recstream_ingest_user_copies_evicted_total{reason},
// and the co-occurrence rows' recstream_cooc_folds_total{result} and
// recstream_cooc_malformed_entries_total (package store),
// recstream_build_info{version,commit} and the Go and
// process collectors (cmd/recstream). docs/operations.md explains each
// metric and the alerts built on them.
package consumer
