package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// EnvPrefix is the prefix of every environment variable Load reads.
const EnvPrefix = "RECSTREAM_"

// redacted replaces non-empty secrets in YAML output.
const redacted = "<redacted>"

// Load builds the configuration in order of increasing precedence:
// defaults, the YAML file at path (skipped when path is ""), environment
// variables looked up with lookupEnv (skipped when nil; usually
// os.LookupEnv), and sets, each "section.key=value" (from repeated --set
// flags; later entries win). It then validates the result.
//
// A file, environment or --set error returns the zero Config. A
// validation error returns the loaded Config together with the error, so
// that callers may still show what was loaded.
func Load(path string, lookupEnv func(string) (string, bool), sets []string) (Config, error) {
	cfg := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config file: %w", err)
		}
		if err := decodeYAML(data, path, &cfg); err != nil {
			return Config{}, err
		}
	}
	if lookupEnv != nil {
		if err := applyEnv(&cfg, lookupEnv); err != nil {
			return Config{}, err
		}
	}
	if err := applySets(&cfg, sets); err != nil {
		return Config{}, err
	}
	return cfg, cfg.Validate()
}

// EnvName returns the environment variable for a dotted key:
// "kafka.brokers" -> "RECSTREAM_KAFKA_BROKERS".
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Keys returns every dotted key, in the order of the Config struct.
func Keys() []string {
	ls := leaves()
	keys := make([]string, len(ls))
	for i, l := range ls {
		keys[i] = l.key
	}
	return keys
}

// YAML returns the configuration as YAML, with every non-empty secret
// (redis.password) replaced by "<redacted>".
func (c Config) YAML() ([]byte, error) {
	v := reflect.ValueOf(&c).Elem()
	for _, l := range leaves() {
		if f := v.FieldByIndex(l.index); l.secret && f.String() != "" {
			f.SetString(redacted)
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// leaf is one settable key of Config.
type leaf struct {
	key    string
	index  []int // field index path from Config
	secret bool
}

// leaves walks Config by yaml tags; nested structs give dotted keys.
func leaves() []leaf {
	var out []leaf
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := yamlName(f)
			if name == "" {
				continue
			}
			key := prefix + name
			idx := append(append([]int(nil), index...), i)
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, key+".", idx)
				continue
			}
			out = append(out, leaf{key: key, index: idx, secret: f.Tag.Get("secret") == "true"})
		}
	}
	walk(reflect.TypeOf(Config{}), "", nil)
	return out
}

// yamlName returns the YAML key of a struct field, or "" if it has none.
func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

func findLeaf(key string) (leaf, bool) {
	for _, l := range leaves() {
		if l.key == key {
			return l, true
		}
	}
	return leaf{}, false
}

func applyEnv(cfg *Config, lookupEnv func(string) (string, bool)) error {
	v := reflect.ValueOf(cfg).Elem()
	for _, l := range leaves() {
		name := EnvName(l.key)
		s, ok := lookupEnv(name)
		if !ok {
			continue
		}
		if err := setString(v.FieldByIndex(l.index), s); err != nil {
			return fmt.Errorf("%s: %v (key %s)", name, err, l.key)
		}
	}
	return nil
}

func applySets(cfg *Config, sets []string) error {
	v := reflect.ValueOf(cfg).Elem()
	for _, kv := range sets {
		key, val, ok := strings.Cut(kv, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			return fmt.Errorf("--set %q: want section.key=value", kv)
		}
		l, found := findLeaf(key)
		if !found {
			return fmt.Errorf("--set: unknown key %q%s", key, suggest(key, Keys()))
		}
		if err := setString(v.FieldByIndex(l.index), val); err != nil {
			return fmt.Errorf("--set %s: %v", key, err)
		}
	}
	return nil
}

// setString parses s by the kind of v and stores it. []string values are
// comma-separated; elements are trimmed and empty elements dropped.
func setString(v reflect.Value, s string) error {
	t := strings.TrimSpace(s)
	switch {
	case v.Type() == reflect.TypeFor[time.Duration]():
		d, err := time.ParseDuration(t)
		if err != nil {
			return fmt.Errorf("invalid duration %q (want Go syntax such as 200ms or 1h30m)", s)
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(t)
		if err != nil {
			return fmt.Errorf("invalid bool %q", s)
		}
		v.SetBool(b)
	case v.Kind() == reflect.Int || v.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(t, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("invalid int %q", s)
		}
		v.SetInt(n)
	case v.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(t, 64)
		if err != nil {
			return fmt.Errorf("invalid float %q", s)
		}
		v.SetFloat(f)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		list := []string{}
		for _, e := range strings.Split(s, ",") {
			if e = strings.TrimSpace(e); e != "" {
				list = append(list, e)
			}
		}
		v.Set(reflect.ValueOf(list).Convert(v.Type()))
	default:
		return fmt.Errorf("unsupported type %v", v.Type())
	}
	return nil
}

// decodeYAML decodes one YAML document onto cfg, keeping values for keys
// the document does not mention. Unknown and duplicate keys are errors;
// every error names the file, the line and the full dotted key.
func decodeYAML(data []byte, name string, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty file: defaults
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return fmt.Errorf("%s: %w", name, err)
	default:
		return fmt.Errorf("%s: line %d: only one YAML document is allowed", name, extra.Line)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	d := nodeDecoder{file: name}
	return d.mapping(doc.Content[0], reflect.ValueOf(cfg).Elem(), "")
}

type nodeDecoder struct{ file string }

func (d nodeDecoder) errorf(n *yaml.Node, key, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if key != "" {
		msg = key + ": " + msg
	}
	return fmt.Errorf("%s: line %d: %s", d.file, n.Line, msg)
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a sequence"
	default:
		return fmt.Sprintf("%s %q", n.Tag, n.Value)
	}
}

// mapping decodes a mapping node onto the struct v. prefix is the dotted
// key of v plus ".", or "" for the root.
func (d nodeDecoder) mapping(n *yaml.Node, v reflect.Value, prefix string) error {
	n = resolveAlias(n)
	section := strings.TrimSuffix(prefix, ".")
	if isNull(n) {
		return nil // "kafka:" with nothing under it
	}
	if n.Kind != yaml.MappingNode {
		where := section
		if where == "" {
			where = "top level"
		}
		return d.errorf(n, where, "want a mapping of keys, got %s", describe(n))
	}
	t := v.Type()
	fields := map[string]int{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		if name := yamlName(t.Field(i)); name != "" {
			fields[name] = i
			names = append(names, prefix+name)
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if kn.Kind != yaml.ScalarNode {
			return d.errorf(kn, section, "keys must be plain strings, got %s", describe(kn))
		}
		if kn.Tag == "!!merge" {
			return d.errorf(kn, section, "merge keys (<<) are not supported")
		}
		key := prefix + kn.Value
		if first, dup := seen[kn.Value]; dup {
			return d.errorf(kn, "", "duplicate key %q (first at line %d)", key, first)
		}
		seen[kn.Value] = kn.Line
		idx, ok := fields[kn.Value]
		if !ok {
			return d.errorf(kn, "", "unknown key %q%s", key, suggest(key, names))
		}
		fv := v.Field(idx)
		if fv.Kind() == reflect.Struct {
			if err := d.mapping(vn, fv, key+"."); err != nil {
				return err
			}
			continue
		}
		if err := d.leaf(vn, fv, key); err != nil {
			return err
		}
	}
	return nil
}

// leaf decodes a scalar or sequence node into v, replacing its value.
// YAML types are checked strictly: an integer key takes only !!int (1.5
// is not silently truncated), a bool only true/false, a number !!int or
// !!float, a duration only a string in Go syntax, a list only a sequence
// of scalars. A string key takes any scalar as written (client_id: 123).
func (d nodeDecoder) leaf(n *yaml.Node, v reflect.Value, key string) error {
	n = resolveAlias(n)
	if isNull(n) {
		switch v.Kind() {
		case reflect.String, reflect.Slice:
			v.Set(reflect.Zero(v.Type()))
			return nil
		}
		return d.errorf(n, key, "must not be null (remove the key to use the default)")
	}
	if v.Kind() == reflect.Slice {
		if n.Kind != yaml.SequenceNode {
			return d.errorf(n, key, "want a list such as [a, b], got %s", describe(n))
		}
		list := make([]string, 0, len(n.Content))
		for _, e := range n.Content {
			if e = resolveAlias(e); e.Kind != yaml.ScalarNode || isNull(e) {
				return d.errorf(e, key, "want a list of strings, got an element %s", describe(e))
			}
			list = append(list, e.Value)
		}
		v.Set(reflect.ValueOf(list).Convert(v.Type()))
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		return d.errorf(n, key, "want a single value, got %s", describe(n))
	}
	var want string
	switch {
	case v.Type() == reflect.TypeFor[time.Duration]():
		if n.Tag != "!!str" {
			return d.errorf(n, key, "want a duration string such as 200ms or 1h30m, got %s", describe(n))
		}
		dur, err := time.ParseDuration(n.Value)
		if err != nil {
			return d.errorf(n, key, "invalid duration %q (want Go syntax such as 200ms or 1h30m)", n.Value)
		}
		v.SetInt(int64(dur))
		return nil
	case v.Kind() == reflect.String:
		v.SetString(n.Value)
		return nil
	case v.Kind() == reflect.Bool:
		if n.Tag != "!!bool" {
			want = "true or false"
		}
	case v.Kind() == reflect.Int || v.Kind() == reflect.Int64:
		if n.Tag != "!!int" {
			want = "an integer"
		}
	case v.Kind() == reflect.Float64:
		if n.Tag != "!!int" && n.Tag != "!!float" {
			want = "a number"
		}
	default:
		return d.errorf(n, key, "unsupported type %v", v.Type())
	}
	tmp := reflect.New(v.Type())
	if want == "" {
		if err := n.Decode(tmp.Interface()); err != nil {
			want = "a value in range for " + v.Type().String()
		}
	}
	if want != "" {
		return d.errorf(n, key, "want %s, got %s", want, describe(n))
	}
	v.Set(tmp.Elem())
	return nil
}

// suggest returns ` (did you mean "x"?)` for the closest candidate within
// a small edit distance of key, or "".
func suggest(key string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if dist := editDistance(key, c); dist < bestDist {
			best, bestDist = c, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
