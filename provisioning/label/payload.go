package label

import (
	"fmt"
	"strings"

	"github.com/gwpki/gwpki/ca"
)

// PayloadPrefix starts every payload of this version. Readers match it
// case-insensitively.
const PayloadPrefix = "GWPKI1:"

const (
	codeSymbols = 16 // Crockford base32 symbols before the check symbol
	codeLen     = codeSymbols + 1
	// shownCodeLen is the length of a code as shown: XXXX-XXXX-XXXX-XXXX-C.
	shownCodeLen = codeLen + 4
)

// crockford holds the symbols of Crockford's base32 in value order; the check
// symbol may also take the values 32 to 36, written *, ~, $, = and U.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ*~$=U"

// symbolValue is the value of each canonical symbol, or -1.
var symbolValue = func() (v [256]int8) {
	for i := range v {
		v[i] = -1
	}
	for i := range len(crockford) {
		v[crockford[i]] = int8(i)
	}
	return v
}()

// Payload returns what a label's QR code encodes for the gateway serial and
// its label code: "GWPKI1:" + serial + ":" + the 17 symbols of the code in
// upper case without hyphens, e.g. "GWPKI1:GW-000042:0123456789ABCDEFX".
//
// labelCode may be given as shown (with hyphens), in lower case or with the
// usual misreadings (I and L for 1, O for 0). Payload returns an error
// matching [ErrInvalidLabel] when the serial is not a gateway serial (see
// [ca.ValidateSerial]) and one matching [ErrInvalidCode] too when the code is
// malformed or its check symbol does not match.
func Payload(serial, labelCode string) (string, error) {
	if err := ca.ValidateSerial(serial); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidLabel, err)
	}
	code, err := normalizeCode(labelCode)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidLabel, err)
	}
	return payload(serial, code), nil
}

func payload(serial, code string) string {
	return PayloadPrefix + serial + ":" + code
}

// ParsePayload reads back a scanned payload. It returns the serial as printed
// and the label code as shown on the label (XXXX-XXXX-XXXX-XXXX-C, upper
// case), so that ParsePayload of a [Payload] gives back its inputs.
//
// The prefix is matched case-insensitively and white space around the payload
// (a scanner's trailing newline) is ignored; the code part may hold hyphens
// and spaces, lower case and the misreadings I, L and O. Everything else is
// strict: exactly the prefix, one serial, one ":", one code. Text without a
// gwpki prefix gives [ErrNotPayload]; a gwpki payload of another version or
// with a bad structure, serial or code gives [ErrInvalidPayload] (and
// [ErrInvalidCode] for a code at fault). Errors never repeat the code.
func ParsePayload(s string) (serial, labelCode string, err error) {
	s = strings.TrimSpace(s)
	rest, ok := cutPrefixFold(s, PayloadPrefix)
	if !ok {
		if v, ok := otherVersion(s); ok {
			return "", "", fmt.Errorf("%w: version %s is not supported by this gwpki (it reads GWPKI1)", ErrInvalidPayload, v)
		}
		return "", "", ErrNotPayload
	}
	serial, code, ok := strings.Cut(rest, ":")
	switch {
	case !ok:
		return "", "", fmt.Errorf("%w: want GWPKI1:<serial>:<code>, found no second ':'", ErrInvalidPayload)
	case strings.Contains(code, ":"):
		return "", "", fmt.Errorf("%w: want GWPKI1:<serial>:<code>, found more than two ':'", ErrInvalidPayload)
	}
	if err := ca.ValidateSerial(serial); err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrInvalidPayload, err)
	}
	code, err = normalizeCode(code)
	if err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrInvalidPayload, err)
	}
	return serial, formatCode(code), nil
}

// cutPrefixFold is strings.CutPrefix, matching the prefix case-insensitively.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// otherVersion reports whether s starts with "GWPKI<digits>:" and returns the
// version it names.
func otherVersion(s string) (string, bool) {
	rest, ok := cutPrefixFold(s, "GWPKI")
	if !ok {
		return "", false
	}
	n := 0
	for n < len(rest) && n < 9 && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if n == 0 || n >= len(rest) || rest[n] != ':' {
		return "", false
	}
	return "GWPKI" + rest[:n], true
}

// normalizeCode returns the 17 canonical symbols of a label code given in any
// accepted form: hyphens and spaces dropped, upper case, I and L read as 1 and
// O as 0. It checks the symbols and the check symbol (the value of the 16
// symbols modulo 37).
func normalizeCode(s string) (string, error) {
	var b [codeLen]byte
	n := 0
	for i := range len(s) {
		c := s[i]
		switch {
		case c == '-' || c == ' ':
			continue
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		}
		switch c {
		case 'I', 'L':
			c = '1'
		case 'O':
			c = '0'
		}
		if n == codeLen {
			return "", fmt.Errorf("%w: longer than %d symbols", ErrInvalidCode, codeLen)
		}
		v := symbolValue[c]
		switch {
		case v < 0:
			return "", fmt.Errorf("%w: a character that is not a Crockford base32 symbol", ErrInvalidCode)
		case v >= 32 && n < codeSymbols:
			return "", fmt.Errorf("%w: a check-only symbol (*~$=U) before the last position", ErrInvalidCode)
		}
		b[n] = c
		n++
	}
	if n != codeLen {
		return "", fmt.Errorf("%w: %d symbols, want %d", ErrInvalidCode, n, codeLen)
	}
	if checkSymbol(string(b[:codeSymbols])) != b[codeSymbols] {
		return "", fmt.Errorf("%w: the check symbol does not match (a typo?)", ErrInvalidCode)
	}
	return string(b[:]), nil
}

// checkSymbol returns Crockford's check symbol of canonical base32 symbols:
// the number they write, modulo 37.
func checkSymbol(symbols string) byte {
	m := 0
	for i := range len(symbols) {
		m = (m*32 + int(symbolValue[symbols[i]])) % 37
	}
	return crockford[m]
}

// formatCode writes 17 canonical symbols as shown: XXXX-XXXX-XXXX-XXXX-C.
func formatCode(code string) string {
	var b strings.Builder
	b.Grow(shownCodeLen)
	for i := 0; i < codeSymbols; i += 4 {
		b.WriteString(code[i : i+4])
		b.WriteByte('-')
	}
	b.WriteByte(code[codeSymbols])
	return b.String()
}
