package processor_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/kafkatest"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/processor"
)

// documentedACL returns the ACL rule for user of docs/security.md (the
// line starting "ACL SETUSER <user> ") as ACL SETUSER arguments, with
// password.
func documentedACL(t *testing.T, user, password string) []any {
	t.Helper()
	b, err := os.ReadFile("../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	prefix := "ACL SETUSER " + user + " "
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, prefix) {
			var args []any
			for _, f := range strings.Fields(line) {
				if f == ">PASSWORD" {
					f = ">" + password
				}
				args = append(args, f)
			}
			return args
		}
	}
	t.Fatalf("docs/security.md has no line starting with %q", prefix)
	return nil
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestRedisTLSAndACL runs the pipeline and an erasure over TLS as the ACL
// user documented in docs/security.md.
func TestRedisTLSAndACL(t *testing.T) {
	pk := newTestPKI(t)
	tlsPort := freePort(t)
	rs := redistest.Start(t,
		"--tls-port", strconv.Itoa(tlsPort),
		"--tls-cert-file", pk.CertFile,
		"--tls-key-file", pk.KeyFile,
		"--tls-ca-cert-file", pk.CAFile,
		"--tls-auth-clients", "no",
	)
	ctx := context.Background()
	admin := rs.Client(t)
	const password = "s3cret-acl-pass"
	if err := admin.Do(ctx, documentedACL(t, "recstream", password)...).Err(); err != nil {
		t.Fatalf("creating the documented ACL user: %v", err)
	}
	if err := admin.Do(ctx, "ACL", "SETUSER", "default", "off").Err(); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(t.TempDir(), "redis-password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	def := config.Default()
	kf := kafkatest.Start(t, 2, def.Topics()...)
	tlsAddr := "127.0.0.1:" + strconv.Itoa(tlsPort)
	cfg := testConfig(kf.Brokers, tlsAddr)
	cfg.Redis.Username = "recstream"
	cfg.Redis.PasswordFile = pwFile
	cfg.Redis.TLS = config.TLSConfig{Enabled: true, CAFile: pk.CAFile}
	cfg.Privacy.ForgetSettle = 0
	p, _ := runProcessor(t, cfg)
	pl := &pipeline{t: t, kf: kf, p: p, cfg: cfg}
	now := time.Now().UnixMilli()
	pl.produce(
		event.Event{UserID: "acl-a", ItemID: "i1", Type: event.Click, TS: now},
		event.Event{UserID: "acl-a", ItemID: "i2", Type: event.Purchase, TS: now + 1},
		event.Event{UserID: "acl-b", ItemID: "i1", Type: event.Click, TS: now + 2},
		event.Event{UserID: "acl-b", ItemID: "i3", Type: event.Click, TS: now + 3},
	)
	waitFor(t, 15*time.Second, "lists written over TLS as the ACL user", func() bool {
		_, a := pl.list("acl-a")
		_, b := pl.list("acl-b")
		return a && b
	})
	out, err := p.Forget(ctx, "acl-a", "test", "", nil)
	if err != nil {
		t.Fatalf("erasure as the ACL user: %v", err)
	}
	if out.KeysDeleted < 3 || out.Swept == 0 || out.AuditID == "" { // state, meta and list at least
		t.Errorf("erasure: %+v", out)
	}

	// The ACL user over TLS: refused outside the prefix and the commands.
	roots := x509.NewCertPool()
	pem, _ := os.ReadFile(pk.CAFile)
	roots.AppendCertsFromPEM(pem)
	user := redis.NewClient(&redis.Options{Addr: tlsAddr, Username: "recstream", Password: password, TLSConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}})
	defer user.Close()
	if err := user.Set(ctx, "rs:probe", "1", time.Second).Err(); err != nil {
		t.Errorf("write under the prefix: %v", err)
	}
	if err := user.Set(ctx, "other:x", "1", 0).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("write outside the prefix: %v, want NOPERM", err)
	}
	if err := user.FlushAll(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("FLUSHALL: %v, want NOPERM", err)
	}
	if err := user.Keys(ctx, "*").Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("KEYS: %v, want NOPERM", err)
	}

	// Wrong password, and a plain connection to the TLS port, fail start-up.
	bad := cfg
	bad.Redis.PasswordFile = ""
	bad.Redis.Password = "wrong"
	bp, err := processor.New(bad, processor.Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	err = bp.Run(rctx)
	t.Logf("wrong password: start-up ended after %s: %v", time.Since(start).Round(time.Millisecond), err)
	if !errors.Is(err, processor.ErrRedisAuth) || time.Since(start) > 5*time.Second {
		t.Errorf("wrong password: %v after %s, want ErrRedisAuth at once", err, time.Since(start))
	}
}
