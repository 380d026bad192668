package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/kafkatest"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/loadgen"
	"github.com/recstream/recstream/store"
)

// recstream experiment prints the report from the counters in Redis, as a
// table and as JSON.
func TestExperimentCommand(t *testing.T) {
	rs := redistest.Start(t)
	cfg := config.Default()
	cfg.Redis.Addrs = []string{rs.Addr}
	cfg.Scorer.Variants = []string{"a:50", "b:50"}
	st := store.New(rs.Client(t), store.OptionsFromConfig(cfg))
	x := loadgen.NewExperiment(loadgen.ExperimentOptions{Users: 200, Items: 100, CTR: []float64{0.05, 0.1}, Seed: 4, Start: time.Now().Add(-time.Hour), Step: 10 * time.Millisecond})
	var ops []store.Op
	for i, ev := range x.Events(5000) {
		ops = append(ops, store.Op{Offset: int64(i), User: ev.UserID, Item: ev.ItemID, Type: ev.Type, TS: ev.TS, Value: ev.Value, Shown: ev.Shown})
	}
	if _, err := st.Apply(context.Background(), 0, ops); err != nil {
		t.Fatal(err)
	}
	args := []string{"--set", "redis.addrs=" + rs.Addr, "--set", "scorer.variants=a:50,b:50", "--set", "log.level=error"}
	var out bytes.Buffer
	if err := cmdExperiment(args, &out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	t.Logf("\n%s", text)
	for _, want := range []string{"a (control)", "\n", "CTR", "Fixed horizon"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	lines := strings.Split(text, "\n")
	if len(lines) < 3 || !strings.Contains(lines[2], " b ") && !strings.HasPrefix(strings.TrimSpace(lines[2]), "b ") {
		t.Errorf("third line is not variant b: %q", lines[2])
	}
	out.Reset()
	if err := cmdExperiment(append(args, "--json"), &out); err != nil {
		t.Fatal(err)
	}
	var r struct {
		Control  string `json:"control"`
		Variants []struct {
			Variant     string  `json:"variant"`
			Impressions float64 `json:"impressions"`
		} `json:"variants"`
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil || r.Control != "a" || len(r.Variants) != 2 || r.Variants[1].Impressions == 0 {
		t.Errorf("json: %+v, %v\n%s", r, err, out.String())
	}
	if err := cmdExperiment([]string{"extra"}, &out); err == nil {
		t.Error("an argument was accepted")
	}
}

// recstream produce --experiment publishes a planted experiment that the
// decoder accepts: impressions of the named variants and interactions.
func TestProduceExperiment(t *testing.T) {
	kf := kafkatest.Start(t, 2, "events")
	if err := cmdProduce([]string{"--brokers", strings.Join(kf.Brokers, ","), "--experiment", "--variants", "x,y", "--ctr", "0.2,0.4", "--count", "300", "--format", "json"}); err != nil {
		t.Fatal(err)
	}
	msgs := kf.ReadAll(t, "events", 30*time.Second)
	if len(msgs) != 300 {
		t.Fatalf("%d messages, want 300", len(msgs))
	}
	d := event.Decoder{Variants: []string{"x", "y"}}
	types := map[event.Type]int{}
	for _, m := range msgs {
		ev, err := d.Decode(m.Value, m.Time)
		if err != nil {
			t.Fatalf("%s: %v", m.Value, err)
		}
		if string(m.Key) != ev.UserID {
			t.Fatalf("key %q for user %q", m.Key, ev.UserID)
		}
		types[ev.Type]++
	}
	if types[event.Impression] < 20 || types[event.Click] < 20 {
		t.Errorf("event types %v", types)
	}
	if err := cmdProduce([]string{"--brokers", strings.Join(kf.Brokers, ","), "--experiment", "--variants", "x,y", "--ctr", "0.2"}); err == nil {
		t.Error("one rate for two variants was accepted")
	}
}
