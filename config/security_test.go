package config_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recstream/recstream/config"
)

func TestSecretsFromFilesAndRedacted(t *testing.T) {
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	env := map[string]string{
		"RECSTREAM_REDIS_PASSWORD_FILE":              write("redis", "r-secret-1\n"),
		"RECSTREAM_REDIS_MASTER_NAME":                "mymaster",
		"RECSTREAM_REDIS_SENTINEL_USERNAME":          "sentinel-user",
		"RECSTREAM_REDIS_SENTINEL_PASSWORD_FILE":     write("sentinel", "s-secret-4\n"),
		"RECSTREAM_REDIS_SENTINEL_PASSWORD":          "overridden-by-the-file",
		"RECSTREAM_KAFKA_SASL_MECHANISM":             "PLAIN",
		"RECSTREAM_KAFKA_SASL_USERNAME":              "recs",
		"RECSTREAM_KAFKA_SASL_PASSWORD":              "k-secret-2",
		"RECSTREAM_PRIVACY_PSEUDONYMIZE_KEY_FILE":    write("key", "p-secret-3"),
		"RECSTREAM_PRIVACY_PSEUDONYMIZE_LENGTH":      "20",
		"RECSTREAM_PRIVACY_FORGET_TOMBSTONE_TTL":     "10m",
		"RECSTREAM_KAFKA_CONTROL_TOPIC":              "ops.control",
		"RECSTREAM_REDIS_TLS_ENABLED":                "true",
		"RECSTREAM_REDIS_TLS_INSECURE_SKIP_VERIFY":   "true",
		"RECSTREAM_KAFKA_TLS_ENABLED":                "true",
		"RECSTREAM_KAFKA_SASL_PASSWORD_FILE":         "",
		"RECSTREAM_PRIVACY_FORGET_SWEEP":             "false",
		"RECSTREAM_PRIVACY_FORGET_SETTLE":            "0s",
		"RECSTREAM_REDIS_USERNAME":                   "recstream",
		"RECSTREAM_KAFKA_TLS_SERVER_NAME":            "kafka.internal",
		"RECSTREAM_REDIS_TLS_SERVER_NAME":            "redis.internal",
		"RECSTREAM_KAFKA_TLS_INSECURE_SKIP_VERIFY":   "false",
		"RECSTREAM_PRIVACY_PSEUDONYMIZE_KEY":         "overridden-by-the-file",
		"RECSTREAM_REDIS_PASSWORD":                   "overridden-by-the-file",
		"RECSTREAM_KAFKA_SASL_PASSWORD_FILE_UNKNOWN": "ignored",
	}
	cfg, err := config.Load("", func(k string) (string, bool) { v, ok := env[k]; return v, ok }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.ResolveSecrets(); err != nil {
		t.Fatal(err)
	}
	if cfg.Redis.Password != "r-secret-1" || cfg.Kafka.SASL.Password != "k-secret-2" || cfg.Privacy.PseudonymizeKey != "p-secret-3" || cfg.Redis.SentinelPassword != "s-secret-4" {
		t.Fatalf("secrets: %q %q %q %q", cfg.Redis.Password, cfg.Kafka.SASL.Password, cfg.Privacy.PseudonymizeKey, cfg.Redis.SentinelPassword)
	}
	out, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"r-secret-1", "k-secret-2", "p-secret-3", "s-secret-4"} {
		if bytes.Contains(out, []byte(s)) {
			t.Errorf("YAML() prints secret %q:\n%s", s, out)
		}
	}
	if c := strings.Count(string(out), "<redacted>"); c != 4 {
		t.Errorf("%d redacted values, want 4:\n%s", c, out)
	}
	if !bytes.Contains(out, []byte("sentinel_username: sentinel-user")) {
		t.Errorf("redis.sentinel_username is not a secret, yet not printed:\n%s", out)
	}

	cfg.Redis.PasswordFile = filepath.Join(dir, "missing")
	if err := cfg.ResolveSecrets(); err == nil || !strings.Contains(err.Error(), "redis.password_file") {
		t.Errorf("missing file: %v", err)
	}
	cfg.Redis.PasswordFile = ""
	cfg.Redis.SentinelPasswordFile = filepath.Join(dir, "missing")
	if err := cfg.ResolveSecrets(); err == nil || !strings.Contains(err.Error(), "redis.sentinel_password_file") {
		t.Errorf("missing sentinel password file: %v", err)
	}
	if _, err := config.Load("", nil, []string{"redis.master_name=m", "redis.sentinel_password=x"}); err != nil {
		t.Errorf("sentinel password with a master name: %v", err)
	}
}

func TestSecurityValidation(t *testing.T) {
	for _, c := range []struct {
		set  []string
		want string
	}{
		{[]string{"kafka.sasl.mechanism=GSSAPI"}, "kafka.sasl.mechanism"},
		{[]string{"kafka.sasl.mechanism=PLAIN"}, "kafka.sasl.username"},
		{[]string{"redis.tls.cert_file=a.pem"}, "redis.tls.cert_file"},
		{[]string{"kafka.tls.key_file=a.pem"}, "kafka.tls.cert_file"},
		{[]string{"privacy.pseudonymize_length=8"}, "privacy.pseudonymize_length"},
		{[]string{"kafka.control_topic=events"}, "kafka.control_topic"},
		{[]string{"privacy.forget_tombstone_ttl=10ms"}, "privacy.forget_tombstone_ttl"},
		{[]string{"redis.sentinel_password=x"}, "redis.sentinel_password: is only used with redis.master_name"},
		{[]string{"redis.sentinel_username=x"}, "redis.sentinel_username: is only used with redis.master_name"},
		{[]string{"redis.sentinel_password_file=/run/secrets/x"}, "redis.sentinel_password_file: is only used with redis.master_name"},
	} {
		_, err := config.Load("", nil, c.set)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one naming %s", c.set, err, c.want)
		}
	}
}
