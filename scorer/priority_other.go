//go:build !linux

package scorer

// inBackground runs fn (at normal priority where threads cannot be
// reniced).
func inBackground(fn func() error) error { return fn() }
