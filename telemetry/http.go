package telemetry

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/gwpki/gwpki/internal/httpapi"
)

const queryHint = "parameters: since, until (RFC 3339), limit (1-1000), topic, after (the next cursor of the previous page)"

// Handler serves GET .../telemetry?since=&until=&limit=&topic=&after= for
// the gateway named by the chi URL parameter gatewayParam, answering a
// [Page] as JSON ({"messages": [...], "next": "..."}). Bad parameters are
// answered 400 with {"error", "hint"}. It checks no identity: the server
// wraps it in the middleware that authenticates the operator and checks
// that the gateway belongs to their organisation.
func (s *Store) Handler(gatewayParam string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q, err := parseQuery(chi.URLParam(r, gatewayParam), r.URL.Query())
		if err != nil {
			httpapi.WriteError(w, r, err)
			return
		}
		page, err := s.Query(r.Context(), q)
		if err != nil {
			switch {
			case errors.Is(err, ErrInvalidQuery):
				err = &httpapi.Error{Status: http.StatusBadRequest, Msg: "invalid telemetry query", Hint: queryHint, Err: err}
			case errors.Is(err, ErrInvalidGateway):
				err = &httpapi.Error{Status: http.StatusBadRequest, Msg: "invalid gateway serial", Err: err}
			}
			httpapi.WriteError(w, r, err)
			return
		}
		if page.Messages == nil {
			page.Messages = []Record{}
		}
		httpapi.WriteJSON(w, http.StatusOK, page)
	}
}

func parseQuery(gateway string, v url.Values) (Query, error) {
	bad := func(format string, args ...any) error {
		return httpapi.Errorf(http.StatusBadRequest, format, args...).WithHint(queryHint)
	}
	if validGateway(gateway) != nil {
		return Query{}, httpapi.Errorf(http.StatusBadRequest, "invalid gateway serial")
	}
	q := Query{Gateway: gateway}
	for name, vals := range v {
		switch name {
		case "since", "until", "limit", "topic", "after":
		default:
			return Query{}, bad("unknown query parameter %q", truncate(name))
		}
		if len(vals) != 1 {
			return Query{}, bad("query parameter %q given more than once", name)
		}
	}
	var err error
	if q.Since, err = parseTime(v, "since"); err != nil {
		return Query{}, err
	}
	if q.Until, err = parseTime(v, "until"); err != nil {
		return Query{}, err
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since) {
		return Query{}, bad("until must be after since")
	}
	if s, ok := v["limit"]; ok {
		n, err := strconv.Atoi(s[0])
		if err != nil || n < 1 || n > MaxLimit {
			return Query{}, bad("limit must be an integer from 1 to %d", MaxLimit)
		}
		q.Limit = n
	}
	if s, ok := v["topic"]; ok {
		if validTopic(gateway, s[0]) != nil {
			return Query{}, bad("topic must be a topic under gw/%s/", gateway)
		}
		q.Topic = s[0]
	}
	if s, ok := v["after"]; ok {
		if _, err := decodeCursor(s[0]); err != nil {
			return Query{}, bad("after is not a cursor a previous page returned")
		}
		q.After = s[0]
	}
	return q, nil
}

func parseTime(v url.Values, name string) (time.Time, error) {
	s, ok := v[name]
	if !ok {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s[0])
	if err != nil {
		return time.Time{}, httpapi.Errorf(http.StatusBadRequest, "%s must be an RFC 3339 time such as 2026-11-26T05:00:00Z", name).WithHint(queryHint)
	}
	return t, nil
}

// truncate keeps an echoed parameter name short.
func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
