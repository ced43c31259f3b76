package label

import (
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/gwpki/gwpki/claim"
)

// crockford holds the symbols of Crockford's base32 in value order, then the
// check-only symbols of the values 32 to 36.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ*~$=U"

const codeSymbols = 16

// checkSymbol returns Crockford's check symbol of canonical base32 symbols:
// the number they write, modulo 37.
func checkSymbol(symbols string) byte {
	m := 0
	for i := range len(symbols) {
		m = (m*32 + strings.IndexByte(crockford, symbols[i])) % 37
	}
	return crockford[m]
}

// codeWithCheck completes 16 canonical symbols with their check symbol.
func codeWithCheck(tb testing.TB, symbols string) string {
	tb.Helper()
	if len(symbols) != codeSymbols {
		tb.Fatalf("codeWithCheck(%q): want %d symbols", symbols, codeSymbols)
	}
	return symbols + string(checkSymbol(symbols))
}

// codeEndingIn returns a valid code that starts with prefix14 and whose
// check symbol is c, found by trying the last two data symbols.
func codeEndingIn(tb testing.TB, prefix14 string, c byte) string {
	tb.Helper()
	for i := range 32 {
		for j := range 32 {
			s := prefix14 + crockford[i:i+1] + crockford[j:j+1]
			if checkSymbol(s) == c {
				return s + string(c)
			}
		}
	}
	tb.Fatalf("no code %s.. with check symbol %c", prefix14, c)
	return ""
}

// TestCheckSymbol compares the tests' checkSymbol with Crockford's
// definition worked out with math/big: the number the symbols write, modulo
// 37.
func TestCheckSymbol(t *testing.T) {
	for _, s := range []string{"0000000000000000", "0123456789ABCDEF", "ZZZZZZZZZZZZZZZZ", "GHJKMNPQRSTVWXYZ", "0000000000000010"} {
		n := new(big.Int)
		for i := range len(s) {
			n.Lsh(n, 5).Add(n, big.NewInt(int64(strings.IndexByte(crockford, s[i]))))
		}
		want := crockford[new(big.Int).Mod(n, big.NewInt(37)).Int64()]
		if got := checkSymbol(s); got != want {
			t.Errorf("checkSymbol(%q) = %c; want %c", s, got, want)
		}
	}
}

// TestClaimCodes checks that label codes as the claim package derives them go
// through a payload and back unchanged, and that claim reads them back.
func TestClaimCodes(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	for gen, serial := range []string{"GW-000001", "gw_2", "X", strings.Repeat("z", 64)} {
		code := claim.LabelCode(key, serial, gen)
		p, err := Payload(serial, code)
		if err != nil {
			t.Fatalf("Payload(%q, claim.LabelCode): %v", serial, err)
		}
		gotSerial, shown, err := ParsePayload(p)
		if err != nil || gotSerial != serial || shown != code {
			t.Fatalf("ParsePayload(%q) = %q, %q, %v; want %q, %q", p, gotSerial, shown, err, serial, code)
		}
		if c, err := claim.ParseCode(shown); err != nil || c.Kind != claim.CodeLabel || c.String() != code {
			t.Errorf("claim.ParseCode(%q) = %v, %v; want the label code back", shown, c, err)
		}
		typo := []byte(code)
		if typo[0] == '1' { // one symbol changed: the check must catch it
			typo[0] = '2'
		} else {
			typo[0] = '1'
		}
		if _, _, err := ParsePayload("GWPKI1:" + serial + ":" + string(typo)); !errors.Is(err, ErrInvalidCode) || !errors.Is(err, claim.ErrCodeTypo) {
			t.Errorf("ParsePayload with a typo in the code: error %v; want ErrInvalidCode and claim.ErrCodeTypo", err)
		}
	}
	display := claim.FormatDisplay([]byte{1, 2, 3, 4, 5})
	if _, err := Payload("GW-1", display); !errors.Is(err, ErrInvalidCode) {
		t.Errorf("Payload with a display code: error %v; want ErrInvalidCode", err)
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	code := codeWithCheck(t, "0123456789ABCDEF")
	tilde := codeEndingIn(t, "ABCDEFGHJKMNPQ", '~')
	for _, tc := range []struct {
		serial, code string
		want         string
	}{
		{"GW-000042", code, "GWPKI1:GW-000042:" + code},
		{"GW-000042", formatCode(code), "GWPKI1:GW-000042:" + code},
		{"gw_1.a-B", strings.ToLower(formatCode(code)), "GWPKI1:gw_1.a-B:" + code},
		{"x", tilde, "GWPKI1:x:" + tilde},
		{strings.Repeat("S", 64), code, "GWPKI1:" + strings.Repeat("S", 64) + ":" + code},
	} {
		p, err := Payload(tc.serial, tc.code)
		if err != nil {
			t.Fatalf("Payload(%q, %q): %v", tc.serial, tc.code, err)
		}
		if p != tc.want {
			t.Errorf("Payload(%q, %q) = %q; want %q", tc.serial, tc.code, p, tc.want)
		}
		serial, shown, err := ParsePayload(p)
		if err != nil {
			t.Fatalf("ParsePayload(%q): %v", p, err)
		}
		if serial != tc.serial || shown != formatCode(strings.ToUpper(tc.want[len(tc.want)-codeLen:])) {
			t.Errorf("ParsePayload(%q) = %q, %q; want %q, %q", p, serial, shown, tc.serial, formatCode(tc.want[len(tc.want)-codeLen:]))
		}
		if !strings.Contains(shown, "-") || len(shown) != shownCodeLen {
			t.Errorf("ParsePayload(%q) code = %q; want the shown form XXXX-XXXX-XXXX-XXXX-C", p, shown)
		}
	}
}

func TestParsePayloadTolerance(t *testing.T) {
	code := codeWithCheck(t, "0123456789ABCDEF")
	shown := formatCode(code)
	for _, in := range []string{
		"GWPKI1:GW-7:" + code,
		"gwpki1:GW-7:" + code,
		"GwPkI1:GW-7:" + shown,
		"GWPKI1:GW-7:" + strings.ToLower(shown),
		"GWPKI1:GW-7:" + strings.ReplaceAll(shown, "-", " "),
		"GWPKI1:GW-7:0I23-4567-89AB-CDEF-" + code[16:], // I read as 1
		"GWPKI1:GW-7:o123-4567-89AB-CDEF-" + code[16:], // o read as 0
		" GWPKI1:GW-7:" + code + "\r\n",                // a scanner's Enter
	} {
		serial, got, err := ParsePayload(in)
		if err != nil {
			t.Errorf("ParsePayload(%q): %v", in, err)
			continue
		}
		if serial != "GW-7" || got != shown {
			t.Errorf("ParsePayload(%q) = %q, %q; want %q, %q", in, serial, got, "GW-7", shown)
		}
	}
}

func TestParsePayloadRefusals(t *testing.T) {
	code := codeWithCheck(t, "0123456789ABCDEF")
	wrongCheck := code[:16] + string(crockford[(strings.IndexByte(crockford, code[16])+1)%37])
	for _, tc := range []struct {
		name, in string
		want     []error
	}{
		{"empty", "", []error{ErrNotPayload}},
		{"plain serial", "GW-000042", []error{ErrNotPayload}},
		{"other QR", "https://example.com/GWPKI1:GW-1:" + code, []error{ErrNotPayload}},
		{"prefix without colon", "GWPKI1GW-1:" + code, []error{ErrNotPayload}},
		{"version 2", "GWPKI2:GW-1:" + code, []error{ErrInvalidPayload}},
		{"version 10", "gwpki10:GW-1:" + code, []error{ErrInvalidPayload}},
		{"no parts", "GWPKI1:", []error{ErrInvalidPayload}},
		{"serial only", "GWPKI1:GW-1", []error{ErrInvalidPayload}},
		{"code only", "GWPKI1:" + code, []error{ErrInvalidPayload}},
		{"empty serial", "GWPKI1::" + code, []error{ErrInvalidPayload}},
		{"empty code", "GWPKI1:GW-1:", []error{ErrInvalidPayload, ErrInvalidCode}},
		{"third part", "GWPKI1:GW-1:" + code + ":x", []error{ErrInvalidPayload}},
		{"space in serial", "GWPKI1:GW 1:" + code, []error{ErrInvalidPayload}},
		{"serial starting with -", "GWPKI1:-GW1:" + code, []error{ErrInvalidPayload}},
		{"serial too long", "GWPKI1:" + strings.Repeat("S", 65) + ":" + code, []error{ErrInvalidPayload}},
		{"non-ASCII serial", "GWPKI1:GWé:" + code, []error{ErrInvalidPayload}},
		{"short code", "GWPKI1:GW-1:" + code[:16], []error{ErrInvalidPayload, ErrInvalidCode}},
		{"long code", "GWPKI1:GW-1:" + code + "0", []error{ErrInvalidPayload, ErrInvalidCode}},
		{"U in data", "GWPKI1:GW-1:U" + code[1:], []error{ErrInvalidPayload, ErrInvalidCode}},
		{"* in data", "GWPKI1:GW-1:*" + code[1:], []error{ErrInvalidPayload, ErrInvalidCode}},
		{"bad character", "GWPKI1:GW-1:0123456789ABCDE!" + code[16:], []error{ErrInvalidPayload, ErrInvalidCode}},
		{"underscore in code", "GWPKI1:GW-1:0123_4567_89AB_CDEF_" + code[16:], []error{ErrInvalidPayload, ErrInvalidCode}},
		{"wrong check", "GWPKI1:GW-1:" + wrongCheck, []error{ErrInvalidPayload, ErrInvalidCode}},
		{"NUL", "GWPKI1:GW-1:" + code + "\x00", []error{ErrInvalidPayload, ErrInvalidCode}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serial, got, err := ParsePayload(tc.in)
			if err == nil {
				t.Fatalf("ParsePayload(%q) = %q, %q; want an error", tc.in, serial, got)
			}
			for _, want := range tc.want {
				if !errors.Is(err, want) {
					t.Errorf("ParsePayload(%q) error %q; want it to match %q", tc.in, err, want)
				}
			}
			if msg := err.Error(); strings.Contains(msg, code[:8]) || strings.Contains(msg, wrongCheck[:8]) {
				t.Errorf("ParsePayload(%q) error %q repeats the code", tc.in, msg)
			}
		})
	}
}

func TestPayloadRefusals(t *testing.T) {
	code := codeWithCheck(t, "0123456789ABCDEF")
	for _, tc := range []struct {
		name, serial, code string
		code2              bool // the code is at fault
	}{
		{"empty serial", "", code, false},
		{"colon in serial", "GW:1", code, false},
		{"caret in serial", "GW^1", code, false},
		{"empty code", "GW-1", "", true},
		{"wrong check", "GW-1", code[:16] + "0", true},
		{"colon in code", "GW-1", code[:8] + ":" + code[8:], true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Payload(tc.serial, tc.code)
			if err == nil {
				t.Fatalf("Payload(%q, %q) = %q; want an error", tc.serial, tc.code, p)
			}
			if !errors.Is(err, ErrInvalidLabel) || errors.Is(err, ErrInvalidCode) != tc.code2 {
				t.Errorf("Payload(%q, %q) error %q; want ErrInvalidLabel, ErrInvalidCode %v", tc.serial, tc.code, err, tc.code2)
			}
		})
	}
}
