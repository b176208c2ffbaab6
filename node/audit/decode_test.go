package audit

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/prdcredit/ccnode/credit"
)

// FuzzFastDecode holds the fast decoder to encoding/json's: on every line
// that credit's decoders accept, it must decode the same line, receipt and
// acknowledgements; what they refuse it must refuse too.
func FuzzFastDecode(f *testing.F) {
	fx := newFixture(f, 3)
	fx.anchor()
	for _, l := range append(fx.answeredLines(), fx.receivedLines()...) {
		b, err := json.Marshal(l)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"index":1,"receipt":{"v":1,"id":"x\u00e9\ud800","time":"2026-01-01T00:00:00+08:00"}}`))
	f.Add([]byte(`{"index":1,"receipt":{"v":1,"ID":"upper","query":{"consent":null}}} `))
	f.Add([]byte(`{"index":1,"receipt":{"v":1},"receipt":{"v":2}}`))
	f.Add([]byte(`{"index":1,"receipt":{"report_digest":"AAE="}}x`))
	f.Fuzz(func(t *testing.T, line []byte) {
		fl, frc, flErr, frErr := fastDecode(line)
		sl, slErr := credit.DecodeExportLine(line)
		if slErr != nil {
			if flErr == nil {
				t.Fatalf("fast decoder accepts a line encoding/json refuses (%v): %q", slErr, line)
			}
			return
		}
		if flErr != nil {
			t.Fatalf("fast decoder refuses a line encoding/json accepts: %v", flErr)
		}
		if fl.Index != sl.Index || !bytes.Equal(fl.Receipt, sl.Receipt) || !sameJSON(t, fl.Acks, sl.Acks) {
			t.Fatalf("lines differ: fast %+v, std %+v", fl, sl)
		}
		src, srErr := credit.DecodeReceipt(sl.Receipt)
		if (srErr == nil) != (frErr == nil) {
			t.Fatalf("receipt: fast err %v, std err %v", frErr, srErr)
		}
		if srErr != nil {
			return
		}
		fb, ferr := frc.LeafBytes()
		sb, serr := src.LeafBytes()
		if (ferr == nil) != (serr == nil) || !bytes.Equal(fb, sb) {
			t.Fatalf("receipts differ:\nfast %s (%v)\nstd  %s (%v)", fb, ferr, sb, serr)
		}
		// The audit's one-encoding message and digest agree with
		// credit's SignedMessage and Digest on whatever decodes.
		msg, d, err := frc.SignedMessageAndDigest()
		wantMsg, err1 := src.SignedMessage()
		wantD, err2 := src.Digest()
		if (err == nil) != (err1 == nil && err2 == nil) || (err == nil && (!bytes.Equal(msg, wantMsg) || d != wantD)) {
			t.Fatalf("SignedMessageAndDigest disagrees: %v / %v %v", err, err1, err2)
		}
		if !frc.Time.Equal(src.Time) {
			t.Fatalf("times differ: %v %v", frc.Time, src.Time)
		}
	})
}

func sameJSON(t *testing.T, a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}
