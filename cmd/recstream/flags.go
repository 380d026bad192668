package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/recstream/recstream/config"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// usageError is a command line the command cannot run: an unknown flag, a
// bad flag value, a missing or extra argument. It exits with status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usagef returns a usageError.
func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// errHelpShown is returned after --help printed a command's help; it exits
// with status 0.
var errHelpShown = errors.New("help shown")

// newFlagSet returns a subcommand's flag set. Parse it with parseFlags,
// which prints help and errors once.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args with fs. On -h or --help it prints the command's
// help to stdout and returns errHelpShown; a parse error is a usageError.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		commandHelp(os.Stdout, fs)
		return errHelpShown
	}
	if err != nil {
		return &usageError{err}
	}
	return nil
}

// commandHelp writes what fs's command does, its flags and examples.
func commandHelp(w io.Writer, fs *flag.FlagSet) {
	c := findCommand(fs.Name())
	if c == nil {
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
		return
	}
	fmt.Fprintf(w, "Usage: recstream %s %s\n\n%s\n", c.name, c.args, c.about)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprint(w, "\nFlags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	fmt.Fprint(w, "\nExamples:\n")
	for _, e := range c.examples {
		fmt.Fprintf(w, "  %s\n", e)
	}
}

// loadConfig parses --config and repeated --set flags and loads the
// configuration: defaults, file, environment, flags.
func loadConfig(name string, args []string) (config.Config, error) {
	fs := newFlagSet(name)
	path := fs.String("config", os.Getenv("RECSTREAM_CONFIG"), "YAML configuration file (env RECSTREAM_CONFIG)")
	var sets multiFlag
	fs.Var(&sets, "set", "override one key: section.key=value (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return config.Config{}, err
	}
	if fs.NArg() > 0 {
		return config.Config{}, usagef("unexpected argument %q", fs.Arg(0))
	}
	return config.Load(*path, os.LookupEnv, sets)
}
