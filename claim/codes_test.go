package claim

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Known vectors. They were computed by an independent implementation (a
// few lines of Python's hmac and int arithmetic), so a refactor that
// changes a derivation, the bit order or the check symbol cannot pass by
// agreeing with itself. Changing them breaks every label ever printed.
var (
	vectorKey = func() []byte {
		k := make([]byte, 32)
		for i := range k {
			k[i] = byte(i)
		}
		return k
	}()
	vectorSerial = "GW-000042"
	// 2030-01-01T00:00:00Z, the start of window 6311520.
	vectorTime = time.Unix(1893456000, 0)
)

var codeVectors = []struct {
	generation      int
	secret          string // hex
	label           string
	display, before string // windows 6311520 and 6311519
}{
	{1, "f2c987f32ca1aff4d1e11f4f2ead170de69d031f68c674bb23b5a39829aa848b", "WQNC-QFQM-HGQE-TZF5-X", "YTAS-CF99-H", "TD2W-A3Q1-G"},
	{2, "f5dc82e2447aeb6208c36d220310544da7e96a8378e933ec27d26adf1af2e413", "RN56-H3B4-3W8F-FRXZ-G", "AR6D-QWKC-3", "RSYV-XWEY-$"},
}

func TestCodeKnownVectors(t *testing.T) {
	for _, v := range codeVectors {
		secret := ClaimSecret(vectorKey, vectorSerial, v.generation)
		if got := hex.EncodeToString(secret); got != v.secret {
			t.Errorf("ClaimSecret(key, %s, %d) = %s; want %s", vectorSerial, v.generation, got, v.secret)
		}
		if got := LabelCode(vectorKey, vectorSerial, v.generation); got != v.label {
			t.Errorf("LabelCode(key, %s, %d) = %s; want %s", vectorSerial, v.generation, got, v.label)
		}
		if got := DisplayCode(secret, vectorSerial, vectorTime); got != v.display {
			t.Errorf("DisplayCode(gen %d, %v) = %s; want %s", v.generation, vectorTime.UTC(), got, v.display)
		}
		// The last second of the window before.
		if got := DisplayCode(secret, vectorSerial, vectorTime.Add(-time.Second)); got != v.before {
			t.Errorf("DisplayCode(gen %d, %v) = %s; want %s", v.generation, vectorTime.Add(-time.Second).UTC(), got, v.before)
		}
		// The window lasts 300 s.
		if got := DisplayCode(secret, vectorSerial, vectorTime.Add(DisplayWindow-time.Second)); got != v.display {
			t.Errorf("DisplayCode(gen %d) at the window's last second = %s; want %s", v.generation, got, v.display)
		}
	}
	for _, tc := range []struct {
		b    []byte
		want string
	}{
		{make([]byte, 5), "0000-0000-0"},
		{bytes.Repeat([]byte{0xff}, 5), "ZZZZ-ZZZZ-F"},
		{bytes.Repeat([]byte{0xff}, 10), "ZZZZ-ZZZZ-ZZZZ-ZZZZ-~"},
	} {
		format := FormatDisplay
		if len(tc.b) == 10 {
			format = FormatLabel
		}
		if got := format(tc.b); got != tc.want {
			t.Errorf("format(%x) = %s; want %s", tc.b, got, tc.want)
		}
	}
}

// TestCrockfordCheck holds the check symbol to Crockford's definition on
// numbers worked out by hand: the value of the data symbols mod 37, in the
// alphabet 0-9 A-Z (without I L O U) * ~ $ = U.
func TestCrockfordCheck(t *testing.T) {
	for _, tc := range []struct {
		data  string
		check string
	}{
		{"00000000", "0"},
		{"0000000Z", "Z"}, // 31
		{"00000010", "*"}, // 32
		{"00000011", "~"}, // 33
		{"00000012", "$"}, // 34
		{"00000013", "="}, // 35
		{"00000014", "U"}, // 36
		{"00000015", "0"}, // 37
		{"0000016J", "D"}, // 1*1024 + 6*32 + 18 = 1234 = 33*37 + 13
	} {
		code := tc.data + tc.check
		got, err := ParseCode(code)
		if err != nil || got.Symbols != code || got.Kind != CodeDisplay {
			t.Errorf("ParseCode(%s) = %+v, %v; want the display code %s", code, got, err, code)
		}
		for i := 0; i < len(checkAlphabet); i++ {
			if c := checkAlphabet[i : i+1]; c != tc.check {
				if _, err := ParseCode(tc.data + c); !errors.Is(err, ErrCodeTypo) {
					t.Errorf("ParseCode(%s%s) = %v; want ErrCodeTypo (the check is %s)", tc.data, c, err, tc.check)
				}
			}
		}
	}
	// FormatDisplay computes the same check for any 40-bit number.
	for _, n := range []uint64{0, 1, 31, 32, 36, 37, 38, 1234, 1023, 996, 1<<40 - 1, 0xdeadbeef} {
		b := make([]byte, 5)
		for i := range 5 {
			b[4-i] = byte(n >> (8 * i))
		}
		code := FormatDisplay(b)
		if got, want := code[len(code)-1], checkAlphabet[n%37]; got != want {
			t.Errorf("check symbol of %d (%s) = %c; want %c (%d mod 37 = %d)", n, code, got, want, n, n%37)
		}
	}
}

func TestParseCodeNormalises(t *testing.T) {
	const display = "YTAS-CF99-H"
	const label = "WQNC-QFQM-HGQE-TZF5-X"
	for _, tc := range []struct {
		in   string
		want Code
	}{
		{display, Code{CodeDisplay, "YTASCF99H"}},
		{"ytas-cf99-h", Code{CodeDisplay, "YTASCF99H"}},
		{"YTASCF99H", Code{CodeDisplay, "YTASCF99H"}},
		{" yt as cf 99 h ", Code{CodeDisplay, "YTASCF99H"}},
		{"--YTAS--CF99--H--", Code{CodeDisplay, "YTASCF99H"}},
		{label, Code{CodeLabel, "WQNCQFQMHGQETZF5X"}},
		{"wqnc qfqm hgqe tzf5 x", Code{CodeLabel, "WQNCQFQMHGQETZF5X"}},
		// I and L are 1, O is 0, in either case, the check included.
		{"0000-00I1-~", Code{CodeDisplay, "00000011~"}},
		{"0000-0000-o", Code{CodeDisplay, "000000000"}},
		{"OOOO-OOOO-O", Code{CodeDisplay, "000000000"}},
		{"0000-00il-~", Code{CodeDisplay, "00000011~"}},
		{"0000-00L1-~", Code{CodeDisplay, "00000011~"}},
		// u is the check symbol 36.
		{"0000-0014-u", Code{CodeDisplay, "00000014U"}},
	} {
		got, err := ParseCode(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseCode(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if s := got.String(); strings.ReplaceAll(s, "-", "") != tc.want.Symbols || (got.Kind == CodeDisplay) != (len(s) == 11) {
			t.Errorf("ParseCode(%q).String() = %q; want %s grouped by four", tc.in, s, tc.want.Symbols)
		}
	}
	if got, _ := ParseCode(display); got.String() != display {
		t.Errorf("ParseCode(%s).String() = %s; want it back", display, got)
	}
	if got, _ := ParseCode(label); got.String() != label {
		t.Errorf("ParseCode(%s).String() = %s; want it back", label, got)
	}
}

func TestParseCodeRefuses(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		{"", ErrCodeMalformed},
		{"----", ErrCodeMalformed},
		{"YTAS-CF99", ErrCodeMalformed},           // check missing
		{"YTAS-CF99-HH", ErrCodeMalformed},        // 10 symbols
		{"WQNC-QFQM-HGQE-TZF5", ErrCodeMalformed}, // 16
		{"WQNC-QFQM-HGQE-TZF5-XX", ErrCodeMalformed},
		{"YTAS-CU99-H", ErrCodeMalformed}, // U is only a check symbol
		{"YTAS-C*99-H", ErrCodeMalformed}, // so is *
		{"YTAS-CF99-#", ErrCodeMalformed},
		{"YTAS_CF99_H", ErrCodeMalformed}, // only hyphens and spaces are ignored
		{"YTAS\tCF99-H", ErrCodeMalformed},
		{"YTAS-CF99-Ｈ", ErrCodeMalformed}, // fullwidth H
		{"YTAS-CF99-H\x00", ErrCodeMalformed},
		{strings.Repeat("-", 100) + "YTAS-CF99-H", ErrCodeMalformed},
		{"YTAS-CF99-J", ErrCodeTypo},
		{"YTAS-CF98-H", ErrCodeTypo},
		{"WQNC-QFQM-HGQE-TZF5-Y", ErrCodeTypo},
	} {
		got, err := ParseCode(tc.in)
		if !errors.Is(err, tc.want) || got != (Code{}) {
			t.Errorf("ParseCode(%q) = %+v, %v; want %v", tc.in, got, err, tc.want)
		}
		if errors.Is(err, ErrCodeMalformed) && errors.Is(err, ErrCodeTypo) {
			t.Errorf("ParseCode(%q) = %v: both malformed and a typo", tc.in, err)
		}
		if err != nil && len(tc.in) > 3 && strings.Contains(err.Error(), tc.in) {
			t.Errorf("ParseCode(%q) error %q repeats the input", tc.in, err)
		}
	}
}

// TestCheckCatchesSubstitutions changes every symbol of sample codes to
// every other symbol: the result must never parse.
func TestCheckCatchesSubstitutions(t *testing.T) {
	for _, code := range []string{"YTASCF99H", "WQNCQFQMHGQETZF5X", "000000000", "ZZZZZZZZF", "RSYVXWEY$"} {
		n := 0
		for i := range code {
			alphabet := crockford
			if i == len(code)-1 {
				alphabet = checkAlphabet
			}
			for j := range len(alphabet) {
				if alphabet[j] == code[i] {
					continue
				}
				typo := code[:i] + alphabet[j:j+1] + code[i+1:]
				if _, err := ParseCode(typo); !errors.Is(err, ErrCodeTypo) {
					t.Errorf("ParseCode(%s), one symbol off %s: %v; want ErrCodeTypo", typo, code, err)
				}
				n++
			}
		}
		if want := (len(code)-1)*31 + 36; n != want {
			t.Errorf("%s: tried %d substitutions; want %d", code, n, want)
		}
	}
}

// TestCheckCatchesTranspositions swaps every two different symbols of many
// derived codes. 32 has order 36 mod 37, so swapping data symbols a and b d
// places apart changes the number by (a-b)*(32^d-1)*32^k, a multiple of 37
// only when d is a multiple of 36; swapping a data symbol k places from the
// end with the check goes unseen only where 32^k = -1 mod 37, k = 18. A code
// has at most 17 symbols: every transposition is caught (more than the
// "most" that Crockford promises for mod 37 in general).
func TestCheckCatchesTranspositions(t *testing.T) {
	n := 0
	for serial := range 200 {
		for _, code := range []string{
			strings.ReplaceAll(LabelCode(vectorKey, fmt.Sprintf("GW-%06d", serial), serial), "-", ""),
			displayCodeAt(vectorKey, "GW-1", uint64(serial)),
		} {
			for i := 0; i < len(code); i++ {
				for j := i + 1; j < len(code); j++ {
					if code[i] == code[j] {
						continue
					}
					b := []byte(code)
					b[i], b[j] = b[j], b[i]
					n++
					if _, err := ParseCode(string(b)); err == nil {
						t.Errorf("ParseCode(%s), %s with symbols %d and %d swapped: ok; want an error", b, code, i, j)
					}
				}
			}
		}
	}
	if n < 20000 {
		t.Errorf("tried %d transpositions; want more than 20000", n)
	}
}

func TestVerifyDisplayCode(t *testing.T) {
	secret := ClaimSecret(vectorKey, vectorSerial, 1)
	v := codeVectors[0]
	parse := func(s string) Code {
		c, err := ParseCode(s)
		if err != nil {
			t.Fatalf("ParseCode(%s): %v", s, err)
		}
		return c
	}
	cur, prev := parse(v.display), parse(v.before)
	for _, tc := range []struct {
		name string
		code Code
		at   time.Time
		want bool
	}{
		{"current window", cur, vectorTime, true},
		{"current window, its end", cur, vectorTime.Add(DisplayWindow - time.Second), true},
		{"one window later", cur, vectorTime.Add(DisplayWindow), true},
		{"two windows later", cur, vectorTime.Add(2 * DisplayWindow), false},
		{"one window earlier", cur, vectorTime.Add(-time.Second), false},
		{"previous window's code", prev, vectorTime, true},
		{"previous window's code, later", prev, vectorTime.Add(DisplayWindow), false},
		{"lower case", parse(strings.ToLower(v.display)), vectorTime, true},
		{"another generation's code", parse(codeVectors[1].display), vectorTime, false},
		{"a label code", parse(v.label), vectorTime, false},
		{"zero code", Code{}, vectorTime, false},
	} {
		if got := VerifyDisplayCode(secret, vectorSerial, tc.code, tc.at); got != tc.want {
			t.Errorf("%s: VerifyDisplayCode(%s at %v) = %v; want %v", tc.name, tc.code, tc.at.UTC(), got, tc.want)
		}
	}
	if VerifyDisplayCode(secret, "GW-000043", cur, vectorTime) {
		t.Errorf("VerifyDisplayCode(%s) for another serial = true; want false", cur)
	}
	if VerifyDisplayCode(ClaimSecret(vectorKey, vectorSerial, 2), vectorSerial, cur, vectorTime) {
		t.Errorf("VerifyDisplayCode(%s) with the next generation's secret = true; want false", cur)
	}
}

func TestVerifyLabelCode(t *testing.T) {
	label, err := ParseCode(strings.ToLower(strings.ReplaceAll(codeVectors[0].label, "-", " ")))
	if err != nil {
		t.Fatal(err)
	}
	if !VerifyLabelCode(vectorKey, vectorSerial, 1, label) {
		t.Errorf("VerifyLabelCode(%s, generation 1) = false; want true", label)
	}
	if VerifyLabelCode(vectorKey, vectorSerial, 2, label) {
		t.Errorf("VerifyLabelCode(%s, generation 2) = true; want false: a reissue retires the label", label)
	}
	if VerifyLabelCode(vectorKey, "GW-000043", 1, label) {
		t.Errorf("VerifyLabelCode(%s) for another serial = true; want false", label)
	}
	other := bytes.Clone(vectorKey)
	other[0] ^= 1
	if VerifyLabelCode(other, vectorSerial, 1, label) {
		t.Errorf("VerifyLabelCode(%s) under another key = true; want false", label)
	}
	display, _ := ParseCode(codeVectors[0].display)
	if VerifyLabelCode(vectorKey, vectorSerial, 1, display) {
		t.Errorf("VerifyLabelCode(display code %s) = true; want false", display)
	}
}

func TestDerivationsSeparate(t *testing.T) {
	// The claim secret and the label code come from one key and must not
	// be related: the label's bits are not the secret's.
	secret := ClaimSecret(vectorKey, vectorSerial, 1)
	if FormatLabel(secret) == LabelCode(vectorKey, vectorSerial, 1) {
		t.Error("the label code is the claim secret's first 80 bits; want separate derivations")
	}
	// A serial cannot borrow bits from the generation: "A" gen 256 and
	// "A\x00\x01" gen 0 would collide without the fixed-width generation.
	if bytes.Equal(ClaimSecret(vectorKey, "A", 256), ClaimSecret(vectorKey, "A\x00\x00\x00\x00\x00\x00\x00\x01", 0)) {
		t.Error("ClaimSecret inputs run into each other")
	}
	if len(secret) != 32 {
		t.Errorf("len(ClaimSecret) = %d; want 32", len(secret))
	}
}

func TestDisplayWindowBefore1970(t *testing.T) {
	for _, tc := range []struct {
		unix int64
		want uint64
	}{
		{0, 0}, {299, 0}, {300, 1}, {-1, ^uint64(0)}, {-300, ^uint64(0)}, {-301, ^uint64(0) - 1},
	} {
		if got := displayWindowOf(time.Unix(tc.unix, 0)); got != tc.want {
			t.Errorf("displayWindowOf(%d) = %d; want %d", tc.unix, got, tc.want)
		}
	}
}

func FuzzParseCode(f *testing.F) {
	for _, s := range []string{
		"YTAS-CF99-H", "ytas cf99 h", "WQNC-QFQM-HGQE-TZF5-X", "0000-0014-u", "OOOO-IIII-L",
		"", "-", "YTAS-CF99-J", "YTAS-CU99-H", "WQNC-QFQM-HGQE-TZF5-XX", "\xff\xfe", "ＹＴＡＳ",
		strings.Repeat("- ", 40),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCode(s)
		if err != nil {
			if errors.Is(err, ErrCodeMalformed) == errors.Is(err, ErrCodeTypo) {
				t.Fatalf("ParseCode(%q) = %v; want exactly one of malformed or typo", s, err)
			}
			if c != (Code{}) {
				t.Fatalf("ParseCode(%q) = %+v with error %v; want the zero Code", s, c, err)
			}
			return
		}
		switch {
		case c.Kind == CodeDisplay && len(c.Symbols) == displayLen:
		case c.Kind == CodeLabel && len(c.Symbols) == labelLen:
		default:
			t.Fatalf("ParseCode(%q) = %+v; want 9 symbols of a display or 17 of a label code", s, c)
		}
		for i := 0; i < len(c.Symbols)-1; i++ {
			if !strings.Contains(crockford, c.Symbols[i:i+1]) {
				t.Fatalf("ParseCode(%q) = %+v: symbol %q outside the alphabet", s, c, c.Symbols[i])
			}
		}
		// Round trip: the shown form parses to the same code, and so do
		// the bare symbols.
		for _, again := range []string{c.String(), c.Symbols, strings.ToLower(c.String())} {
			if c2, err := ParseCode(again); err != nil || c2 != c {
				t.Fatalf("ParseCode(%q) = %+v, but ParseCode(%q) = %+v, %v", s, c, again, c2, err)
			}
		}
	})
}
