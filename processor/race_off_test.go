//go:build !race

package processor_test

// raceEnabled reports a -race build.
const raceEnabled = false
