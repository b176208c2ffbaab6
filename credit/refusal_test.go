package credit

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
)

// TestCodesClosedSet: Codes() is the closed set exactly once, each code
// with a 4xx or 5xx status.
func TestCodesClosedSet(t *testing.T) {
	list := Codes()
	seen := map[Code]bool{}
	for _, c := range list {
		if seen[c] {
			t.Errorf("Codes() lists %q twice", c)
		}
		seen[c] = true
		if !c.Known() {
			t.Errorf("Codes() lists %q, which is not Known", c)
		}
		if s := c.HTTPStatus(); s < 400 || s > 599 {
			t.Errorf("%q: HTTP status %d, want 4xx or 5xx", c, s)
		}
		if c == "" {
			t.Error(`Codes() lists ""`)
		}
	}
	keys := slices.Sorted(maps.Keys(codes))
	sorted := slices.Sorted(slices.Values(list))
	if !slices.Equal(keys, sorted) {
		t.Errorf("Codes() = %v\nthe map's keys = %v", sorted, keys)
	}
}

func TestUnknownCode(t *testing.T) {
	c := Code("no_such_code")
	if c.Known() || Code("").Known() {
		t.Fatal("an unknown code is Known")
	}
	// A peer treats a code it does not know as internal.
	if c.HTTPStatus() != CodeInternal.HTTPStatus() || c.Retryable() != CodeInternal.Retryable() {
		t.Errorf("unknown code: status %d retry %v, want CodeInternal's %d %v", c.HTTPStatus(), c.Retryable(),
			CodeInternal.HTTPStatus(), CodeInternal.Retryable())
	}
}

func TestRefusalErrors(t *testing.T) {
	cause := errors.New("disk on fire")
	r := Refuse(CodeUnavailable, "log: %w", cause)
	if r.Code != CodeUnavailable || r.Msg != "log: disk on fire" || r.Error() != "unavailable: log: disk on fire" {
		t.Fatalf("Refuse = %#v (%q)", r, r.Error())
	}
	if !errors.Is(r, cause) {
		t.Error("the %w cause is not kept")
	}
	wrapped := fmt.Errorf("answer: %w", r)
	if !errors.Is(wrapped, &Refusal{Code: CodeUnavailable}) || errors.Is(wrapped, &Refusal{Code: CodeInternal}) {
		t.Error("errors.Is by code")
	}
	if RefusalOf(wrapped) != r || CodeOf(wrapped) != CodeUnavailable {
		t.Error("RefusalOf / CodeOf through a wrap")
	}
	if CodeOf(nil) != "" || CodeOf(cause) != CodeUnavailable || RefusalOf(cause) != nil {
		t.Error("CodeOf of nil or of a plain error")
	}
	if (&Refusal{Code: CodeInternal}).Error() != "internal" {
		t.Error("a refusal without a message is its code")
	}
	if Refuse(CodeStaleQuery, "no cause").Err != nil {
		t.Error("a message without %w has no cause")
	}
}
