package config

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"
)

// TLSConfig configures TLS for a client (Kafka or Redis).
type TLSConfig struct {
	// Enabled turns TLS on; with no CAFile the system roots verify the
	// server.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of the CAs that sign the server certificates.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client certificate and key (PEM) for
	// mutual TLS; both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name verified in the server certificate.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify disables server verification (tests only).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// SASLConfig configures Kafka SASL authentication.
type SASLConfig struct {
	// Mechanism is "" (none), PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password" secret:"true"`
	// PasswordFile, when set, is read at start-up and replaces Password.
	PasswordFile string `yaml:"password_file"`
}

// SASL mechanism names accepted in kafka.sasl.mechanism.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// PrivacyConfig configures pseudonymous ids and erasure.
type PrivacyConfig struct {
	// PseudonymizeKey, when set, replaces every user id by
	// hex(HMAC-SHA256(key, id)) truncated to PseudonymizeLength before
	// anything is stored.
	PseudonymizeKey string `yaml:"pseudonymize_key" secret:"true"`
	// PseudonymizeKeyFile, when set, is read at start-up and replaces
	// PseudonymizeKey.
	PseudonymizeKeyFile string `yaml:"pseudonymize_key_file"`
	// PseudonymizeLength is the number of hex characters kept (16..64).
	PseudonymizeLength int `yaml:"pseudonymize_length"`
	// ForgetTombstoneTTL is how long events of an erased user stamped
	// before the erasure are dropped.
	ForgetTombstoneTTL time.Duration `yaml:"forget_tombstone_ttl"`
	// ForgetSettle is the delay of the erasure's second clean-up pass.
	ForgetSettle time.Duration `yaml:"forget_settle"`
	// ForgetSweep scans every item index on erasure.
	ForgetSweep bool `yaml:"forget_sweep"`
}

// SetDefaults sets every privacy key to its default.
func (s *PrivacyConfig) SetDefaults() {
	*s = PrivacyConfig{
		PseudonymizeLength: 32,
		ForgetTombstoneTTL: time.Hour,
		ForgetSettle:       2 * time.Second,
		ForgetSweep:        true,
	}
}

// Validate checks the privacy section.
func (s PrivacyConfig) Validate() error {
	var p problems
	p.intRange("privacy.pseudonymize_length", s.PseudonymizeLength, 16, 64)
	if s.ForgetTombstoneTTL < time.Second {
		p.add("privacy.forget_tombstone_ttl", "must be at least 1s, got %v", s.ForgetTombstoneTTL)
	}
	p.nonNegDur("privacy.forget_settle", s.ForgetSettle)
	return p.err()
}

func (s TLSConfig) validate(p *problems, section string) {
	if (s.CertFile == "") != (s.KeyFile == "") {
		p.add(section+".tls.cert_file", "cert_file and key_file must be set together")
	}
}

func (s SASLConfig) validate(p *problems) {
	switch s.Mechanism {
	case "":
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if s.Username == "" {
			p.add("kafka.sasl.username", "must be set with kafka.sasl.mechanism %s", s.Mechanism)
		}
	default:
		p.add("kafka.sasl.mechanism", "must be one of \"\", %s, %s, %s, got %q", SASLPlain, SASLScramSHA256, SASLScramSHA512, s.Mechanism)
	}
}

// ResolveSecrets reads every secret whose `<key>_file` is set from that
// file (a trailing newline is dropped); the file takes precedence over the
// value. Call it once, after Load, where the secrets are used.
func (c *Config) ResolveSecrets() error {
	v := reflect.ValueOf(c).Elem()
	for _, l := range leaves() {
		if !l.secret {
			continue
		}
		fl, ok := findLeaf(l.key + "_file")
		if !ok {
			continue
		}
		path := v.FieldByIndex(fl.index).String()
		if path == "" {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("%s: %w", fl.key, err)
		}
		v.FieldByIndex(l.index).SetString(strings.TrimRight(string(b), "\r\n"))
	}
	return nil
}
