package processor_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/store"
)

// dupHeader marks the copies the duplicator appends to the repartition
// topic (the item owners ignore headers), so that it does not copy them
// again.
const dupHeader = "test-duplicate"

// duplicator appends a copy of every message of the repartition topic
// (except its own copies) to the same partition, as soon as it reads it:
// each message is delivered twice, the copy after the original and
// mostly after later messages of the partition, sometimes in the same
// item-owner batch as the original.
type duplicator struct {
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	pos      []atomic.Int64 // per partition: the next offset to read
	copies   atomic.Int64   // messages copied
	contribs atomic.Int64   // contributions in them
	err      atomic.Pointer[error]
}

func startDuplicator(t *testing.T, e *faultEnv) *duplicator {
	t.Helper()
	topic := e.cfg.Kafka.ItemUpdatesTopic
	ctx, cancel := context.WithCancel(context.Background())
	d := &duplicator{cancel: cancel, pos: make([]atomic.Int64, faultPartitions)}
	tr := &kafka.Transport{}
	c := &kafka.Client{Addr: kafka.TCP(e.kf.Brokers...), Timeout: 10 * time.Second, Transport: tr}
	fail := func(err error) {
		d.err.CompareAndSwap(nil, &err)
	}
	for p := 0; p < faultPartitions; p++ {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			r := kafka.NewReader(kafka.ReaderConfig{
				Brokers: e.kf.Brokers, Topic: topic, Partition: p,
				MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 50 * time.Millisecond,
			})
			defer r.Close()
			if err := r.SetOffset(0); err != nil {
				fail(err)
				return
			}
			for {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					if ctx.Err() == nil {
						fail(fmt.Errorf("reading %s/%d: %w", topic, p, err))
					}
					return
				}
				if len(m.Headers) == 0 {
					us, err := store.DecodeItemUpdates(m.Value)
					if err != nil {
						fail(fmt.Errorf("%s/%d at %d: %w", topic, p, m.Offset, err))
						return
					}
					rec := kafka.Record{Key: kafka.NewBytes(m.Key), Value: kafka.NewBytes(m.Value), Headers: []kafka.Header{{Key: dupHeader, Value: []byte(fmt.Sprint(m.Offset))}}}
					res, err := c.Produce(ctx, &kafka.ProduceRequest{Topic: topic, Partition: p, RequiredAcks: kafka.RequireAll, Records: kafka.NewRecordReader(rec)})
					if err == nil {
						err = res.Error
					}
					if err != nil {
						if ctx.Err() == nil {
							fail(fmt.Errorf("copying %s/%d at %d: %w", topic, p, m.Offset, err))
						}
						return
					}
					d.copies.Add(1)
					for _, u := range us {
						d.contribs.Add(int64(len(u.Contribs)))
					}
				}
				d.pos[p].Store(m.Offset + 1)
			}
		}()
	}
	t.Cleanup(func() { d.stop(); tr.CloseIdleConnections() })
	return d
}

// caughtUp reports whether the duplicator has read up to high.
func (d *duplicator) caughtUp(high map[int]int64) bool {
	for p, h := range high {
		if d.pos[p].Load() < h {
			return false
		}
	}
	return true
}

func (d *duplicator) stop() {
	d.cancel()
	d.wg.Wait()
}

func (d *duplicator) failed() error {
	if err := d.err.Load(); err != nil {
		return *err
	}
	return nil
}

// resetGroup commits offset 0 on every partition of topic for group, which
// must have no members (a simple commit, generation -1).
func resetGroup(t *testing.T, e *faultEnv, group, topic string) {
	t.Helper()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(e.kf.Brokers...), Timeout: 10 * time.Second, Transport: tr}
	var commits []kafka.OffsetCommit
	for p := 0; p < faultPartitions; p++ {
		commits = append(commits, kafka.OffsetCommit{Partition: p, Offset: 0})
	}
	var last error
	waitFor(t, 20*time.Second, "resetting "+group+"'s offsets", func() bool {
		res, err := c.OffsetCommit(context.Background(), &kafka.OffsetCommitRequest{
			GroupID: group, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{topic: commits},
		})
		if err == nil {
			for _, ps := range res.Topics {
				for _, p := range ps {
					err = errors.Join(err, p.Error)
				}
			}
		}
		if last = err; err != nil {
			return false
		}
		got := committedOffsets(e.kf, group, topic)
		return got != nil && len(got) == 0
	})
	if last != nil {
		t.Fatal(last)
	}
}

// TestFaultItemOwnerDuplicateUpdates delivers every repartition message
// twice, and then everything a third time. `recstream run` (every role,
// ingest.item_owner) ingests the first half of the log; a duplicator then
// appends a copy of each message of the repartition topic to its
// partition, the messages already written by the item owner first, then
// each new one as the second half of the log streams in (the copies land
// after later messages of their partition, some in the same flush as the
// original). The item owner must skip every copied contribution
// (recstream_item_owner_contributions_total{result="skipped"} at least the
// copies' contributions). Then the process stops, the item-owner group's
// committed offsets are reset to 0 and an item owner alone (run.roles
// items) reads the whole topic again: it must apply nothing and skip every
// contribution. The final state equals the reference.
func TestFaultItemOwnerDuplicateUpdates(t *testing.T) {
	t.Parallel()
	reference(t)
	e := newFaultEnv(t)
	group, topic := e.cfg.Kafka.ItemOwnerGroup, e.cfg.Kafka.ItemUpdatesTopic
	p := e.startAdminSubprocess(t)
	e.produceChunk(t, 0, 2)
	e.waitCommittedTo(t, p.subprocess, highOf(t, e, e.cfg.Kafka.EventsTopic), 60*time.Second, "the first half of the log committed")
	e.itemsCommittedTo(t, p.subprocess, highOf(t, e, topic), 60*time.Second, "the item owner to commit the first half's updates")
	before := mustScrapeSeries(t, p)
	_, firstHalf := e.kf.Offsets(t, topic)

	d := startDuplicator(t, e)
	e.produceChunk(t, 1, 2)
	e.waitDoneWhileRunning(t, p.subprocess, 120*time.Second)
	waitFor(t, 60*time.Second, "the duplicator to copy every update", func() bool {
		if err := d.failed(); err != nil {
			t.Fatalf("duplicator: %v", err)
		}
		return d.caughtUp(highOf(t, e, topic))
	})
	d.stop()
	if err := d.failed(); err != nil {
		t.Fatalf("duplicator: %v", err)
	}
	_, high := e.kf.Offsets(t, topic)
	e.itemsCommittedTo(t, p.subprocess, high, 60*time.Second, "the item owner to commit every update and copy")
	after := mustScrapeSeries(t, p)
	skipped := after[ownerSkipped] - before[ownerSkipped]
	t.Logf("%d messages copied (%d of them of the first half, written before), holding %d contributions; the topic holds %d messages; the item owner applied %v contributions and skipped %v after the copies began, %v writes refused",
		d.copies.Load(), sum(firstHalf), d.contribs.Load(), sum(high), after[ownerApplied]-before[ownerApplied], skipped, after[ownerRefused])
	if skipped < float64(d.contribs.Load()) {
		t.Errorf("the item owner skipped %v contributions; the copies held %d", skipped, d.contribs.Load())
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err, ok := p.wait(30 * time.Second); !ok || err != nil {
		t.Fatalf("exit %v (exited %v) after SIGTERM\n%s", err, ok, p.log.String())
	}
	e.checkAgainstReference(t)

	// Everything again: the group's offsets back to 0, a new item owner.
	var total int64
	for _, m := range e.kf.ReadAll(t, topic, 30*time.Second) {
		us, err := store.DecodeItemUpdates(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range us {
			total += int64(len(u.Contribs))
		}
	}
	resetGroup(t, e, group, topic)
	q := e.startAdminSubprocess(t, "run.roles=items")
	e.itemsCommittedTo(t, q.subprocess, high, 60*time.Second, "the new item owner to commit the whole topic again")
	m := mustScrapeSeries(t, q)
	t.Logf("after the reset the new item owner read %d contributions: %v applied, %v skipped, %v items written", total, m[ownerApplied], m[ownerSkipped], m[ownerWritten])
	if m[ownerApplied] != 0 || m[ownerSkipped] < float64(total) {
		t.Errorf("reading the topic again applied %v contributions and skipped %v; want 0 and %d", m[ownerApplied], m[ownerSkipped], total)
	}
	if err := q.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err, ok := q.wait(30 * time.Second); !ok || err != nil {
		t.Fatalf("exit %v (exited %v) after SIGTERM\n%s", err, ok, q.log.String())
	}
	e.checkAgainstReference(t)
}
