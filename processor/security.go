package processor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/recstream/recstream/consumer"
	"net"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/privacy"
	"github.com/recstream/recstream/store"
)

// ErrKafkaAuth marks a start-up failure to authenticate to Kafka (SASL or
// TLS); retrying would not help.
var ErrKafkaAuth = errors.New("kafka authentication failed")

// TLSConfig builds a client TLS configuration; nil when TLS is disabled.
func TLSConfig(c config.TLSConfig) (*tls.Config, error) {
	if !c.Enabled {
		return nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // opt-in, documented as tests only
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file %s: no PEM certificate", c.CAFile)
		}
		t.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file/key_file: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// SASLMechanism builds the Kafka SASL mechanism; nil when none is set.
func SASLMechanism(c config.SASLConfig) (sasl.Mechanism, error) {
	switch c.Mechanism {
	case "":
		return nil, nil
	case config.SASLPlain:
		return plain.Mechanism{Username: c.Username, Password: c.Password}, nil
	case config.SASLScramSHA256:
		return scram.Mechanism(scram.SHA256, c.Username, c.Password)
	case config.SASLScramSHA512:
		return scram.Mechanism(scram.SHA512, c.Username, c.Password)
	}
	return nil, fmt.Errorf("unknown SASL mechanism %q", c.Mechanism)
}

// kafkaSecurity returns the reader dialer and writer transport carrying TLS
// and SASL; both nil for plain connections.
func kafkaSecurity(c config.KafkaConfig) (*kafka.Dialer, *kafka.Transport, error) {
	t, err := TLSConfig(c.TLS)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka.%w", err)
	}
	m, err := SASLMechanism(c.SASL)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka.sasl: %w", err)
	}
	if t == nil && m == nil {
		return nil, nil, nil
	}
	d := &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, ClientID: c.ClientID, TLS: t, SASLMechanism: m}
	tr := &kafka.Transport{ClientID: c.ClientID, TLS: t, SASL: m, DialTimeout: 10 * time.Second, MetadataTTL: consumer.WriterMetadataTTL}
	return d, tr, nil
}

// checkKafka dials one broker with the configured TLS and SASL and reads the
// cluster metadata once. An authentication or TLS failure is returned
// wrapped in ErrKafkaAuth so that start-up stops with a clear error instead
// of the consumers retrying forever; an unreachable broker is only logged
// (the consumers retry it).
func (p *Processor) checkKafka(ctx context.Context) error {
	d := p.kafka.Dialer
	if d == nil {
		d = &kafka.Dialer{Timeout: 10 * time.Second}
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var last error
	for _, b := range p.Config.Kafka.Brokers {
		conn, err := d.DialContext(ctx, "tcp", b)
		if err == nil {
			_, err = conn.Brokers()
			conn.Close()
			if err == nil {
				return nil
			}
		}
		if isAuthError(err) {
			who := ""
			if s := p.Config.Kafka.SASL; s.Mechanism != "" {
				who = fmt.Sprintf(" as %q with %s", s.Username, s.Mechanism)
			}
			return fmt.Errorf("%w: broker %s%s: %v", ErrKafkaAuth, b, who, err)
		}
		last = err
	}
	p.log.Warn("kafka not reachable at start-up; the consumers will retry", "brokers", p.Config.Kafka.Brokers, "err", last)
	return nil
}

func isAuthError(err error) bool {
	if err == nil {
		return false
	}
	var ke kafka.Error
	if errors.As(err, &ke) {
		switch ke {
		case kafka.SASLAuthenticationFailed, kafka.UnsupportedSASLMechanism, kafka.IllegalSASLState, kafka.TopicAuthorizationFailed, kafka.ClusterAuthorizationFailed:
			return true
		}
	}
	var ue x509.UnknownAuthorityError
	var he x509.HostnameError
	var ce x509.CertificateInvalidError
	var re tls.RecordHeaderError
	var ve *tls.CertificateVerificationError
	if errors.As(err, &ue) || errors.As(err, &he) || errors.As(err, &ce) || errors.As(err, &re) || errors.As(err, &ve) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "SASL") || strings.Contains(s, "tls:") || strings.Contains(s, "authentication")
}

// Pseudonymizer returns the user-id mapping the configuration asks for.
func Pseudonymizer(c config.Config) privacy.Pseudonymizer {
	return privacy.New(c.Privacy.PseudonymizeKey, c.Privacy.PseudonymizeLength)
}

// ForgetOutcome is the result of erasing one user.
type ForgetOutcome struct {
	User string `json:"user"` // the id as stored (the pseudonym when pseudonymization is on)
	store.ForgetResult
	Refreshed int `json:"refreshed"` // users whose lists were queued for rescoring
}

// Forget erases a user (given as the producers send it: the pseudonym is
// computed here when pseudonymization is on) with the configured options,
// and queues the users who shared items with them for rescoring when a
// refresh publisher is given.
func (p *Processor) Forget(ctx context.Context, user, source, request string, refresh func(ctx context.Context, users []string) error) (ForgetOutcome, error) {
	id := p.pseudo.ID(user)
	pc := p.Config.Privacy
	// A scoring process may hold the erased user's vector, or them among
	// an item's recent users, for scorer.neighbour_ttl after reading it:
	// the settle pass waits at least that long, so that when the refresh
	// requests go out no read from before the erasure is still served.
	settle := pc.ForgetSettle
	if refresh != nil {
		settle = max(settle, p.Config.Scorer.NeighbourTTL)
	}
	// Batches applied before the erasure may hold their item half in an
	// ingest item window for ingest.item_window; a second more covers its
	// write.
	var inFlight time.Duration
	if w := p.Config.Ingest.ItemWindow; w > 0 {
		inFlight = w + time.Second
	}
	// With item owners, an item half waits in the repartition topic and
	// an item owner's memory for up to ingest.item_flush_interval.
	if p.Config.Ingest.ItemOwner {
		inFlight = max(inFlight, p.Config.Ingest.ItemFlushInterval+time.Second)
	}
	res, err := p.Store.Forget(ctx, id, store.ForgetOptions{
		InFlight:     inFlight,
		TombstoneTTL: pc.ForgetTombstoneTTL,
		Sweep:        pc.ForgetSweep,
		Settle:       settle,
		Source:       source,
		Request:      request,
	})
	out := ForgetOutcome{User: id, ForgetResult: res}
	if err != nil {
		return out, err
	}
	if refresh != nil && len(res.Neighbours) > 0 {
		if err := refresh(ctx, res.Neighbours); err != nil {
			return out, fmt.Errorf("forget: queueing rescoring of %d users: %w", len(res.Neighbours), err)
		}
		out.Refreshed = len(res.Neighbours)
	}
	p.log.Info("user erased", "source", source, "request", request, "audit_id", res.AuditID,
		"keys_deleted", res.KeysDeleted, "events", res.Events, "logged_events", res.LoggedEvents,
		"window_complete", res.WindowComplete, "items", res.Items, "index_removals", res.IndexRemovals, "refreshed", out.Refreshed)
	return out, nil
}

// userID is the ingest consumer's id mapping; nil without pseudonymization.
func (p *Processor) userID() func(string) string {
	if !p.pseudo.Enabled() {
		return nil
	}
	return p.pseudo.ID
}

// PublishRefresh queues users for rescoring on the refresh topic.
func (p *Processor) PublishRefresh(ctx context.Context, users []string) error {
	return p.kafka.PublishRefresh(ctx, p.Config.Kafka.RefreshTopic, users)
}

func (p *Processor) forgetFromControl(ctx context.Context, user, request string) ([]string, error) {
	out, err := p.Forget(ctx, user, "control", request, nil)
	return out.Neighbours, err
}

// ErrRedisAuth marks a start-up failure to authenticate to Redis (wrong
// password, missing ACL permission, TLS verification); retrying would not
// help.
var ErrRedisAuth = errors.New("redis authentication failed")

func isRedisAuthError(err error) bool {
	for _, p := range []string{"WRONGPASS", "NOAUTH", "NOPERM"} {
		if redis.HasErrorPrefix(err, p) || strings.Contains(err.Error(), p) {
			return true
		}
	}
	var ue x509.UnknownAuthorityError
	var he x509.HostnameError
	var ve *tls.CertificateVerificationError
	return errors.As(err, &ue) || errors.As(err, &he) || errors.As(err, &ve)
}
