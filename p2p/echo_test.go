package p2p_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/prdcredit/ccnode/p2p"
)

// TestDecodeErrorsQuoteAShortPrefix: a member's malformed request is
// refused with a message that quotes a short prefix of the bad field, not
// the field (the message travels back in the refusal frame).
func TestDecodeErrorsQuoteAShortPrefix(t *testing.T) {
	big := strings.Repeat("\xff", p2p.MaxRequestFrame-256)
	for name, q := range map[string]string{
		"bank id":       `{"v":1,"bank":"` + big + `"}`,
		"unknown field": `{"v":1,"` + strings.Repeat("f", p2p.MaxRequestFrame-256) + `":1}`,
		"number":        `{"v":` + strings.Repeat("9", p2p.MaxRequestFrame-256) + `}`,
	} {
		t.Run(name, func(t *testing.T) {
			b, err := p2p.ReadFrame(bytes.NewReader(p2p.EncodeRequest("440100", []byte(q))), p2p.MaxRequestFrame)
			if err != nil {
				t.Fatal(err)
			}
			_, err = p2p.DecodeRequest(b)
			if err == nil {
				t.Fatal("decoded")
			}
			if len(err.Error()) > 1<<10 {
				t.Fatalf("message of %d bytes: %.200s", len(err.Error()), err)
			}
		})
	}
}
