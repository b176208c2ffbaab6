package ingest

import (
	"testing"

	"github.com/prdcredit/ccnode/credit"
)

var benchLine = []byte(`{"uscc":"91440300MA5F123452","source":"dept09","source_id":"financial-0","category":"financial","date":"2017-03-02","attrs":{"amount":482120,"authority":"Shenzhen Municipal Administration of Market Regulation","case_no":"SZ1023478926","description":"record of routine inspection and follow-up for the enterprise","status":"closed"}}`)

func BenchmarkParseJSONLine(b *testing.B) {
	b.Run("fast", func(b *testing.B) {
		var r credit.Record
		b.SetBytes(int64(len(benchLine)))
		b.ReportAllocs()
		for b.Loop() {
			if !fastJSONLine(benchLine, &r) {
				b.Fatal("fast path refused")
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		var r credit.Record
		b.SetBytes(int64(len(benchLine)))
		b.ReportAllocs()
		for b.Loop() {
			if err := slowJSONLine(benchLine, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parse+normalize", func(b *testing.B) {
		var r credit.Record
		b.SetBytes(int64(len(benchLine)))
		b.ReportAllocs()
		for b.Loop() {
			if err := ParseJSONLine(benchLine, &r); err != nil {
				b.Fatal(err)
			}
			if err := r.Normalize(testNow, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkParseCSVLine(b *testing.B) {
	line := []byte(`91440300MA5F123452,dept09,financial-0,financial,2017-03-02,"{""amount"":482120,""authority"":""Shenzhen Municipal Administration of Market Regulation"",""status"":""closed""}"`)
	h, err := ParseCSVHeader([]byte("uscc,source,source_id,category,date,attrs"))
	if err != nil {
		b.Fatal(err)
	}
	var r credit.Record
	var scratch [][]byte
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		if scratch, err = h.ParseCSVLine(line, &r, scratch); err != nil {
			b.Fatal(err)
		}
	}
}
