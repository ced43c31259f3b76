package label

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// FuzzParsePayload checks that ParsePayload never panics, that its errors are
// the documented ones and never repeat a code, and that what it accepts
// round-trips through Payload. Seeds are in testdata/fuzz/FuzzParsePayload.
func FuzzParsePayload(f *testing.F) {
	code := codeWithCheck(f, "0123456789ABCDEF")
	for _, s := range []string{
		"GWPKI1:GW-000042:" + code,
		"gwpki1:gw_1.a:" + strings.ToLower(formatCode(code)),
		"GWPKI1:GW-1:" + codeEndingIn(f, "ABCDEFGHJKMNPQ", '~'),
		"GWPKI2:GW-1:" + code,
		"GWPKI1:GW-1:" + code[:16] + "0",
		"GWPKI1::",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		serial, shown, err := ParsePayload(s)
		if err != nil {
			if !errors.Is(err, ErrNotPayload) && !errors.Is(err, ErrInvalidPayload) {
				t.Fatalf("ParsePayload(%q) error %q; want ErrNotPayload or ErrInvalidPayload", s, err)
			}
			if i := strings.LastIndexByte(s, ':'); i >= 0 {
				// The serial may be echoed, quoted, and may hold the same text.
				if part := strings.TrimSpace(s[i+1:]); len(part) >= 8 && strings.Contains(err.Error(), part) && !strings.Contains(strconv.Quote(s[:i]), part) {
					t.Fatalf("ParsePayload(%q) error %q repeats the code part", s, err)
				}
			}
			return
		}
		if len(shown) != shownCodeLen {
			t.Fatalf("ParsePayload(%q) code %q; want the shown form", s, shown)
		}
		p, err := Payload(serial, shown)
		if err != nil {
			t.Fatalf("Payload(ParsePayload(%q)): %v", s, err)
		}
		if !strings.EqualFold(p[:len(PayloadPrefix)+len(serial)], strings.TrimSpace(s)[:len(PayloadPrefix)+len(serial)]) {
			t.Fatalf("Payload(ParsePayload(%q)) = %q; want the same prefix and serial", s, p)
		}
		serial2, shown2, err := ParsePayload(p)
		if err != nil || serial2 != serial || shown2 != shown {
			t.Fatalf("ParsePayload(%q) = %q, %q, %v; want %q, %q (from %q)", p, serial2, shown2, err, serial, shown, s)
		}
	})
}
