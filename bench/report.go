package bench

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/store"
)

func processorKeys(cfg config.Config) store.Keys { return store.Keys{Prefix: cfg.Redis.KeyPrefix} }

// Targets are the goals the benchmark reports against.
var Targets = struct {
	IngestPerSec, CmdsPerEvent, RescorePerSec, FreshnessP99Ms, UserBytes, RSSBytes float64
}{50000, 2, 5000, 500, 2048, 300 << 20}

func mark(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISSED"
}

// WriteTable prints the result as a human-readable table.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := r.Params
	fmt.Fprintf(tw, "machine\t%d CPUs, %s, redis %s, %s\n", r.Machine.CPUs, r.Machine.CPUModel, r.Machine.RedisVersion, r.Machine.GoVersion)
	fmt.Fprintf(tw, "params\t%d users, %d items, %d events, %d partitions, batch_max_events %d, scorer workers %d\n",
		p.Users, p.Items, p.Events, p.Partitions, p.BatchMaxEvents, p.ScorerWorkers)
	fmt.Fprintln(tw, "\t")
	fmt.Fprintln(tw, "figure\tvalue\ttarget\t")
	in := r.Ingest
	fmt.Fprintf(tw, "ingest, sustained\t%.0f events/s\t>= %.0f\t%s\n", in.EventsPerSec, Targets.IngestPerSec, mark(in.EventsPerSec >= Targets.IngestPerSec))
	fmt.Fprintf(tw, "client commands per event (EVALSHA...)\t%.3f\t<= %.0f\t%s\n", in.ClientCmdsPerEvent, Targets.CmdsPerEvent, mark(in.ClientCmdsPerEvent <= Targets.CmdsPerEvent))
	counted := "script calls included"
	if !r.Machine.ScriptCallsCounted {
		counted = "script calls NOT counted by this Redis"
	}
	fmt.Fprintf(tw, "Redis commands per event (commandstats, %s)\t%.2f\t<= %.0f\t%s\n", counted, in.RedisCmdsPerEvent, Targets.CmdsPerEvent, mark(in.RedisCmdsPerEvent <= Targets.CmdsPerEvent))
	fmt.Fprintf(tw, "Redis CPU per event\t%.1f µs\t\t\n", in.RedisCPUUsPerEvent)
	fmt.Fprintf(tw, "process CPU per event (embedded broker included)\t%.1f µs\t\t\n", in.ProcessCPUUsPerEvent)
	fmt.Fprintf(tw, "  of which Kafka client + broker (fetch-only pass)\t%.1f µs\t\t\n", in.KafkaOnlyCPUUsPerEvent)
	rs := r.Rescore
	fmt.Fprintf(tw, "rescoring\t%.0f users/s\t>= %.0f\t%s\n", rs.UsersPerSec, Targets.RescorePerSec, mark(rs.UsersPerSec >= Targets.RescorePerSec))
	fmt.Fprintf(tw, "client / Redis commands per rescore\t%.2f / %.2f\t\t\n", rs.ClientCmdsPerUser, rs.RedisCmdsPerUser)
	fmt.Fprintf(tw, "Redis / process CPU per rescore\t%.0f / %.0f µs\t\t\n", rs.RedisCPUUsPerUser, rs.ProcessCPUUsPerUser)
	if rs.EASEItems > 0 {
		fmt.Fprintf(tw, "  EASE model used, refreshed before the phase\t%d items, %.1f s\t\t\n", rs.EASEItems, rs.EASERefreshSec)
	}
	f := r.Freshness
	fmt.Fprintf(tw, "freshness at %.0f events/s offered (%.0f produced)\tp50 %.0f ms, p99 %.0f ms, p999 %.0f ms\tp99 <= %.0f ms\t%s\n",
		f.OfferedPerSec, f.ProducedPerSec, f.P50Ms, f.P99Ms, f.P999Ms, Targets.FreshnessP99Ms, mark(f.P99Ms <= Targets.FreshnessP99Ms && f.Samples > 0))
	fmt.Fprintf(tw, "  lists written, CPU under that load\t%.0f lists/s, process %.2f cores, Redis %.2f cores\t\t\n", f.ListsPerSec, f.ProcessCPU, f.RedisCPU)
	m := r.Memory
	fmt.Fprintf(tw, "Redis memory per active user (state: w, log, m, buy)\t%.0f B (p99 %.0f B; %.1f events/user)\t<= %.0f B\t%s\n",
		m.UserStateBytes, m.UserStateP99Bytes, m.EventsPerUser, Targets.UserBytes, mark(m.UserStateBytes <= Targets.UserBytes))
	fmt.Fprintf(tw, "  + the user's list\t%.0f B\t\t\n", m.UserListBytes)
	fmt.Fprintf(tw, "Redis memory per item (u, co, m)\t%.0f B (p99 %.0f B)\t\t\n", m.ItemStateBytes, m.ItemStateP99Bytes)
	fmt.Fprintf(tw, "used_memory after ingest / users\t%.0f B (%d users, %d items)\t\t\n", m.PerUserAll, in.Users, in.Items)
	if pr := m.Processor; pr != nil {
		fmt.Fprintf(tw, "processor peak RSS (recstream run alone, both roles, %d events, %d refreshes)\t%.0f MB (%.0f s)\t<= %.0f MB\t%s\n",
			pr.Events, pr.RefreshReqs, float64(pr.PeakRSSBytes)/(1<<20), pr.Seconds, Targets.RSSBytes/(1<<20), mark(float64(pr.PeakRSSBytes) <= Targets.RSSBytes))
		fmt.Fprintf(tw, "benchmark process peak RSS (embedded broker included)\t%.0f MB (heap in use %.0f MB)\t\t\n",
			float64(m.ProcessPeakRSSBytes)/(1<<20), float64(m.ProcessHeapBytes)/(1<<20))
	} else {
		fmt.Fprintf(tw, "process peak RSS (embedded broker included)\t%.0f MB (heap in use %.0f MB)\t<= %.0f MB\t%s\n",
			float64(m.ProcessPeakRSSBytes)/(1<<20), float64(m.ProcessHeapBytes)/(1<<20), Targets.RSSBytes/(1<<20), mark(float64(m.ProcessPeakRSSBytes) <= Targets.RSSBytes))
	}
	h := r.HSET
	if h.Unavailable != "" {
		fmt.Fprintf(tw, "redis-benchmark HSET -P 16\tunavailable: %s\t\t\n", h.Unavailable)
	} else {
		fmt.Fprintf(tw, "redis-benchmark HSET -P 16\t%.0f ops/s\t\t\n", h.OpsPerSec)
		fmt.Fprintf(tw, "  ingest / HSET, rescore / HSET\t%.3f, %.4f\t\t\n", h.IngestRatio, h.RescoreRatio)
	}
	return tw.Flush()
}
