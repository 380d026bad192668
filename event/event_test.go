package event_test

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/recstream/recstream/event"
)

func TestTypeStringAndParse(t *testing.T) {
	want := map[event.Type]string{
		event.Browse:    "browse",
		event.Click:     "click",
		event.AddToCart: "add_to_cart",
		event.Purchase:  "purchase",
	}
	if len(event.Types) != len(want) {
		t.Fatalf("Types has %d entries, want %d", len(event.Types), len(want))
	}
	for i, typ := range event.Types {
		if i > 0 && typ <= event.Types[i-1] {
			t.Errorf("Types not ascending at %d", i)
		}
		name, ok := want[typ]
		if !ok {
			t.Fatalf("unexpected type %d in Types", typ)
		}
		if got := typ.String(); got != name {
			t.Errorf("%d.String() = %q, want %q", typ, got, name)
		}
		got, err := event.ParseType(name)
		if err != nil || got != typ {
			t.Errorf("ParseType(%q) = %v, %v; want %v", name, got, err, typ)
		}
	}
	if got, err := event.ParseType("impression"); err != nil || got != event.Impression || event.Impression.String() != "impression" {
		t.Errorf("ParseType(impression) = %v, %v", got, err)
	}
	for _, typ := range []event.Type{0, 6, 255} {
		if got := typ.String(); got != "unknown" {
			t.Errorf("Type(%d).String() = %q, want unknown", typ, got)
		}
	}
	for _, s := range []string{"", "unknown", "Click", "CLICK", " click", "click ", "add-to-cart", "view", "purchase\x00"} {
		typ, err := event.ParseType(s)
		if err == nil {
			t.Errorf("ParseType(%q) = %v, want error", s, typ)
			continue
		}
		if r := event.ReasonOf(err); r != event.ReasonUnknownType {
			t.Errorf("ParseType(%q) reason %q, want %q", s, r, event.ReasonUnknownType)
		}
	}
}

var labelSafe = regexp.MustCompile(`^[a-z][a-z_]{0,31}$`)

func TestReasons(t *testing.T) {
	all := []event.Reason{
		event.ReasonEmpty, event.ReasonTooLarge, event.ReasonMalformed, event.ReasonTrailingData,
		event.ReasonNotObject, event.ReasonTooDeep, event.ReasonWrongType, event.ReasonMissingUser,
		event.ReasonMissingItem, event.ReasonMissingType, event.ReasonUnknownType, event.ReasonBadUserID,
		event.ReasonBadItemID, event.ReasonIDTooLong, event.ReasonBadSessionID, event.ReasonTSTooOld,
		event.ReasonTSInFuture, event.ReasonBadValue, event.ReasonDuplicateField,
		event.ReasonMissingItems, event.ReasonTooManyItems, event.ReasonBadSources, event.ReasonUnknownVariant,
		event.ReasonBadGeneratedAt, event.ReasonItemIDNotUsed,
	}
	if len(event.Reasons) != len(all) {
		t.Fatalf("Reasons has %d entries, want %d", len(event.Reasons), len(all))
	}
	seen := map[event.Reason]bool{}
	for _, r := range event.Reasons {
		if seen[r] {
			t.Errorf("duplicate reason %q", r)
		}
		seen[r] = true
		if !labelSafe.MatchString(string(r)) {
			t.Errorf("reason %q is not a safe metric label", r)
		}
	}
	for _, r := range all {
		if !seen[r] {
			t.Errorf("Reasons lacks %q", r)
		}
	}
}

func TestInvalidErrorAndReasonOf(t *testing.T) {
	e := &event.InvalidError{Reason: event.ReasonTooDeep, Detail: "x"}
	if got, want := e.Error(), "invalid event: too_deep: x"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got, want := (&event.InvalidError{Reason: event.ReasonEmpty}).Error(), "invalid event: empty"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if r := event.ReasonOf(fmt.Errorf("wrapped: %w", e)); r != event.ReasonTooDeep {
		t.Errorf("ReasonOf(wrapped) = %q", r)
	}
	if r := event.ReasonOf(errors.New("other")); r != event.ReasonMalformed {
		t.Errorf("ReasonOf(other) = %q, want malformed", r)
	}
	if r := event.ReasonOf(nil); r != "" {
		t.Errorf("ReasonOf(nil) = %q, want empty", r)
	}
}

func TestValidateID(t *testing.T) {
	tests := []struct {
		id     string
		maxLen int
		want   event.Reason
	}{
		{"u1", 0, ""},
		{"user:42/abc-DEF_x.y@z", 0, ""},
		{"ユーザー", 0, ""},
		{"emoji-🎉", 0, ""},
		{`quote"back\slash`, 0, ""},
		{strings.Repeat("a", 128), 0, ""},
		{strings.Repeat("a", 129), 0, event.ReasonIDTooLong},
		{strings.Repeat("a", 10), 10, ""},
		{strings.Repeat("a", 11), 10, event.ReasonIDTooLong},
		{strings.Repeat(" ", 129), 0, event.ReasonIDTooLong}, // length is checked first
		{strings.Repeat("a", 200), -1, event.ReasonIDTooLong},
		{"", 0, event.ReasonBadUserID},
		{"a b", 0, event.ReasonBadUserID},
		{"a\tb", 0, event.ReasonBadUserID},
		{"a\nb", 0, event.ReasonBadUserID},
		{"a\x00b", 0, event.ReasonBadUserID},
		{"a\x1fb", 0, event.ReasonBadUserID},
		{"a\x7fb", 0, event.ReasonBadUserID},
		{"a\u0085b", 0, event.ReasonBadUserID}, // C1 control (NEL)
		{"a\u00a0b", 0, event.ReasonBadUserID}, // NBSP
		{"a\u2028b", 0, event.ReasonBadUserID}, // line separator
		{"a\u3000b", 0, event.ReasonBadUserID}, // ideographic space
		{"{a}", 0, event.ReasonBadUserID},
		{"a{", 0, event.ReasonBadUserID},
		{"a}", 0, event.ReasonBadUserID},
		{"a\xffb", 0, event.ReasonBadUserID},
		{"a\xc3", 0, event.ReasonBadUserID},            // truncated sequence
		{"\xed\xa0\x80", 0, event.ReasonBadUserID},     // UTF-8 encoded surrogate
		{"\xc0\xaf", 0, event.ReasonBadUserID},         // overlong
		{"a\ufffdb", 0, ""},                            // U+FFFD itself is a valid character
		{"\xf4\x90\x80\x80", 0, event.ReasonBadUserID}, // beyond U+10FFFF
	}
	for _, tt := range tests {
		if got := event.ValidateID(tt.id, tt.maxLen); got != tt.want {
			t.Errorf("ValidateID(%q, %d) = %q, want %q", tt.id, tt.maxLen, got, tt.want)
		}
	}
}

func TestEventValidate(t *testing.T) {
	d := event.Decoder{Now: fixedNow}
	good := baseEvent()
	if err := good.Validate(d); err != nil {
		t.Fatalf("Validate(good) = %v", err)
	}
	tests := []struct {
		name string
		mod  func(*event.Event)
		want event.Reason
	}{
		{"no user", func(e *event.Event) { e.UserID = "" }, event.ReasonMissingUser},
		{"no item", func(e *event.Event) { e.ItemID = "" }, event.ReasonMissingItem},
		{"no type", func(e *event.Event) { e.Type = 0 }, event.ReasonMissingType},
		{"bad type", func(e *event.Event) { e.Type = 9 }, event.ReasonUnknownType},
		{"bad user", func(e *event.Event) { e.UserID = "a b" }, event.ReasonBadUserID},
		{"bad item", func(e *event.Event) { e.ItemID = "a\tb" }, event.ReasonBadItemID},
		{"bad session", func(e *event.Event) { e.SessionID = "{s}" }, event.ReasonBadSessionID},
		{"long session", func(e *event.Event) { e.SessionID = strings.Repeat("s", 129) }, event.ReasonIDTooLong},
		{"ts zero", func(e *event.Event) { e.TS = 0 }, event.ReasonTSTooOld},
		{"ts old", func(e *event.Event) { e.TS = event.MinTS - 1 }, event.ReasonTSTooOld},
		{"ts future", func(e *event.Event) { e.TS = fixedNow().Add(time2d).UnixMilli() }, event.ReasonTSInFuture},
		{"value inf", func(e *event.Event) { e.Value = inf }, event.ReasonBadValue},
		// Order: missing fields are reported before content problems.
		{"no item and bad user", func(e *event.Event) { e.ItemID = ""; e.UserID = "a b" }, event.ReasonMissingItem},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := baseEvent()
			tt.mod(&e)
			err := e.Validate(d)
			if got := event.ReasonOf(err); got != tt.want {
				t.Errorf("reason %q (%v), want %q", got, err, tt.want)
			}
		})
	}
	// Edges of the timestamp window are inclusive.
	e := baseEvent()
	e.TS = event.MinTS
	if err := e.Validate(d); err != nil {
		t.Errorf("ts = MinTS: %v", err)
	}
	e.TS = fixedNow().Add(event.DefaultMaxFuture).UnixMilli()
	if err := e.Validate(d); err != nil {
		t.Errorf("ts = now+MaxFuture: %v", err)
	}
	e.TS++
	if got := event.ReasonOf(e.Validate(d)); got != event.ReasonTSInFuture {
		t.Errorf("ts = now+MaxFuture+1ms: %q", got)
	}
}
