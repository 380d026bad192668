package scorer

import (
	"syscall"
	"testing"
)

// TestInBackgroundRunsAtLowestPriority checks that fn runs on a thread of
// nice 19.
func TestInBackgroundRunsAtLowestPriority(t *testing.T) {
	// The raw getpriority system call answers 20 - nice.
	nice := func() int {
		p, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
		if err != nil {
			t.Fatal(err)
		}
		return 20 - p
	}
	var got int
	if err := inBackground(func() error { got = nice(); return nil }); err != nil {
		t.Fatal(err)
	}
	if got != 19 {
		t.Errorf("fn ran at nice %d, want 19", got)
	}
}
