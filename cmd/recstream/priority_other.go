//go:build !linux

package main

// lowerPriority leaves the priority as it is outside Linux.
func lowerPriority() {}
