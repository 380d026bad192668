package config_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/recstream/recstream/config"
)

const examplePath = "../deploy/recstream.example.yaml"

// envMap returns a lookupEnv backed by m.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func mustLoad(t *testing.T, path string, env map[string]string, sets ...string) config.Config {
	t.Helper()
	cfg, err := config.Load(path, envMap(env), sets)
	if err != nil {
		t.Fatalf("Load(%q): %v", path, err)
	}
	return cfg
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "recstream.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// keyNodes maps each dotted leaf key of a YAML document to its key node and
// value node.
type keyNodes map[string][2]*yaml.Node

func flatten(t *testing.T, data []byte) keyNodes {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	out := keyNodes{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind == yaml.AliasNode {
				v = v.Alias
			}
			key := prefix + k.Value
			if v.Kind == yaml.MappingNode {
				walk(v, key+".")
				continue
			}
			out[key] = [2]*yaml.Node{k, v}
		}
	}
	if len(doc.Content) > 0 {
		walk(doc.Content[0], "")
	}
	return out
}

// scalarString renders a value node the way env and --set take it.
func scalarString(n *yaml.Node) string {
	if n.Kind == yaml.SequenceNode {
		var parts []string
		for _, e := range n.Content {
			parts = append(parts, e.Value)
		}
		return strings.Join(parts, ",")
	}
	return n.Value
}

func TestDefaultIsValid(t *testing.T) {
	if err := config.Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	cfg := mustLoad(t, "", nil)
	if !reflect.DeepEqual(cfg, config.Default()) {
		t.Fatalf("Load with nothing differs from Default()")
	}
}

func TestGoodFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/good/*.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("good files: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg := mustLoad(t, f, nil)

			// The hand-written decoder must agree with plain yaml.v3
			// strict decoding onto the defaults.
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			want := config.Default()
			dec := yaml.NewDecoder(bytes.NewReader(data))
			dec.KnownFields(true)
			if err := dec.Decode(&want); err != nil && !errors.Is(err, io.EOF) {
				t.Fatalf("yaml.v3 strict decode: %v", err)
			}
			if !reflect.DeepEqual(cfg, want) {
				t.Errorf("Load and yaml.v3 disagree:\nLoad: %+v\nyaml: %+v", cfg, want)
			}
		})
	}
}

func TestGoodMinimal(t *testing.T) {
	cfg := mustLoad(t, "testdata/good/minimal.yaml", nil)
	want := config.Default()
	want.Kafka.Brokers = []string{"kafka-1:9092", "kafka-2:9092"}
	want.Redis.Addrs = []string{"redis:6379"}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
	if cfg := mustLoad(t, "testdata/good/empty.yaml", nil); !reflect.DeepEqual(cfg, config.Default()) {
		t.Fatalf("empty file: got %+v", cfg)
	}
}

func TestGoodFull(t *testing.T) {
	const path = "testdata/good/full.yaml"
	cfg := mustLoad(t, path, nil)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	full := flatten(t, data)
	defYAML, err := config.Default().YAML()
	if err != nil {
		t.Fatal(err)
	}
	defs := flatten(t, defYAML)
	gotYAML, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	got := flatten(t, gotYAML)
	for _, k := range config.Keys() {
		if _, ok := full[k]; !ok {
			t.Errorf("full.yaml lacks %s", k)
			continue
		}
		if scalarString(got[k][1]) == scalarString(defs[k][1]) {
			t.Errorf("full.yaml sets %s to its default %q", k, scalarString(defs[k][1]))
		}
	}
	if !cfg.Model.EpochTime().Equal(time.Date(2025, 5, 31, 22, 0, 0, 0, time.UTC)) {
		t.Errorf("EpochTime = %v", cfg.Model.EpochTime())
	}
	if cfg.Redis.MaxRetries != -1 || cfg.Scorer.Weights.ItemKNN != 0 || cfg.Redis.Password != "s3cret" {
		t.Errorf("unexpected values: %+v", cfg)
	}
}

func TestBadFiles(t *testing.T) {
	// file -> substrings the error must contain (the first names the key).
	tests := map[string][]string{
		"unknown_top_level.yaml":                {`unknown key "metrics"`, "line 3"},
		"unknown_nested.yaml":                   {`unknown key "kafka.brokerz"`, "line 2", `did you mean "kafka.brokers"`},
		"unknown_deep.yaml":                     {`unknown key "model.weights.view"`, "line 3"},
		"wrong_type.yaml":                       {"ingest.batch_max_events", "line 2", "lots"},
		"wrong_type_list.yaml":                  {"kafka.brokers", "line 2", "want a list"},
		"section_not_mapping.yaml":              {"line 1: redis: want a mapping"},
		"bad_duration.yaml":                     {"kafka.max_wait", "line 2", "duration"},
		"bad_duration_unit.yaml":                {"run.shutdown_timeout", `invalid duration "2 days"`},
		"admin_username_no_password.yaml":       {"admin.password", "must be set with admin.username"},
		"duplicate_key.yaml":                    {`duplicate key "log.level"`, "line 3", "first at line 2"},
		"two_documents.yaml":                    {"only one YAML document"},
		"null_int.yaml":                         {"kafka.partitions", "null"},
		"float_for_int.yaml":                    {"kafka.partitions", `want an integer, got !!float "1.5"`},
		"yes_for_bool.yaml":                     {"kafka.create_topics", "want true or false"},
		"null_list_element.yaml":                {"redis.addrs", "want a list of strings"},
		"merge_key.yaml":                        {"log", "merge keys"},
		"empty_brokers.yaml":                    {"kafka.brokers: must not be empty"},
		"broker_no_port.yaml":                   {"kafka.brokers", "localhost"},
		"bad_topic_name.yaml":                   {"kafka.events_topic", "invalid character"},
		"same_topic.yaml":                       {"kafka.dlq_topic: must differ from kafka.events_topic"},
		"session_timeout_short.yaml":            {"kafka.session_timeout", "1s"},
		"bad_role.yaml":                         {"run.roles", `"serve"`},
		"duplicate_role.yaml":                   {"run.roles", "duplicate"},
		"no_roles.yaml":                         {"run.roles: must not be empty"},
		"bad_log_level.yaml":                    {"log.level", "verbose"},
		"bad_similarity.yaml":                   {"scorer.item_similarity", "euclidean"},
		"bad_user_similarity.yaml":              {"scorer.user_similarity", "jaccard"},
		"negative_weight.yaml":                  {"model.weights.click: must not be negative"},
		"zero_weights.yaml":                     {"model.weights: at least one"},
		"zero_scorer_weights.yaml":              {"scorer.weights: sum"},
		"bad_variant.yaml":                      {"scorer.variants: \"broken:0\": share"},
		"nan_weight.yaml":                       {"scorer.weights.trending: must be a finite number"},
		"batch_max_events_zero.yaml":            {"ingest.batch_max_events", "got 0"},
		"item_window_negative.yaml":             {"ingest.item_window", "-1s"},
		"user_cache_negative.yaml":              {"ingest.user_cache", "-1"},
		"user_cache_idle_negative.yaml":         {"ingest.user_cache_idle", "-1m0s"},
		"item_flush_interval_zero.yaml":         {"ingest.item_flush_interval", "0s"},
		"attribution_discount.yaml":             {"attribution.discount", "1.5"},
		"attribution_max_items.yaml":            {"attribution.max_items", "got 0"},
		"memory_limit_small.yaml":               {"run.memory_limit_mb", "16"},
		"max_message_bytes_small.yaml":          {"ingest.max_message_bytes", "1024"},
		"key_prefix_brace.yaml":                 {"redis.key_prefix", "'{'"},
		"key_prefix_space.yaml":                 {"redis.key_prefix", "whitespace"},
		"redis_cluster_db.yaml":                 {"redis.db", "Cluster"},
		"max_retries_low.yaml":                  {"redis.max_retries", "-1"},
		"cooc_history_over_log_cap.yaml":        {"model.cooc_history", "model.user_log_cap (16)"},
		"half_life_1s.yaml":                     {"model.half_life"},
		"half_life_overflow.yaml":               {"model.half_life", "overflow"},
		"bad_epoch.yaml":                        {"model.epoch", "RFC 3339"},
		"user_ttl_subsecond.yaml":               {"model.user_ttl"},
		"candidate_users_below_neighbours.yaml": {"scorer.candidate_users", "scorer.neighbours (50)"},
		"top_n_zero.yaml":                       {"scorer.top_n"},
		"next_window_over_log_cap.yaml":         {"model.next_window", "model.user_log_cap (4)"},
		"model_name_empty.yaml":                 {"scorer.model_name: must not be empty"},
		"admin_listen_bad.yaml":                 {"admin.listen", "9464"},
	}
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := tests[filepath.Base(f)]; !ok {
			t.Errorf("%s has no entry in the expected-error table", f)
		}
	}
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata/bad", name)
			if _, err := os.Stat(path); err != nil {
				t.Fatal(err)
			}
			_, err := config.Load(path, nil, nil)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestPrecedence(t *testing.T) {
	path := writeFile(t, `
log:
  level: debug
  format: json
kafka:
  max_wait: 50ms
  partitions: 3
`)
	env := map[string]string{
		"RECSTREAM_LOG_LEVEL":       "warn",
		"RECSTREAM_KAFKA_MAX_WAIT":  "75ms",
		"RECSTREAM_SCORER_TOP_N":    "7",
		"RECSTREAM_NOT_A_KEY":       "ignored",
		"RECSTREAM_KAFKA":           "ignored",
		"RECSTREAM_MODEL_WEIGHTS":   "ignored",
		"OTHER_RECSTREAM_LOG_LEVEL": "ignored",
	}
	cfg := mustLoad(t, path, env, "log.level=error", "scorer.top_n=9", "scorer.top_n=11")

	if cfg.Log.Format != "json" {
		t.Errorf("file value lost: log.format = %q", cfg.Log.Format)
	}
	if cfg.Kafka.Partitions != 3 {
		t.Errorf("file value lost: kafka.partitions = %d", cfg.Kafka.Partitions)
	}
	if cfg.Kafka.MaxWait != 75*time.Millisecond {
		t.Errorf("env should beat file: kafka.max_wait = %v", cfg.Kafka.MaxWait)
	}
	if cfg.Log.Level != "error" {
		t.Errorf("--set should beat env: log.level = %q", cfg.Log.Level)
	}
	if cfg.Scorer.TopN != 11 {
		t.Errorf("last --set should win: scorer.top_n = %d", cfg.Scorer.TopN)
	}
	if cfg.Ingest.BatchMaxEvents != 1000 {
		t.Errorf("default lost: ingest.batch_max_events = %d", cfg.Ingest.BatchMaxEvents)
	}
}

func TestEnvList(t *testing.T) {
	cfg := mustLoad(t, "", map[string]string{
		"RECSTREAM_KAFKA_BROKERS": " k1:9092, k2:9092 ,,k3:9092",
		"RECSTREAM_RUN_ROLES":     "score",
	})
	if want := []string{"k1:9092", "k2:9092", "k3:9092"}; !slices.Equal(cfg.Kafka.Brokers, want) {
		t.Errorf("kafka.brokers = %q, want %q", cfg.Kafka.Brokers, want)
	}
	if want := []string{"score"}; !slices.Equal(cfg.Run.Roles, want) {
		t.Errorf("run.roles = %q, want %q", cfg.Run.Roles, want)
	}
	// An empty list fails validation with the key named.
	_, err := config.Load("", envMap(map[string]string{"RECSTREAM_KAFKA_BROKERS": ""}), nil)
	if err == nil || !strings.Contains(err.Error(), "kafka.brokers: must not be empty") {
		t.Errorf("empty env list: err = %v", err)
	}
}

func TestEnvBadValue(t *testing.T) {
	tests := []struct{ key, val, want string }{
		{"ingest.batch_max_events", "abc", `RECSTREAM_INGEST_BATCH_MAX_EVENTS: invalid int "abc"`},
		{"kafka.max_wait", "200", `RECSTREAM_KAFKA_MAX_WAIT: invalid duration "200"`},
		{"kafka.create_topics", "yes please", `RECSTREAM_KAFKA_CREATE_TOPICS: invalid bool "yes please"`},
		{"model.weights.purchase", "8x", `RECSTREAM_MODEL_WEIGHTS_PURCHASE: invalid float "8x"`},
	}
	for _, tt := range tests {
		env := config.EnvName(tt.key)
		_, err := config.Load("", envMap(map[string]string{env: tt.val}), nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s=%q: err = %v, want it to contain %q", env, tt.val, err, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%s: err %q does not name key %s", env, err, tt.key)
		}
	}
	// A bad value that parses is caught by validation, naming the key.
	_, err := config.Load("", envMap(map[string]string{"RECSTREAM_INGEST_BATCH_MAX_EVENTS": "0"}), nil)
	if err == nil || !strings.Contains(err.Error(), "ingest.batch_max_events") {
		t.Errorf("err = %v", err)
	}
}

func TestSetErrors(t *testing.T) {
	tests := []struct{ set, want string }{
		{"kafka.brokerz=a:1", `unknown key "kafka.brokerz"`},
		{"model.weights=1", `unknown key "model.weights"`},
		{"kafka=x", `unknown key "kafka"`},
		{"kafka.brokers", "want section.key=value"},
		{"=x", "want section.key=value"},
		{"ingest.batch_max_events=abc", `--set ingest.batch_max_events: invalid int "abc"`},
		{"scorer.list_ttl=7d", `--set scorer.list_ttl: invalid duration "7d"`},
	}
	for _, tt := range tests {
		_, err := config.Load("", nil, []string{tt.set})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("--set %q: err = %v, want it to contain %q", tt.set, err, tt.want)
		}
	}
	cfg := mustLoad(t, "", nil, "redis.key_prefix=a=b:", "kafka.brokers=x:1,y:2")
	if cfg.Redis.KeyPrefix != "a=b:" {
		t.Errorf("value with '=': key_prefix = %q", cfg.Redis.KeyPrefix)
	}
	if !slices.Equal(cfg.Kafka.Brokers, []string{"x:1", "y:2"}) {
		t.Errorf("list via --set: %q", cfg.Kafka.Brokers)
	}
}

// TestEveryKeyFromEnvAndSet sets every key from full.yaml through the
// environment, and separately through --set, and expects the same Config
// as loading the file.
func TestEveryKeyFromEnvAndSet(t *testing.T) {
	const path = "testdata/good/full.yaml"
	want := mustLoad(t, path, nil)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	nodes := flatten(t, data)
	env := map[string]string{}
	var sets []string
	for _, k := range config.Keys() {
		v := scalarString(nodes[k][1])
		env[config.EnvName(k)] = v
		sets = append(sets, k+"="+v)
	}
	if got := mustLoad(t, "", env); !reflect.DeepEqual(got, want) {
		t.Errorf("from env:\ngot  %+v\nwant %+v", got, want)
	}
	if got := mustLoad(t, "", nil, sets...); !reflect.DeepEqual(got, want) {
		t.Errorf("from --set:\ngot  %+v\nwant %+v", got, want)
	}
}

func TestYAMLRedactsSecrets(t *testing.T) {
	cfg := config.Default()
	cfg.Redis.Password = "hunter2"
	out, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("hunter2")) {
		t.Fatalf("YAML() leaks the password:\n%s", out)
	}
	n := flatten(t, out)
	if got := n["redis.password"][1].Value; got != "<redacted>" {
		t.Errorf("redis.password = %q, want <redacted>", got)
	}
	if cfg.Redis.Password != "hunter2" {
		t.Errorf("YAML() modified the receiver")
	}
	// An empty secret stays empty, so the output shows it is unset.
	out, err = config.Default().YAML()
	if err != nil {
		t.Fatal(err)
	}
	if got := flatten(t, out)["redis.password"][1].Value; got != "" {
		t.Errorf("empty redis.password rendered as %q", got)
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	full := mustLoad(t, "testdata/good/full.yaml", nil)
	for name, cfg := range map[string]config.Config{
		"default": config.Default(),
		"full":    full,
	} {
		t.Run(name, func(t *testing.T) {
			out, err := cfg.YAML()
			if err != nil {
				t.Fatal(err)
			}
			got := mustLoad(t, writeFile(t, string(out)), nil)
			want := cfg
			for _, sec := range []*string{&want.Redis.Password, &want.Redis.SentinelPassword, &want.Kafka.SASL.Password, &want.Privacy.PseudonymizeKey, &want.Admin.Token, &want.Admin.Password} {
				if *sec != "" {
					*sec = "<redacted>"
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip differs:\n%s\ngot  %+v\nwant %+v", out, got, want)
			}
		})
	}
}

func TestKeysAndEnvNames(t *testing.T) {
	keys := config.Keys()
	if len(keys) < 60 {
		t.Fatalf("only %d keys", len(keys))
	}
	seenKey, seenEnv := map[string]bool{}, map[string]bool{}
	for _, k := range keys {
		if seenKey[k] {
			t.Errorf("duplicate key %s", k)
		}
		seenKey[k] = true
		e := config.EnvName(k)
		if seenEnv[e] {
			t.Errorf("env name %s used twice", e)
		}
		seenEnv[e] = true
		if !strings.HasPrefix(e, "RECSTREAM_") || strings.ToUpper(e) != e || strings.Contains(e, ".") {
			t.Errorf("EnvName(%s) = %s", k, e)
		}
	}
	for key, want := range map[string]string{
		"kafka.brokers":          "RECSTREAM_KAFKA_BROKERS",
		"model.weights.purchase": "RECSTREAM_MODEL_WEIGHTS_PURCHASE",
		"redis.password":         "RECSTREAM_REDIS_PASSWORD",
	} {
		if got := config.EnvName(key); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", key, got, want)
		}
		if !seenKey[key] {
			t.Errorf("Keys() lacks %s", key)
		}
	}
}

// TestExampleFile checks deploy/recstream.example.yaml: it loads strictly,
// holds exactly the defaults, documents every key, and names every key's
// environment variable in the comment above it.
func TestExampleFile(t *testing.T) {
	cfg := mustLoad(t, examplePath, nil)
	if !reflect.DeepEqual(cfg, config.Default()) {
		t.Errorf("example values differ from Default():\ngot  %+v\nwant %+v", cfg, config.Default())
	}
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	nodes := flatten(t, data)
	var missing []string
	for _, k := range config.Keys() {
		n, ok := nodes[k]
		if !ok {
			missing = append(missing, k)
			continue
		}
		comment := n[0].HeadComment + "\n" + n[0].LineComment + "\n" + n[1].LineComment
		if !strings.Contains(comment, config.EnvName(k)) {
			t.Errorf("line %d: the comment of %s does not name %s", n[0].Line, k, config.EnvName(k))
		}
		if strings.Count(strings.TrimSpace(n[0].HeadComment), "\n") < 1 {
			t.Errorf("line %d: %s needs a comment saying what it does, besides its env var", n[0].Line, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("example lacks keys: %s", strings.Join(missing, ", "))
	}
	if len(nodes) != len(config.Keys()) {
		t.Errorf("example has %d keys, Keys() has %d", len(nodes), len(config.Keys()))
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	cfg := config.Default()
	cfg.Kafka.Brokers = nil
	cfg.Scorer.TopN = 0
	cfg.Model.Epoch = "yesterday"
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate succeeded")
	}
	for _, want := range []string{"kafka.brokers: must not be empty", "scorer.top_n:", "model.epoch:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if got := len(strings.Split(err.Error(), "\n")); got != 3 {
		t.Errorf("want 3 problems, one per line; got %d:\n%v", got, err)
	}
	// Sections validate on their own too.
	if err := cfg.Kafka.Validate(); err == nil || !strings.HasPrefix(err.Error(), "kafka.brokers:") {
		t.Errorf("KafkaConfig.Validate() = %v", err)
	}
}

func TestLoadReturnsConfigWithValidationError(t *testing.T) {
	cfg, err := config.Load("", nil, []string{"scorer.top_n=0"})
	if err == nil {
		t.Fatal("want a validation error")
	}
	if cfg.Scorer.TopN != 0 || cfg.Kafka.Partitions != 8 {
		t.Errorf("Load should return the loaded config with a validation error: %+v", cfg)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "nope.yaml"), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("err = %v", err)
	}
}

func TestHelpers(t *testing.T) {
	d := config.Default()
	want := map[string]float64{"browse": 1, "click": 2, "add_to_cart": 4, "purchase": 8}
	if got := d.Model.Weights.ByName(); !reflect.DeepEqual(got, want) {
		t.Errorf("ByName() = %v", got)
	}
	if got := d.Model.EpochTime(); !got.Equal(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("EpochTime() = %v", got)
	}
	bad := d.Model
	bad.Epoch = "x"
	if !bad.EpochTime().IsZero() {
		t.Errorf("EpochTime() of a bad epoch should be zero")
	}
	if !d.Run.Has(config.RoleIngest) || !d.Run.Has(config.RoleScore) || d.Run.Has("x") {
		t.Errorf("RunConfig.Has wrong for %v", d.Run.Roles)
	}
}

// TestHalfLifeBoundary pins the overflow rule: 30 years / half_life < 1000.
func TestHalfLifeBoundary(t *testing.T) {
	limit := 30 * 8766 * time.Hour / 1000
	for _, tt := range []struct {
		hl time.Duration
		ok bool
	}{
		{limit, false},
		{limit + time.Second, true},
		{limit - time.Second, false},
		{336 * time.Hour, true},
	} {
		c := config.Default()
		c.Model.HalfLife = tt.hl
		err := c.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("half_life %v: err = %v, want ok=%v", tt.hl, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "model.half_life") {
			t.Errorf("half_life %v: error does not name the key: %v", tt.hl, err)
		}
	}
}
