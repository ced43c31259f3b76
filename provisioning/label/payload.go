package label

import (
	"fmt"
	"strings"

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/claim"
)

// PayloadPrefix starts every payload of this version. Readers match it
// case-insensitively.
const PayloadPrefix = "GWPKI1:"

const (
	codeLen      = 17 // symbols of a label code, the check symbol last
	shownCodeLen = 21 // XXXX-XXXX-XXXX-XXXX-C
)

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
// form [claim.ParseCode] accepts: hyphens and spaces dropped, upper case, I
// and L read as 1 and O as 0, the check symbol checked. The error wraps
// ErrInvalidCode and claim's, [claim.ErrCodeTypo] for a wrong check symbol.
func normalizeCode(s string) (string, error) {
	c, err := claim.ParseCode(s)
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: %w", ErrInvalidCode, err)
	case c.Kind != claim.CodeLabel:
		return "", fmt.Errorf("%w: a %s code, not a label code", ErrInvalidCode, c.Kind)
	}
	return c.Symbols, nil
}

// formatCode writes 17 canonical symbols as shown: XXXX-XXXX-XXXX-XXXX-C.
func formatCode(code string) string {
	return claim.Code{Kind: claim.CodeLabel, Symbols: code}.String()
}
