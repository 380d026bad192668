package consumer

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/recstream/recstream/event"
)

// Metrics are the consumer's Prometheus metrics. Create them once per
// registry with NewMetrics; a nil *Metrics records nothing.
type Metrics struct {
	Events         *prometheus.CounterVec // by type
	Invalid        *prometheus.CounterVec // by reason
	DLQWrites      prometheus.Counter     // messages written to the DLQ
	Fenced         prometheus.Counter     // events skipped by fences (replays)
	Batches        prometheus.Counter     // batches applied
	BatchSize      prometheus.Histogram   // events per batch
	BatchDuration  prometheus.Histogram   // seconds to apply a batch's user half
	ItemEvents     prometheus.Counter     // events whose item half was written (item windows)
	StoreErrors    prometheus.Counter     // failed batch applications (retried)
	Commits        *prometheus.CounterVec // by group and result
	Lag            *prometheus.GaugeVec   // by group, topic, partition: messages
	LagSeconds     *prometheus.GaugeVec   // by group, topic, partition
	LastEventTS    *prometheus.GaugeVec   // by partition: unix seconds of the newest processed event
	RefreshPending prometheus.Gauge       // users waiting for a rescore
	RefreshBatches prometheus.Histogram   // seconds to rescore and write one batch of users
	ListsWritten   prometheus.Counter     // user lists written
	Freshness      prometheus.Histogram   // seconds from event time to list written
	Ready          *prometheus.GaugeVec   // by role: 1 when ready; set by the processor from its readiness check
	Partitions     *prometheus.GaugeVec   // by group: partitions seen in the last interval
	Rebalances     *prometheus.CounterVec // by group
	ItemUpdates    *prometheus.CounterVec // repartition messages, by result: sent, written, invalid
	ItemFlush      prometheus.Histogram   // seconds to write the item owner's changed items
	_              struct{}
}

// NewMetrics registers the consumer metrics on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recstream_events_consumed_total", Help: "Valid events consumed, by event type.",
		}, []string{"type"}),
		Invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recstream_events_invalid_total", Help: "Invalid events sent to the dead-letter topic, by reason.",
		}, []string{"reason"}),
		DLQWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recstream_dlq_writes_total", Help: "Messages written to the dead-letter topic.",
		}),
		Fenced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recstream_events_fenced_total", Help: "Events skipped because an earlier run had applied them (replays after a crash or rebalance, or a stalled process writing a stale batch).",
		}),
		Batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recstream_batches_total", Help: "Ingest batches applied and committed.",
		}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "recstream_batch_events", Help: "Messages per ingest batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		ItemEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recstream_item_window_events_total", Help: "Events whose item half (item state, trending) was written, once per item window.",
		}),
		BatchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "recstream_batch_duration_seconds", Help: "Time to apply the user half of one ingest batch (its refresh requests are published while the next batch is applied; its item half and commit follow with the item window).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		StoreErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recstream_batch_errors_total", Help: "Failed batch applications (Redis or Kafka errors); the batch is retried.",
		}),
		Commits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recstream_commits_total", Help: "Offset commits, by consumer group and result.",
		}, []string{"group", "result"}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "recstream_consumer_lag_messages", Help: "High watermark minus committed offset, per partition.",
		}, []string{"group", "topic", "partition"}),
		LagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "recstream_consumer_lag_seconds", Help: "Age of the oldest unconsumed message per partition (0 when caught up).",
		}, []string{"group", "topic", "partition"}),
		LastEventTS: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "recstream_last_event_timestamp_seconds", Help: "Event time of the newest processed event, per partition.",
		}, []string{"partition"}),
		RefreshPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "recstream_refresh_backlog_users", Help: "Users waiting for a rescore in the scorer's debounce window.",
		}),
		RefreshBatches: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "recstream_rescore_duration_seconds", Help: "Time to rescore and write one batch of users.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		ListsWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recstream_lists_written_total", Help: "Per-user recommendation lists written.",
		}),
		Freshness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "recstream_freshness_seconds", Help: "Time from an event's timestamp to its user's list being written.",
			Buckets: []float64{.01, .025, .05, .1, .2, .3, .5, .75, 1, 2, 5, 10, 30, 60},
		}),
		Ready: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "recstream_ready", Help: "1 when the role is ready: Redis and the broker answer, it is not retrying a failed batch and its group has partitions assigned (the /readyz check, per role).",
		}, []string{"role"}),
		Partitions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "recstream_assigned_partitions", Help: "Partitions this process consumed from recently, by group.",
		}, []string{"group"}),
		Rebalances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recstream_rebalances_total", Help: "Changes in the group's partition assignment seen by the lag poller, by group.",
		}, []string{"group"}),
		ItemUpdates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recstream_item_updates_total", Help: "Messages of the repartition topic (ingest.item_owner), by result: sent (by the ingest role, acknowledged by Kafka), written (consumed by an item owner and their items written) or invalid (consumed by an item owner and skipped: only a bug makes one).",
		}, []string{"result"}),
		ItemFlush: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "recstream_item_flush_duration_seconds", Help: "Time for the item owner to write its changed items and their trending weights (once per ingest.item_flush_interval).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
	}
	for _, r := range []string{"sent", "written", "invalid"} {
		m.ItemUpdates.WithLabelValues(r)
	}
	for _, t := range event.AllTypes {
		m.Events.WithLabelValues(t.String())
	}
	for _, r := range event.Reasons {
		m.Invalid.WithLabelValues(string(r))
	}
	if reg != nil {
		reg.MustRegister(m.Events, m.Invalid, m.DLQWrites, m.Fenced, m.Batches, m.BatchSize, m.BatchDuration, m.ItemEvents,
			m.StoreErrors, m.Commits, m.Lag, m.LagSeconds, m.LastEventTS, m.RefreshPending, m.RefreshBatches,
			m.ListsWritten, m.Freshness, m.Ready, m.Partitions, m.Rebalances, m.ItemUpdates, m.ItemFlush)
	}
	return m
}

// initGroup creates a consumer group's labelled series at zero, so that
// they exist from the first scrape and rate() sees the first increment.
func (m *Metrics) initGroup(group string) {
	for _, r := range []string{"ok", "error"} {
		m.Commits.WithLabelValues(group, r)
	}
	m.Rebalances.WithLabelValues(group)
	m.Partitions.WithLabelValues(group)
}
