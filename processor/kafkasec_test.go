package processor_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/consumer"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/kafkatest"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/processor"
)

// testPKI is a throw-away CA and a server certificate for 127.0.0.1 and
// localhost, written as PEM files.
type testPKI struct {
	CAFile, CertFile, KeyFile string
	Server                    tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "recstream test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pk := testPKI{
		CAFile:   write("ca.pem", "CERTIFICATE", caDER),
		CertFile: write("server.pem", "CERTIFICATE", der),
		KeyFile:  write("server-key.pem", "EC PRIVATE KEY", keyDER),
	}
	pk.Server, err = tls.LoadX509KeyPair(pk.CertFile, pk.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return pk
}

// TestKafkaTLSAndSASL runs the pipeline against a kfake broker that serves
// only TLS (a test CA) and requires SASL, once per mechanism, and checks
// that wrong credentials or an unknown CA stop start-up with ErrKafkaAuth.
func TestKafkaTLSAndSASL(t *testing.T) {
	pk := newTestPKI(t)
	const pass = "correct horse"
	def := config.Default()
	kf := kafkatest.StartOpts(t, 2, def.Topics(),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{pk.Server}, MinVersion: tls.VersionTLS12}),
		kfake.EnableSASL(),
		kfake.Superuser(config.SASLPlain, "plain-user", pass),
		kfake.Superuser(config.SASLScramSHA256, "scram256-user", pass),
		kfake.Superuser(config.SASLScramSHA512, "scram512-user", pass),
	)
	rs := redistest.Start(t)
	secure := func(mech, user, password string) config.Config {
		cfg := testConfig(kf.Brokers, rs.Addr)
		cfg.Kafka.TLS = config.TLSConfig{Enabled: true, CAFile: pk.CAFile}
		cfg.Kafka.SASL = config.SASLConfig{Mechanism: mech, Username: user, Password: password}
		return cfg
	}
	for i, c := range []struct{ mech, user string }{
		{config.SASLPlain, "plain-user"},
		{config.SASLScramSHA256, "scram256-user"},
		{config.SASLScramSHA512, "scram512-user"},
	} {
		t.Run(c.mech, func(t *testing.T) {
			cfg := secure(c.mech, c.user, pass)
			// Each mechanism its own groups and users, on one broker.
			cfg.Kafka.IngestGroup = "ingest-" + c.user
			cfg.Kafka.ScoreGroup = "score-" + c.user
			cfg.Kafka.ItemOwnerGroup = "items-" + c.user
			cfg.Redis.KeyPrefix = c.user + ":"
			p, _ := runProcessor(t, cfg)
			tc, err := processor.TLSConfig(cfg.Kafka.TLS)
			if err != nil {
				t.Fatal(err)
			}
			m, err := processor.SASLMechanism(cfg.Kafka.SASL)
			if err != nil {
				t.Fatal(err)
			}
			w := consumer.Kafka{Brokers: kf.Brokers, Transport: &kafka.Transport{TLS: tc, SASL: m}}.NewWriter()
			defer w.Close()
			user := "secure-" + c.user
			b, _ := event.Encode(event.Event{UserID: user, ItemID: "i" + string(rune('0'+i)), Type: event.Click, TS: time.Now().UnixMilli()})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := w.WriteMessages(ctx, kafka.Message{Topic: cfg.Kafka.EventsTopic, Key: []byte(user), Value: b}); err != nil {
				t.Fatalf("producing over TLS with %s: %v", c.mech, err)
			}
			waitFor(t, 15*time.Second, "the list written through a TLS+"+c.mech+" pipeline", func() bool {
				_, ok, err := p.Store.ReadList(context.Background(), user)
				return err == nil && ok
			})
		})
	}

	startErr := func(cfg config.Config) error {
		t.Helper()
		p, err := processor.New(cfg, processor.Deps{Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		start := time.Now()
		err = p.Run(ctx)
		t.Logf("start-up ended after %s: %v", time.Since(start).Round(time.Millisecond), err)
		if time.Since(start) > 15*time.Second {
			t.Errorf("start-up took %s to fail", time.Since(start))
		}
		return err
	}
	t.Run("wrong password", func(t *testing.T) {
		if err := startErr(secure(config.SASLScramSHA256, "scram256-user", "wrong")); !errors.Is(err, processor.ErrKafkaAuth) {
			t.Errorf("got %v, want ErrKafkaAuth", err)
		}
	})
	t.Run("unknown user", func(t *testing.T) {
		if err := startErr(secure(config.SASLPlain, "nobody", pass)); !errors.Is(err, processor.ErrKafkaAuth) {
			t.Errorf("got %v, want ErrKafkaAuth", err)
		}
	})
	t.Run("unknown CA", func(t *testing.T) {
		cfg := secure(config.SASLPlain, "plain-user", pass)
		cfg.Kafka.TLS.CAFile = ""
		if err := startErr(cfg); !errors.Is(err, processor.ErrKafkaAuth) {
			t.Errorf("got %v, want ErrKafkaAuth", err)
		}
	})
}
