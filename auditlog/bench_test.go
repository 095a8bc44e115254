package auditlog

import (
	"encoding/json"
	"testing"
)

// The scanner against encoding/json decoding the same fields (reference), on Vault's real
// lines: the reason decode.go exists.
func BenchmarkDecode(b *testing.B) {
	lines := readLines(&testing.T{}, realLog)
	var n int64
	for _, l := range lines {
		n += int64(len(l))
	}
	b.Run("scanner", func(b *testing.B) {
		b.SetBytes(n)
		var e Entry
		for b.Loop() {
			for _, l := range lines {
				if err := decodeEntry(l, &e); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(n)
		for b.Loop() {
			for _, l := range lines {
				var r reference
				if err := json.Unmarshal(l, &r); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
