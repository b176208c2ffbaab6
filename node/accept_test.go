package node

import (
	"net/http/httptest"
	"testing"
)

// TestAsksFor: a media type counts when the Accept header names it
// before JSON or a wildcard, as a browser's (text/html first) does and a
// JSON client's does not.
func TestAsksFor(t *testing.T) {
	for _, c := range []struct {
		accept string
		html   bool
		note   bool
	}{
		{"", false, false},
		{"application/json", false, false},
		{"*/*", false, false},
		{"text/html", true, false},
		{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", true, false},
		{"application/json, text/html", false, false},
		{"text/plain", false, true},
		{" text/plain ; charset=utf-8", false, true},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept", c.accept)
		if got := wantsHTML(r); got != c.html {
			t.Errorf("Accept %q: wantsHTML %v, want %v", c.accept, got, c.html)
		}
		if got := wantsNote(r); got != c.note {
			t.Errorf("Accept %q: wantsNote %v, want %v", c.accept, got, c.note)
		}
	}
}
