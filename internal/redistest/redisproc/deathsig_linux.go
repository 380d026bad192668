//go:build linux

package redisproc

import (
	"os/exec"
	"syscall"
)

// setDeathSignal asks the kernel to SIGKILL the server when the thread that
// started it exits. Start runs on a goroutine locked to its OS thread for the
// whole life of the server, so that thread exits only when the server has
// exited or the program dies.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
