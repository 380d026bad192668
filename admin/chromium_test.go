package admin_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/kafkatest"
	"github.com/recstream/recstream/internal/processortest"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/loadgen"
	"github.com/recstream/recstream/processor"
	"github.com/recstream/recstream/store"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "write the status page screenshot to docs/status-page.png")

// TestStatusPageInChromium runs a processor on kfake and a real Redis, feeds
// it synthetic events (and a few invalid ones), then loads the status page
// with a user lookup in headless Chromium: the rendered DOM must show the
// user's current list as stored in Redis, the partitions and the dead
// letters. It also takes a screenshot (docs/status-page.png with
// -update-screenshot).
func TestStatusPageInChromium(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not on PATH: install the Debian package \"chromium\" (apt-get install -y chromium); scripts/test.sh installs it")
	}
	cfg := config.Default()
	kf := kafkatest.Start(t, 4, cfg.Topics()...)
	rs := redistest.Start(t)
	cfg.Kafka.Brokers = kf.Brokers
	cfg.Kafka.CreateTopics = false
	cfg.Kafka.MaxWait = 50 * time.Millisecond
	cfg.Redis.Addrs = []string{rs.Addr}
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Admin.AnonymousUserLookup = true
	cfg.Admin.LagInterval = 200 * time.Millisecond
	cfg.Ingest.BatchMaxWait = 10 * time.Millisecond
	cfg.Scorer.Debounce = 10 * time.Millisecond
	cfg.Scorer.ExcludeSeen = false
	cfg.Run.ShutdownTimeout = time.Second
	reg := prometheus.NewRegistry()
	p, addr, _ := processortest.Run(t, cfg, processor.Deps{Registerer: reg, Gatherer: reg, Version: "test"})
	ctx := context.Background()

	gen := loadgen.New(loadgen.Options{Users: 60, Items: 80, Clusters: 4, Seed: 7})
	msgs := make([]kafka.Message, 0, 1510)
	for i := 0; i < 1500; i++ {
		ev := gen.Next()
		b, err := event.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, kafka.Message{Key: []byte(ev.UserID), Value: b})
	}
	for i := 0; i < 7; i++ {
		msgs = append(msgs, kafka.Message{Key: []byte("bad"), Value: []byte(`{"user_id":"u1","item_id":`)})
	}
	for i := 0; i < 3; i++ {
		msgs = append(msgs, kafka.Message{Key: []byte("bad"), Value: []byte(`{"user_id":"u1","item_id":"i1","type":"wave"}`)})
	}
	kf.Produce(t, cfg.Kafka.EventsTopic, msgs...)

	user := loadgen.UserID(1)
	var list store.List
	deadline := time.Now().Add(30 * time.Second)
	for {
		l, found, err := p.Store.ReadList(ctx, user)
		if err == nil && found && len(l.Items) > 0 && p.Ready(ctx) == nil && caughtUp(p) {
			list = l
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no list for %s / not caught up: found %v err %v ready %v lag %+v", user, found, err, p.Ready(ctx), p.Lag.Snapshot())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(3 * cfg.Admin.LagInterval) // a lag poll after the last commit, for the rates

	shot := t.TempDir() + "/status-page.png"
	url := fmt.Sprintf("http://%s/?user=%s", addr, user)
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
		"--user-data-dir="+t.TempDir(), "--window-size=1280,1500", "--screenshot="+shot, "--dump-dom", url)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cctx, ccancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer ccancel()
	if err := runCtx(cctx, cmd); err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	dom := stdout.String()
	if !strings.Contains(dom, `id="list"`) {
		t.Fatalf("the rendered page has no list table:\n%s", dom)
	}
	listHTML := dom[strings.Index(dom, `id="list"`):]
	listHTML = listHTML[:strings.Index(listHTML, "</table>")]
	for i, it := range list.Items {
		if i >= 5 {
			break
		}
		if !strings.Contains(listHTML, ">"+it.Item+"<") || !strings.Contains(listHTML, htmlEscape(it.Reason)) {
			t.Errorf("list row %d (%s, %q) not in the rendered list", i+1, it.Item, it.Reason)
		}
	}
	for _, want := range []string{"Current list", "Recent events of " + user, ">malformed<", ">unknown_type<", "recstream-ingest", "ready"} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered page lacks %q", want)
		}
	}
	b, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if r := img.Bounds(); r.Dx() < 1000 || r.Dy() < 1000 {
		t.Errorf("screenshot is %v", r)
	}
	if *updateScreenshot {
		if err := os.WriteFile("../docs/status-page.png", b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func caughtUp(p *processor.Processor) bool {
	snap := p.Lag.Snapshot()
	if len(snap.Partitions) == 0 {
		return false
	}
	for _, ps := range snap.Partitions {
		if ps.Lag != 0 {
			return false
		}
	}
	return true
}

func htmlEscape(s string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;")
	return r.Replace(s)
}

// runCtx runs cmd and kills it when ctx ends.
func runCtx(ctx context.Context, cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return ctx.Err()
	}
}
