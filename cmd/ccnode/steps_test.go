//go:build linux

package main

import (
	"testing"
	"time"
)

// steps logs how long each step of a long test took and when it ended,
// so that a slow run on Fabric shows where the time went.
type steps struct {
	t           testing.TB
	start, from time.Time
}

func newSteps(t testing.TB) *steps {
	now := time.Now()
	return &steps{t: t, start: now, from: now}
}

// begin starts timing the next step.
func (s *steps) begin() { s.from = time.Now() }

// done logs the step begun last.
func (s *steps) done(name string) {
	s.t.Helper()
	s.t.Logf("step %-32s %6.1fs (at %5.1fs)", name, time.Since(s.from).Seconds(), time.Since(s.start).Seconds())
}
