package label

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

func encodeZPL(tb testing.TB, l Label, dpi int) string {
	tb.Helper()
	var b bytes.Buffer
	if err := ZPLAt(&b, l, dpi); err != nil {
		tb.Fatalf("ZPLAt(%+v, %d): %v", l, dpi, err)
	}
	return b.String()
}

// zplField is a field of a ZPL format: its commands up to ^FS.
type zplField struct {
	cmds map[string]string // command (2 letters) -> parameters
	data string            // ^FD data, hex escapes undone when ^FH came first
}

// parseZPL splits a format into its commands and fields. It fails on a '~'
// anywhere (a control command) and on a field data holding '^'.
func parseZPL(tb testing.TB, s string) (head []string, fields []zplField) {
	tb.Helper()
	if strings.Contains(s, "~") {
		tb.Fatalf("ZPL holds a '~':\n%s", s)
	}
	if !strings.HasPrefix(s, "^XA\n") || !strings.HasSuffix(s, "^XZ\n") || strings.Count(s, "^XA") != 1 || strings.Count(s, "^XZ") != 1 {
		tb.Fatalf("ZPL is not one format ^XA ... ^XZ:\n%s", s)
	}
	cur := zplField{cmds: map[string]string{}}
	for _, c := range strings.Split(strings.ReplaceAll(s, "\n", ""), "^")[1:] {
		name, param := c[:2], c[2:]
		switch {
		case name == "FD":
			if _, ok := cur.cmds["FH"]; ok {
				var b strings.Builder
				for i := 0; i < len(param); i++ {
					if param[i] == '_' {
						h, err := hex.DecodeString(param[i+1 : i+3])
						if err != nil {
							tb.Fatalf("bad hex escape in ^FD%s", param)
						}
						b.Write(h)
						i += 2
						continue
					}
					b.WriteByte(param[i])
				}
				param = b.String()
			}
			cur.data = param
		case name == "FS":
			fields = append(fields, cur)
			cur = zplField{cmds: map[string]string{}}
		case name == "FO" || name == "FT" || len(cur.cmds) > 0:
			cur.cmds[name] = param
		default:
			head = append(head, name+param)
		}
	}
	return head, fields
}

func TestZPL(t *testing.T) {
	l := sampleLabel(t)
	tilde := codeEndingIn(t, "ABCDEFGHJKMNPQ", '~')
	for _, tc := range []struct {
		label  Label
		dpi    int
		pw, ll string
	}{
		{l, 300, "PW591", "LL354"},
		{l, 203, "PW400", "LL240"},
		{l, 600, "PW1181", "LL709"},
		{Label{Serial: "gw_under_score", LabelCode: tilde, Model: "A_B & <C>"}, 300, "PW591", "LL354"},
		{Label{Serial: strings.Repeat("W", 64), LabelCode: tilde}, 203, "PW400", "LL240"},
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.label.Serial, tc.dpi), func(t *testing.T) {
			out := encodeZPL(t, tc.label, tc.dpi)
			head, fields := parseZPL(t, out)
			if got, want := strings.Join(head, " "), "XA CI0 "+tc.pw+" "+tc.ll+" LH0,0 XZ"; got != want {
				t.Errorf("commands outside fields %q; want %q", got, want)
			}
			p, err := Payload(tc.label.Serial, tc.label.LabelCode)
			if err != nil {
				t.Fatal(err)
			}
			lay, _, err := build(tc.label, tc.dpi, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(fields) == 0 {
				t.Fatalf("no fields in\n%s", out)
			}
			qr := fields[0]
			if got, want := qr.cmds["BQ"], fmt.Sprintf("N,2,%d,M", min(lay.module, 10)); got != want {
				t.Errorf("^BQ%s; want ^BQ%s", got, want)
			}
			if _, ok := qr.cmds["FH"]; !ok {
				t.Errorf("the QR field has no ^FH")
			}
			if qr.data != "MA,"+p {
				t.Errorf("QR field data %q; want %q", qr.data, "MA,"+p)
			}
			var texts []string
			for _, f := range fields[1:] {
				if f.cmds["FT"] == "" || !strings.HasPrefix(f.cmds["A0"], "N,") {
					t.Errorf("text field %q: want ^FT and ^A0N, got %v", f.data, f.cmds)
				}
				texts = append(texts, f.data)
			}
			joined := strings.Join(texts, "|")
			for _, want := range []string{"SERIAL", "CLAIM CODE", shownCode(t, tc.label.LabelCode)} {
				if !strings.Contains(joined, want) {
					t.Errorf("text fields %q; want %q among them", texts, want)
				}
			}
			if !strings.Contains(strings.Join(texts, ""), tc.label.Serial) || (tc.label.Model != "" && !strings.Contains(joined, tc.label.Model)) {
				t.Errorf("text fields %q; want the serial %q and the model %q", texts, tc.label.Serial, tc.label.Model)
			}
		})
	}
}

func TestZPLEscapes(t *testing.T) {
	code := codeEndingIn(t, "ABCDEFGHJKMNPQ", '~')
	out := encodeZPL(t, Label{Serial: "gw_1", LabelCode: code, Model: "A_B"}, 300)
	for _, want := range []string{"^FH^FDMA,GWPKI1:gw_5F1:" + code[:16] + "_7E^FS", "^FH^FDgw_5F1^FS", "^FH^FDA_5FB^FS", "_7E^FS"} {
		if !strings.Contains(out, want) {
			t.Errorf("ZPL lacks %q:\n%s", want, out)
		}
	}
	if got := zplEscape("^XZ~JR_x"); got != "_5EXZ_7EJR_5Fx" {
		t.Errorf(`zplEscape("^XZ~JR_x") = %q; want "_5EXZ_7EJR_5Fx"`, got)
	}
}

func TestZPLRefusesDPI(t *testing.T) {
	for _, dpi := range []int{0, 72, 203 + 1, 1200} {
		var b bytes.Buffer
		if err := ZPLAt(&b, sampleLabel(t), dpi); err == nil || b.Len() != 0 {
			t.Errorf("ZPLAt(%d dpi) = %v, %d bytes; want an error and nothing written", dpi, err, b.Len())
		}
	}
}

func TestZPLGolden(t *testing.T) {
	golden(t, "label.zpl", []byte(encodeZPL(t, sampleLabel(t), 300)))
	golden(t, "label-203dpi.zpl", []byte(encodeZPL(t, sampleLabel(t), 203)))
	var b bytes.Buffer
	if err := ZPL(&b, sampleLabel(t)); err != nil || b.String() != encodeZPL(t, sampleLabel(t), 300) {
		t.Errorf("ZPL differs from ZPLAt(300) (error %v)", err)
	}
}
