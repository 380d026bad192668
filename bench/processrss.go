package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/config"
)

// ProcessorRSS is the peak RSS of `recstream run` alone, in its own
// process, while it builds the state of the ingest phase's events (both
// roles, under its own key prefix) and scores every user it was asked to.
type ProcessorRSS struct {
	PeakRSSBytes int64   `json:"peak_rss_bytes"` // VmHWM of the child
	Seconds      float64 `json:"seconds"`        // from start to everything committed
	Events       int     `json:"events"`
	RefreshReqs  int64   `json:"refresh_requests"`
}

// Topic and prefix of the processor-alone phase.
const (
	rssRefresh = "bench.refresh.rss"
	rssItems   = "bench.item-updates.rss"
	rssPrefix  = "rss:"
)

// runProcessorRSS starts bin (the recstream binary) with `run` against the
// benchmark's broker and Redis: its own groups, refresh topic and key
// prefix, the same model. It waits until the child has committed every
// event and every refresh request, then stops it with SIGTERM and reads the
// peak RSS it reached (/proc/<pid>/status VmHWM, read while it runs).
func runProcessorRSS(ctx context.Context, bin string, cfg config.Config, events int, out *ProcessorRSS) error {
	cfg.Redis.KeyPrefix = rssPrefix
	cfg.Kafka.IngestGroup = "bench-rss-ingest"
	cfg.Kafka.ScoreGroup = "bench-rss-score"
	cfg.Kafka.RefreshTopic = rssRefresh
	cfg.Kafka.ControlTopic = ""
	cfg.Kafka.ItemOwnerGroup = "bench-rss-items"
	cfg.Kafka.ItemUpdatesTopic = rssItems
	cfg.Run.Roles = withItemOwner(cfg, []string{config.RoleIngest, config.RoleScore})
	y, err := cfg.YAML()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "recstream-bench-rss")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "recstream.yaml")
	if err := os.WriteFile(file, y, 0o600); err != nil {
		return err
	}
	var logs strings.Builder
	cmd := exec.CommandContext(ctx, bin, "run", "--config", file)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.Env = withoutRecstreamEnv(os.Environ())
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s run: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
	}()

	client := &kafka.Client{Addr: kafka.TCP(cfg.Kafka.Brokers...), Timeout: 10 * time.Second}
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	var peak int64
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	deadline := start.Add(30 * time.Minute)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-exited:
			return fmt.Errorf("recstream run exited early: %v\n%s", err, logs.String())
		case <-tick.C:
		}
		if v := statusField(status, "VmHWM"); v > peak {
			peak = v
		}
		evDone, _, err := groupDone(ctx, client, cfg.Kafka.IngestGroup, cfg.Kafka.EventsTopic)
		if err != nil || !evDone {
			if time.Now().After(deadline) {
				return fmt.Errorf("recstream run did not apply the events in 30 minutes")
			}
			continue
		}
		rfDone, reqs, err := groupDone(ctx, client, cfg.Kafka.ScoreGroup, rssRefresh)
		if err == nil && rfDone && reqs > 0 {
			out.RefreshReqs = reqs
			break
		}
	}
	out.Seconds = time.Since(start).Seconds()
	if v := statusField(status, "VmHWM"); v > peak {
		peak = v
	}
	out.PeakRSSBytes = peak
	out.Events = events
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
	}
	return nil
}

// groupDone reports whether group committed every message of topic, and
// how many messages the topic holds.
func groupDone(ctx context.Context, c *kafka.Client, group, topic string) (bool, int64, error) {
	meta, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(meta.Topics) != 1 {
		return false, 0, err
	}
	var reqs []kafka.OffsetRequest
	var parts []int
	for _, p := range meta.Topics[0].Partitions {
		reqs = append(reqs, kafka.LastOffsetOf(p.ID))
		parts = append(parts, p.ID)
	}
	lo, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return false, 0, err
	}
	of, err := c.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		return false, 0, err
	}
	committed := map[int]int64{}
	for _, p := range of.Topics[topic] {
		committed[p.Partition] = p.CommittedOffset
	}
	var total int64
	done := true
	for _, p := range lo.Topics[topic] {
		total += p.LastOffset
		if committed[p.Partition] < p.LastOffset {
			done = false
		}
	}
	return done, total, nil
}

// withoutRecstreamEnv drops RECSTREAM_* variables, so that the child runs
// exactly the configuration file it is given.
func withoutRecstreamEnv(env []string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, "RECSTREAM_") {
			out = append(out, e)
		}
	}
	return out
}
