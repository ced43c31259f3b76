// Package label implements the label a gateway gets on the production line:
// a QR code that an installer scans, and as text what they would otherwise
// type into `gwpki claim SERIAL CODE` or `gwpki tui`.
//
// # What a label holds
//
// A [Label] is 50 mm wide and 30 mm high. The QR code is on the left, with a
// quiet zone of four modules and error correction M (15% of it may be
// damaged). On the right, each under a small caption, are:
//
//   - SERIAL: the gateway serial, as in its certificates;
//   - MODEL: the product name, if one is given;
//   - CLAIM CODE: the label code, the gateway's single-use claim code
//     ([claim.LabelCode]), 16 Crockford base32 symbols and a check symbol,
//     shown XXXX-XXXX-XXXX-XXXX-C; this package reads codes with
//     [claim.ParseCode].
//
// The text is Go Mono, a monospaced font that tells 0 from O and 1 from l
// and I, bold for the values, each as large as its line allows up to an em
// of 3 mm. A value that would need an em under 1.3 mm wraps instead (only
// serials of more than about 38 characters do).
//
// # The payload
//
// The QR code encodes, in ASCII:
//
//	GWPKI1:<serial>:<label code, 17 symbols, upper case, no hyphens>
//
// for example GWPKI1:GW-000042:0123456789ABCDEFK. "GWPKI1" names the format
// and its version: a later format will be GWPKI2 and so on, and this
// package refuses versions it does not know with [ErrInvalidPayload] rather
// than guessing; text that is not a gwpki payload at all gives
// [ErrNotPayload]. A serial never holds ':' (see [ca.ValidateSerial]), so the
// parts cannot be confused. [Payload] makes it and [ParsePayload] reads it
// back, leniently where a scanner or a person may differ (prefix case,
// surrounding white space, hyphens, spaces, case and the misreadings I, L
// and O in the code) and strictly otherwise; it checks the code's check
// symbol, so a misprinted label is caught before a claim attempt is spent.
// It is what lets `gwpki claim` take a scanned payload in place of SERIAL
// CODE.
//
// The label code is a secret until the gateway is claimed: errors of this
// package never repeat it.
//
// # Formats and printing
//
// [PNG], [ZPL] and [SVG] lay a label out the same way:
//
//   - ZPL is for Zebra printers, the usual label printers on a production
//     line: send the bytes as they are to the printer's raw port,
//     `nc -q1 printer 9100 < label.zpl` or `lp -o raw`. Positions are in
//     printer dots, so a format is for one resolution: [ZPL] for 300 dpi
//     (^PW591 ^LL354), [ZPLAt] for 203 or 600 dpi. The printer encodes the QR
//     code itself (^BQN, automatic input mode, error correction M) and draws
//     the text in its font 0; field data goes through ^FH, so no character
//     of a label can start a ZPL command.
//   - PNG is for any other printer and for records: 591 x 354 pixels, 1 bit
//     per pixel, with a pHYs chunk of 300 dpi, so printed at 300 dpi (or
//     "actual size") it is 50 x 30 mm. QR modules are whole pixels, 5 to 7
//     (0.4 to 0.6 mm) for serials of up to 32 characters and never under 4,
//     so a 300 dpi printer prints them sharp.
//   - SVG is for layout tools and documents: width="50mm" height="30mm", the
//     user unit a millimetre, the QR code as one rect per run of dark
//     modules in a row, the text as <text> held to its width with
//     textLength whichever monospaced font the viewer has.
//
// Rendering is safe for concurrent use. The parsed fonts and the glyphs
// drawn so far are cached for the life of the process: printable ASCII in
// two weights at the couple of dozen sizes the layout uses, a few hundred
// small bitmaps in practice and at most about 4,000; a PNG
// label takes about half a millisecond, most of it go-qrcode choosing the
// best mask, a ZPL label a few microseconds.
package label
