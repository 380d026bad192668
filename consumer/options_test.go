package consumer_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/recstream/recstream/consumer"
)

// The consumers take their sizes and waits from config and have no
// defaults of their own: a zero is an error naming the option.
func TestConsumersRejectZeroSizesAndWaits(t *testing.T) {
	ingest := consumer.IngestOptions{BatchMaxEvents: 10, BatchMaxWait: time.Millisecond, ItemWindowEvents: 10, ShutdownTimeout: time.Second}
	score := consumer.ScoreOptions{Workers: 1, ShutdownTimeout: time.Second}
	cat := consumer.CatalogWriterOptions{BatchMax: 10, BatchWait: time.Millisecond, ListTTL: time.Hour, ShutdownTimeout: time.Second}
	if _, err := consumer.NewIngest(ingest, nil); err != nil {
		t.Fatalf("ingest: %v", err)
	}
	if _, err := consumer.NewScore(score, nil); err != nil {
		t.Fatalf("score: %v", err)
	}
	if _, err := consumer.NewCatalogWriter(cat, nil); err != nil {
		t.Fatalf("catalog writer: %v", err)
	}
	cases := []struct {
		name string
		new  func() error
	}{
		{"BatchMaxEvents", func() error { o := ingest; o.BatchMaxEvents = 0; _, err := consumer.NewIngest(o, nil); return err }},
		{"BatchMaxWait", func() error { o := ingest; o.BatchMaxWait = 0; _, err := consumer.NewIngest(o, nil); return err }},
		{"ItemWindowEvents", func() error { o := ingest; o.ItemWindowEvents = 0; _, err := consumer.NewIngest(o, nil); return err }},
		{"ShutdownTimeout", func() error { o := ingest; o.ShutdownTimeout = 0; _, err := consumer.NewIngest(o, nil); return err }},
		{"Workers", func() error { o := score; o.Workers = 0; _, err := consumer.NewScore(o, nil); return err }},
		{"Debounce", func() error { o := score; o.Debounce = -1; _, err := consumer.NewScore(o, nil); return err }},
		{"ListTTL", func() error { o := cat; o.ListTTL = 0; _, err := consumer.NewCatalogWriter(o, nil); return err }},
		{"BatchMax", func() error { o := cat; o.BatchMax = 0; _, err := consumer.NewCatalogWriter(o, nil); return err }},
	}
	for _, c := range cases {
		if err := c.new(); err == nil || !strings.Contains(err.Error(), c.name) {
			t.Errorf("zero %s: error %v, want one naming it", c.name, err)
		}
	}
}

// The lag monitor takes its poll interval and lag threshold from config
// too: a zero panics naming the option.
func TestLagMonitorRejectsZeroIntervalAndThreshold(t *testing.T) {
	ok := consumer.LagMonitorOptions{Interval: time.Second, LagThreshold: time.Second}
	consumer.NewLagMonitor(ok)
	for name, unset := range map[string]func(o *consumer.LagMonitorOptions){
		"Interval":     func(o *consumer.LagMonitorOptions) { o.Interval = 0 },
		"LagThreshold": func(o *consumer.LagMonitorOptions) { o.LagThreshold = 0 },
	} {
		o := ok
		unset(&o)
		got := func() (msg string) {
			defer func() { msg = fmt.Sprint(recover()) }()
			consumer.NewLagMonitor(o)
			return ""
		}()
		if !strings.Contains(got, name) {
			t.Errorf("zero %s: NewLagMonitor panicked with %q, want one naming it", name, got)
		}
	}
}
