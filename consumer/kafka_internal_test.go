package consumer

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/recstream/recstream/internal/kafkatest"
)

// lockedBuffer is a bytes.Buffer safe for kafka-go's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// kafka-go's error messages reach the log formatted, from readers and
// writers alike, against a broker that is not there.
func TestKafkaGoLogsFormatted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	var buf lockedBuffer
	k := Kafka{Brokers: []string{dead}, Logger: slog.New(slog.NewJSONHandler(&buf, nil))}
	r := k.reader("events", "g", 10)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := r.FetchMessage(ctx); err == nil {
		t.Fatal("fetched from a broker that is not there")
	}
	r.Close()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	n := 0
	for _, line := range lines {
		var rec struct {
			Msg    string `json:"msg"`
			Client string `json:"kafka_group"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if !strings.HasPrefix(rec.Msg, "kafka-go: ") {
			continue
		}
		n++
		if strings.Contains(rec.Msg, "%") || rec.Client != "g" {
			t.Errorf("unformatted or unnamed: %s", line)
		}
	}
	if n == 0 {
		t.Fatalf("no kafka-go message logged:\n%s", buf.String())
	}
	if !strings.Contains(buf.String(), dead) {
		t.Errorf("no message names the broker %s:\n%s", dead, buf.String())
	}
}

// A reader whose Close would block on a broker read (here a ListOffsets
// request the broker holds: kafka-go waits up to 10 s for it, whatever the
// context) is closed within CloseTimeout, and the log says so.
func TestCloseReaderWithinCloseTimeout(t *testing.T) {
	kf := kafkatest.Start(t, 1, "t")
	release := make(chan struct{})
	held := make(chan struct{}, 1)
	kf.ControlKey(kmsg.ListOffsets.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		kf.KeepControl()
		select {
		case held <- struct{}{}:
		default:
		}
		kf.SleepControl(func() { <-release })
		return nil, nil, false
	})
	t.Cleanup(func() { close(release) }) // before the cluster closes
	var logs lockedBuffer
	k := Kafka{Brokers: kf.Brokers, CloseTimeout: 300 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	r := k.partitionReader("t", 0, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.FetchMessage(ctx) //nolint:errcheck // starts the reader; ends with ctx
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("the reader never asked for offsets")
	}
	cancel()
	start := time.Now()
	k.closeReader(r, "kafka_topic", "t")
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("closeReader took %v with CloseTimeout 300ms", d)
	}
	if !strings.Contains(logs.String(), "closing the Kafka reader did not finish in time") {
		t.Fatalf("no warning logged; log:\n%s", logs.String())
	}
}
