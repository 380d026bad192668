// Package config defines, loads and validates the recstream configuration.
//
// The configuration is one [Config] made of sections (run, log, kafka,
// redis, ingest, model, scorer, admin). Every section is a struct with a
// SetDefaults method that sets its defaults and a Validate method; [Default]
// returns the whole configuration at its defaults. deploy/recstream.example.yaml
// lists every key with its default, unit and environment variable.
//
// # Precedence
//
// [Load] builds the configuration in four layers, each overriding the one
// before it:
//
//  1. defaults ([Default]);
//  2. the YAML file, if a path is given; keys it omits keep their defaults;
//  3. environment variables (RECSTREAM_*);
//  4. --set flags, "section.key=value", applied in order so the last wins.
//
// It then calls [Config.Validate], which reports every problem found, one
// per line, each starting with the full dotted key, e.g.
// "kafka.brokers: must not be empty".
//
// # Keys and environment variables
//
// A key is the dotted path of yaml tags from the root: "kafka.brokers",
// "model.weights.purchase". [Keys] lists them all. The environment variable
// of a key is RECSTREAM_ followed by the key in upper case with dots turned
// into underscores ([EnvName]): "kafka.brokers" is RECSTREAM_KAFKA_BROKERS
// and "model.weights.purchase" is RECSTREAM_MODEL_WEIGHTS_PURCHASE.
//
// Environment and --set values are parsed by the type of the key: strings
// as they are; bools with strconv.ParseBool (true, false, 1, 0); integers
// in base 10; floats with strconv.ParseFloat; durations in Go syntax
// ("50ms", "1h30m"); lists comma-separated ("a:9092,b:9092", elements
// trimmed, empty elements dropped). A value that does not parse is an
// error naming the variable or flag and the key, e.g.
// `RECSTREAM_INGEST_BATCH_MAX_EVENTS: invalid int "abc"`.
//
// # Strictness
//
// The YAML file must be a single document whose top level is a mapping.
// Unknown keys, duplicate keys, and values of the wrong type are errors
// that name the file, the line and the full dotted key, e.g.
// `recstream.yaml: line 4: unknown key "kafka.brokerz" (did you mean
// "kafka.brokers"?)`. Durations in YAML must be strings in Go syntax
// ("200ms"); a bare number is rejected because its unit would be a guess.
// An unknown key in --set is an error too. Environment variables with the
// RECSTREAM_ prefix that match no key are ignored, so that deployment
// tooling may set variables for other versions.
//
// # Secrets
//
// redis.password, redis.sentinel_password, kafka.sasl.password and
// privacy.pseudonymize_key are secrets: [Config.YAML], which renders the
// effective configuration, prints them as "<redacted>" when they are set.
// Each has a "_file" companion (redis.password_file, ...) naming a file
// that [Config.ResolveSecrets] reads at start-up.
package config
