package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type loginLike struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		contentType string
		wantStatus  int // 0: accepted
	}{
		{"object", `{"username":"a","password":"b"}`, "application/json", 0},
		{"charset", `{"username":"a"}`, "application/json; charset=utf-8", 0},
		{"no content type", `{"username":"a"}`, "", 0},
		{"form", `username=a`, "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{"syntax", `{"username":`, "application/json", http.StatusBadRequest},
		{"unknown field", `{"user":"a"}`, "application/json", http.StatusBadRequest},
		{"wrong type", `{"username":1}`, "application/json", http.StatusBadRequest},
		{"trailing object", `{"username":"a"}{"username":"b"}`, "application/json", http.StatusBadRequest},
		{"trailing garbage", `{"username":"a"} x`, "application/json", http.StatusBadRequest},
		{"empty", ``, "application/json", http.StatusBadRequest},
		{"too large", `{"username":"` + strings.Repeat("a", MaxBody) + `"}`, "application/json", http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tt.body))
			if tt.contentType != "" {
				r.Header.Set("Content-Type", tt.contentType)
			}
			var v loginLike
			err := DecodeJSON(httptest.NewRecorder(), r, &v)
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatalf("DecodeJSON(%q) = %v; want nil", tt.body, err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Status != tt.wantStatus {
				t.Fatalf("DecodeJSON(%q) = %v; want status %d", tt.body, err, tt.wantStatus)
			}
			if strings.Contains(e.Msg, "aaaa") {
				t.Errorf("public message echoes the input: %q", e.Msg)
			}
		})
	}
}

func TestWriteErrorHidesCauses(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, httptest.NewRequest(http.MethodGet, "/", nil), errors.New("open /secret/path: token abc"))
	var body map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusInternalServerError || body["error"] != "internal error" {
		t.Errorf("got %d %v; want 500 internal error without the cause", rec.Code, body)
	}

	rec = httptest.NewRecorder()
	WriteError(rec, httptest.NewRequest(http.MethodGet, "/", nil),
		Errorf(http.StatusConflict, "user exists").WithHint("pick another name"))
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusConflict || body["error"] != "user exists" || body["hint"] != "pick another name" {
		t.Errorf("got %d %v; want 409 with message and hint", rec.Code, body)
	}
}

// FuzzDecodeJSON: any body gives a value or a 4xx *Error, never a panic.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"username":"a","password":"b"}`, `{`, `[]`, `{"username":"a"} {}`, "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		var v loginLike
		err := DecodeJSON(httptest.NewRecorder(), r, &v)
		var e *Error
		if err != nil && (!errors.As(err, &e) || e.Status < 400 || e.Status >= 500) {
			t.Fatalf("DecodeJSON(%q) = %v; want a 4xx *Error", body, err)
		}
	})
}
