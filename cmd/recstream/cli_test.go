package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"gopkg.in/yaml.v3"

	"github.com/recstream/recstream/consumer"
	"github.com/recstream/recstream/internal/kafkatest"
)

// The test binary runs as recstream itself when RECSTREAM_TEST_MAIN is set,
// so that the exit codes and output of real command lines are checked.
func TestMain(m *testing.M) {
	if os.Getenv("RECSTREAM_TEST_MAIN") == "1" {
		os.Exit(runMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// recstream runs the command line and returns its exit code and output.
func recstream(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "RECSTREAM_TEST_MAIN=1")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), o.String(), e.String()
	}
	if err != nil {
		t.Fatalf("recstream %v: %v", args, err)
	}
	return 0, o.String(), e.String()
}

// Help exits 0 on stdout and describes the command with an example; a
// usage error exits 2 with the message once, on stderr.
func TestCLIConventions(t *testing.T) {
	for _, c := range commands {
		for _, help := range [][]string{{c.name, "--help"}, {c.name, "-h"}, {"help", c.name}} {
			code, out, errOut := recstream(t, help...)
			if code != 0 || errOut != "" {
				t.Errorf("recstream %s: exit %d, stderr %q", strings.Join(help, " "), code, errOut)
			}
			ex := out[strings.Index(out, "Examples:\n")+1:]
			if !strings.Contains(ex, "recstream "+c.name) {
				t.Errorf("recstream %s: no example of the command:\n%s", strings.Join(help, " "), out)
			}
			for _, want := range []string{"Usage: recstream " + c.name, c.about[:40], "Examples:\n"} {
				if !strings.Contains(out, want) {
					t.Errorf("recstream %s: output lacks %q:\n%s", strings.Join(help, " "), want, out)
				}
			}
		}
		code, out, errOut := recstream(t, c.name, "--no-such-flag")
		if code != 2 || out != "" || strings.Count(errOut, "no-such-flag") != 1 || !strings.Contains(errOut, "recstream "+c.name+" --help") {
			t.Errorf("recstream %s --no-such-flag: exit %d, stdout %q, stderr %q", c.name, code, out, errOut)
		}
	}
	for _, c := range []struct {
		args []string
		code int
		in   string // expected in stdout (code 0) or stderr
	}{
		{nil, 2, "Usage:"},
		{[]string{"help"}, 0, "recstream demo"},
		{[]string{"--help"}, 0, "recstream produce"},
		{[]string{"nosuch"}, 2, `unknown command "nosuch"`},
		{[]string{"help", "nosuch"}, 2, `unknown command "nosuch"`},
		{[]string{"run", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"demo", "--rate", "fast"}, 2, `invalid value "fast" for flag -rate`},
		{[]string{"demo", "--warmup", "-1"}, 2, "must not be negative"},
		{[]string{"forget"}, 2, "want exactly one user id"},
		{[]string{"config", "--set", "admin.lag_interval=0s"}, 1, "admin.lag_interval"},
		{[]string{"version"}, 0, "recstream dev"},
	} {
		code, out, errOut := recstream(t, c.args...)
		got := errOut
		if c.code == 0 {
			got = out
		}
		if code != c.code || !strings.Contains(got, c.in) {
			t.Errorf("recstream %v: exit %d, want %d with %q\nstdout: %s\nstderr: %s", c.args, code, c.code, c.in, out, errOut)
		}
		if c.code == 2 && strings.Count(errOut, c.in) != 1 {
			t.Errorf("recstream %v: the error is printed %d times:\n%s", c.args, strings.Count(errOut, c.in), errOut)
		}
	}
}

// demo --warmup 0 --rate 0 publishes nothing; --warmup N publishes N; a
// rate publishes about that many per second.
func TestDemoEvents(t *testing.T) {
	kf := kafkatest.Start(t, 2, "events")
	w := consumer.Kafka{Brokers: kf.Brokers}.NewWriter()
	w.Topic = "events"
	defer w.Close()
	var calls atomic.Int64
	next := func() (kafka.Message, error) {
		n := calls.Add(1)
		return kafka.Message{Key: []byte("u"), Value: []byte{byte(n)}}, nil
	}
	published := func() int64 {
		_, high := kf.Offsets(t, "events")
		var n int64
		for _, h := range high {
			n += h
		}
		return n
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	if err := demoEvents(ctx, w, next, 0, 0); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); calls.Load() != 0 || took > time.Second {
		t.Fatalf("--warmup 0 --rate 0: %d events generated, returned after %s", calls.Load(), took)
	}

	if err := demoEvents(ctx, w, next, 1200, 0); err != nil {
		t.Fatal(err)
	}
	if n := published(); n != 1200 {
		t.Fatalf("--warmup 1200 --rate 0: %d events published", n)
	}

	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer rcancel()
	if err := demoEvents(rctx, w, next, 0, 100); err != nil && rctx.Err() == nil {
		t.Fatal(err)
	}
	if n := published() - 1200; n < 100 || n > 260 {
		t.Fatalf("--warmup 0 --rate 100 for 2 s: %d events published, want about 200", n)
	}
}

// The commands docker-compose.yml and the Kubernetes manifests give the
// image are command lines this binary accepts: the subcommand exists and
// every flag is defined with a valid value (checked by running each with
// --help appended, which exits 0 only when everything before it parsed).
func TestDeployCommandsParse(t *testing.T) {
	var compose struct {
		Services map[string]struct {
			Command []string `yaml:"command"`
			Build   struct {
				Dockerfile string `yaml:"dockerfile"`
			} `yaml:"build"`
		} `yaml:"services"`
	}
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	lines := map[string][]string{}
	for name, s := range compose.Services {
		if s.Build.Dockerfile == "deploy/Dockerfile" {
			lines["docker-compose.yml "+name] = s.Command
		}
	}
	for _, f := range []string{"ingest.yaml", "score.yaml"} {
		b, err := os.ReadFile("../../deploy/k8s/" + f)
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^\s*args: (\[.*\])`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("deploy/k8s/%s: no args", f)
		}
		var args []string
		if err := yaml.Unmarshal(m[1], &args); err != nil {
			t.Fatal(err)
		}
		lines["deploy/k8s/"+f] = args
	}
	if len(lines) < 5 {
		t.Fatalf("only %d command lines found: %v", len(lines), lines)
	}
	for where, args := range lines {
		if len(args) == 0 {
			t.Errorf("%s: no command", where)
			continue
		}
		code, _, errOut := recstream(t, append(append([]string(nil), args...), "--help")...)
		if code != 0 {
			t.Errorf("%s: recstream %s: exit %d\n%s", where, strings.Join(args, " "), code, errOut)
		}
	}
}
