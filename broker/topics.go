package broker

import (
	"strings"
	"unicode/utf8"
)

// Topic layout, all under gw/<serial>/:
//
//	gw/<serial>/telemetry[/...]  gateway -> server, stored
//	gw/<serial>/state            gateway -> server, stored ({"state":"online"}, the will {"state":"offline"},
//	                             {"claim_button":"pressed"})
//	gw/<serial>/cmd/...          server -> gateway (cmd/claimed: {"claimed":true})
const (
	topicRoot      = "gw/"
	levelTelemetry = "telemetry"
	levelState     = "state"
	levelCmd       = "cmd"
	levelClaimed   = "claimed"
)

// maxSerialLen bounds a gateway serial used as a topic level.
const maxSerialLen = 128

// validSerial reports whether s can stand as one MQTT topic level naming a
// gateway: non-empty, bounded, valid UTF-8, and free of the characters that
// would let it span or widen levels (/ + #), of NUL, and not starting with $.
func validSerial(s string) bool {
	if s == "" || len(s) > maxSerialLen || !utf8.ValidString(s) || s[0] == '$' {
		return false
	}
	return !strings.ContainsAny(s, "/+#\x00")
}

// gatewayPrefix returns "gw/<serial>/".
func gatewayPrefix(serial string) string { return topicRoot + serial + "/" }

// stateTopic returns gw/<serial>/state.
func stateTopic(serial string) string { return gatewayPrefix(serial) + levelState }

// claimedTopic returns gw/<serial>/cmd/claimed.
func claimedTopic(serial string) string {
	return gatewayPrefix(serial) + levelCmd + "/" + levelClaimed
}

// mayPublish reports whether gateway serial may publish to topic:
// gw/<serial>/telemetry, any topic under gw/<serial>/telemetry/, or
// gw/<serial>/state. Topics with wildcards or NUL are refused.
func mayPublish(serial, topic string) bool {
	if !validSerial(serial) || strings.ContainsAny(topic, "+#\x00") || !utf8.ValidString(topic) {
		return false
	}
	rest, ok := strings.CutPrefix(topic, gatewayPrefix(serial))
	if !ok {
		return false
	}
	return rest == levelState || rest == levelTelemetry || strings.HasPrefix(rest, levelTelemetry+"/")
}

// maySubscribe reports whether gateway serial may subscribe to filter, or
// receive a message on the topic name filter: only gw/<serial>/cmd/# and
// filters or topics under gw/<serial>/cmd/. The first three levels are
// literal, so whatever wildcards follow cannot reach another gateway.
func maySubscribe(serial, filter string) bool {
	if !validSerial(serial) || strings.ContainsRune(filter, 0) || !utf8.ValidString(filter) {
		return false
	}
	return strings.HasPrefix(filter, gatewayPrefix(serial)+levelCmd+"/")
}

// matchFilter reports whether the MQTT topic filter matches topic (a topic
// name without wildcards), following MQTT 3.1.1 section 4.7: + matches one
// level, a trailing # matches the parent level and everything below it.
func matchFilter(filter, topic string) bool {
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" && !fmore {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		switch {
		case !fmore && !tmore:
			return true
		case fmore && !tmore:
			// "a/#" matches "a".
			return frest == "#"
		case !fmore && tmore:
			return false
		}
		filter, topic = frest, trest
	}
}
