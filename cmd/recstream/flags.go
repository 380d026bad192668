package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/recstream/recstream/config"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// loadConfig parses --config and repeated --set flags and loads the
// configuration: defaults, file, environment, flags.
func loadConfig(name string, args []string) (config.Config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	path := fs.String("config", os.Getenv("RECSTREAM_CONFIG"), "YAML configuration file")
	var sets multiFlag
	fs.Var(&sets, "set", "override one key: section.key=value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return config.Config{}, err
	}
	if fs.NArg() > 0 {
		return config.Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return config.Load(*path, os.LookupEnv, sets)
}
