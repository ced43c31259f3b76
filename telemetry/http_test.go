package telemetry

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/go-cmp/cmp"
)

func serve(t *testing.T, s *Store) *httptest.Server {
	t.Helper()
	r := chi.NewRouter()
	r.Get("/v1/devices/{serial}/telemetry", s.Handler("serial"))
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, srv *httptest.Server, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q; want application/json", path, ct)
	}
	return resp.StatusCode, body
}

func TestHandler(t *testing.T) {
	s, _, st := fixture(t)
	srv := serve(t, s)
	since, until := base.Add(time.Hour), base.Add(2*time.Hour)
	v := url.Values{"since": {since.Format(time.RFC3339)}, "until": {until.Format(time.RFC3339)}, "limit": {"4"}}
	want := st.want("GW-A", since, until, "")
	var got []Record
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		code, body := get(t, srv, "/v1/devices/GW-A/telemetry?"+v.Encode())
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, body)
		}
		var page Page
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatalf("answer %s: %v", body, err)
		}
		got = append(got, page.Messages...)
		if page.Next == "" {
			break
		}
		v.Set("after", page.Next)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("HTTP pages (-want +got):\n%s", diff)
	}

	// The wire shape: JSON payloads inline, others in base64, empty list
	// rather than null.
	code, body := get(t, srv, "/v1/devices/GW-A/telemetry?topic=gw/GW-A/state&limit=1")
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	msgs := raw["messages"].([]any)
	m := msgs[0].(map[string]any)
	if m["payload"] != nil || m["payload_base64"] != "AP9ub3QganNvbg==" || m["time"] != "2026-11-26T00:00:01Z" || raw["next"] == nil {
		t.Errorf("binary message on the wire: %s", body)
	}
	code, body = get(t, srv, "/v1/devices/GW-A/telemetry?limit=1")
	if code != http.StatusOK || !strings.Contains(string(body), `"payload":{"i":0}`) {
		t.Errorf("JSON payload on the wire: %d %s; want it inline", code, body)
	}
	code, body = get(t, srv, "/v1/devices/NOBODY/telemetry")
	if code != http.StatusOK || strings.TrimSpace(string(body)) != `{"messages":[]}` {
		t.Errorf("unknown gateway: %d %s; want 200 {\"messages\":[]}", code, body)
	}
}

func TestHandlerBadParams(t *testing.T) {
	s, _ := openTemp(t, Options{})
	if err := s.Append(context.Background(), msg("GW1", "telemetry", time.Time{}, `{}`)); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, s)
	for _, tc := range []struct{ name, path, want string }{
		{"bad since", "/v1/devices/GW1/telemetry?since=yesterday", "since must be an RFC 3339 time"},
		{"date only", "/v1/devices/GW1/telemetry?until=2026-11-26", "until must be an RFC 3339 time"},
		{"until before since", "/v1/devices/GW1/telemetry?since=2026-11-26T01:00:00Z&until=2026-11-26T00:00:00Z", "until must be after since"},
		{"empty window", "/v1/devices/GW1/telemetry?since=2026-11-26T01:00:00Z&until=2026-11-26T01:00:00Z", "until must be after since"},
		{"limit zero", "/v1/devices/GW1/telemetry?limit=0", "limit must be an integer from 1 to 1000"},
		{"limit too big", "/v1/devices/GW1/telemetry?limit=1001", "limit must be"},
		{"limit negative", "/v1/devices/GW1/telemetry?limit=-5", "limit must be"},
		{"limit not a number", "/v1/devices/GW1/telemetry?limit=ten", "limit must be"},
		{"limit twice", "/v1/devices/GW1/telemetry?limit=1&limit=2", `\"limit\" given more than once`},
		{"foreign topic", "/v1/devices/GW1/telemetry?topic=gw/GW2/telemetry", "topic must be a topic under gw/GW1/"},
		{"wildcard topic", "/v1/devices/GW1/telemetry?topic=gw/GW1/%23", "topic must be"},
		{"bad cursor", "/v1/devices/GW1/telemetry?after=AAAA", "after is not a cursor"},
		{"unknown parameter", "/v1/devices/GW1/telemetry?from=2026-11-26T00:00:00Z", `unknown query parameter \"from\"`},
		{"bad serial", "/v1/devices/GW%201/telemetry", "invalid gateway serial"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, srv, tc.path)
			if code != http.StatusBadRequest {
				t.Fatalf("status %d; want 400 (%s)", code, body)
			}
			var e struct{ Error, Hint string }
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if !strings.Contains(string(body), tc.want) {
				t.Errorf("body %s; want it to contain %q", body, tc.want)
			}
			if e.Hint == "" && tc.name != "bad serial" {
				t.Errorf("body %s has no hint", body)
			}
		})
	}
}
