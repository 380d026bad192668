package event

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// Type is the kind of interaction an event records.
type Type uint8

// The event types. The zero Type means "missing".
const (
	Browse Type = iota + 1
	Click
	AddToCart
	Purchase
	// Impression records what the web tier showed a user: the items of a
	// list, in order (Event.Shown). It carries no interest weight.
	Impression
)

// Types lists the interaction types (every valid Type except Impression),
// in ascending order.
var Types = []Type{Browse, Click, AddToCart, Purchase}

// AllTypes lists every valid Type, Impression included, in ascending order.
var AllTypes = []Type{Browse, Click, AddToCart, Purchase, Impression}

// String returns the wire name of t: "browse", "click", "add_to_cart",
// "purchase" or "impression"; "unknown" for any other value.
func (t Type) String() string {
	switch t {
	case Browse:
		return "browse"
	case Click:
		return "click"
	case AddToCart:
		return "add_to_cart"
	case Purchase:
		return "purchase"
	case Impression:
		return "impression"
	}
	return "unknown"
}

// ParseType returns the Type whose wire name is exactly s (case-sensitive).
// Any other string yields an *InvalidError with ReasonUnknownType.
func ParseType(s string) (Type, error) {
	if t, ok := typeFromName(s); ok {
		return t, nil
	}
	return 0, invalid(ReasonUnknownType, "type "+quoteTrunc(s)+" "+typeNames)
}

// typeFromName does not allocate when called with string(b) for a []byte b.
func typeFromName(s string) (Type, bool) {
	switch s {
	case "browse":
		return Browse, true
	case "click":
		return Click, true
	case "add_to_cart":
		return AddToCart, true
	case "purchase":
		return Purchase, true
	case "impression":
		return Impression, true
	}
	return 0, false
}

const typeNames = "is not one of browse, click, add_to_cart, purchase, impression"

// Event is one decoded clickstream event.
type Event struct {
	UserID    string  // required
	ItemID    string  // required
	Type      Type    // required
	TS        int64   // unix milliseconds; 0 in the message means "use the Kafka timestamp"
	Value     float64 // optional (e.g. price or rating); must be finite
	SessionID string  // optional

	// Shown holds what an impression event showed; set exactly when
	// Type is Impression (ItemID is then empty).
	Shown *Shown
}

// Shown is what the web tier showed the user: a list's items in the
// order shown, and the list fields it echoes back (docs/keys.md).
type Shown struct {
	Items       []string // required, 1..Decoder.MaxItems, each a valid item id
	Sources     []string // optional: each item's "source" from the list, as many as Items
	Variant     string   // optional: the list's "variant"; one of Decoder.Variants
	GeneratedAt int64    // optional: the list's "generated_at", unix ms; 0 when absent
}

// Reason is a short, bounded, metric-label-safe failure code.
type Reason string

// The failure reasons. See the package documentation for when each applies.
const (
	ReasonEmpty          Reason = "empty"
	ReasonTooLarge       Reason = "too_large"
	ReasonMalformed      Reason = "malformed"
	ReasonTrailingData   Reason = "trailing_data"
	ReasonNotObject      Reason = "not_object"
	ReasonTooDeep        Reason = "too_deep"
	ReasonWrongType      Reason = "wrong_field_type"
	ReasonMissingUser    Reason = "missing_user_id"
	ReasonMissingItem    Reason = "missing_item_id"
	ReasonMissingType    Reason = "missing_type"
	ReasonUnknownType    Reason = "unknown_type"
	ReasonBadUserID      Reason = "bad_user_id"
	ReasonBadItemID      Reason = "bad_item_id"
	ReasonIDTooLong      Reason = "id_too_long"
	ReasonBadSessionID   Reason = "bad_session_id"
	ReasonTSTooOld       Reason = "ts_too_old"
	ReasonTSInFuture     Reason = "ts_in_future"
	ReasonBadValue       Reason = "bad_value"
	ReasonDuplicateField Reason = "duplicate_field"
	// Impressions only.
	ReasonMissingItems   Reason = "missing_items"
	ReasonTooManyItems   Reason = "too_many_items"
	ReasonBadSources     Reason = "bad_sources"
	ReasonUnknownVariant Reason = "unknown_variant"
	ReasonBadGeneratedAt Reason = "bad_generated_at"
	ReasonItemIDNotUsed  Reason = "item_id_not_used"
)

// Reasons lists every Reason, for pre-registering metric label values.
// Treat it as read-only.
var Reasons = []Reason{
	ReasonEmpty,
	ReasonTooLarge,
	ReasonMalformed,
	ReasonTrailingData,
	ReasonNotObject,
	ReasonTooDeep,
	ReasonWrongType,
	ReasonMissingUser,
	ReasonMissingItem,
	ReasonMissingType,
	ReasonUnknownType,
	ReasonBadUserID,
	ReasonBadItemID,
	ReasonIDTooLong,
	ReasonBadSessionID,
	ReasonTSTooOld,
	ReasonTSInFuture,
	ReasonBadValue,
	ReasonDuplicateField,
	ReasonMissingItems,
	ReasonTooManyItems,
	ReasonBadSources,
	ReasonUnknownVariant,
	ReasonBadGeneratedAt,
	ReasonItemIDNotUsed,
}

// InvalidError is returned for every rejected message. Detail is a short
// human-readable explanation; it never contains more than a few dozen bytes
// of the message itself, so it is safe to log, but it is NOT bounded in
// cardinality: use Reason, not Detail, as a metric label.
type InvalidError struct {
	Reason Reason
	Detail string
}

// Error returns "invalid event: <reason>: <detail>".
func (e *InvalidError) Error() string {
	if e.Detail == "" {
		return "invalid event: " + string(e.Reason)
	}
	return "invalid event: " + string(e.Reason) + ": " + e.Detail
}

// ReasonOf returns the Reason of the first *InvalidError in err's chain,
// ReasonMalformed for any other non-nil error, and "" for a nil error.
func ReasonOf(err error) Reason {
	if err == nil {
		return ""
	}
	var ie *InvalidError
	if errors.As(err, &ie) {
		return ie.Reason
	}
	return ReasonMalformed
}

func invalid(r Reason, detail string) *InvalidError {
	return &InvalidError{Reason: r, Detail: detail}
}

func invalidf(r Reason, format string, args ...any) *InvalidError {
	return &InvalidError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// Limits and defaults.
const (
	DefaultMaxBytes  = 64 << 10  // Decoder.MaxBytes when zero
	DefaultMaxIDLen  = 128       // Decoder.MaxIDLen (and ValidateID's maxLen) when zero
	DefaultMaxFuture = time.Hour // Decoder.MaxFuture when zero
	DefaultMaxItems  = 100       // Decoder.MaxItems when zero: items of one impression
	// MaxSourceLen is the longest accepted source name of an impression.
	MaxSourceLen = 32

	// MaxDepth is the deepest container nesting a message may have. The
	// top-level object is level 1, so a field value may itself contain
	// containers down to level MaxDepth: {"a":[[1]]} is level 3 and is
	// fine, {"a":[[[[1]]]]} is level 5 and is rejected with ReasonTooDeep.
	MaxDepth = 4

	// MinTS is 2000-01-01T00:00:00Z in unix milliseconds, the oldest
	// accepted timestamp.
	MinTS int64 = 946684800000
)

// ValidateID checks an identifier (user, item or session ID). It returns ""
// when s is acceptable, ReasonIDTooLong when len(s) > maxLen bytes (maxLen <= 0
// means DefaultMaxIDLen), and otherwise ReasonBadUserID, which here is the
// generic "bad ID" marker: s is empty, is not valid UTF-8, or contains a
// control character (C0, DEL, C1), a Unicode white-space character (space,
// tab, NBSP, U+2028, ...), '{' or '}'. Callers checking an item or session ID
// translate ReasonBadUserID into ReasonBadItemID or ReasonBadSessionID. The
// length check comes first, so an over-long ID reports ReasonIDTooLong even if
// it also has bad characters.
func ValidateID(s string, maxLen int) Reason {
	r, _ := checkID(s, maxLen)
	return r
}

// checkID is ValidateID plus a detail for the error message.
func checkID(s string, maxLen int) (Reason, string) {
	if maxLen <= 0 {
		maxLen = DefaultMaxIDLen
	}
	if len(s) > maxLen {
		return ReasonIDTooLong, "is " + strconv.Itoa(len(s)) + " bytes, limit " + strconv.Itoa(maxLen)
	}
	if s == "" {
		return ReasonBadUserID, "is empty"
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == 0x7f || c == '{' || c == '}' {
				return ReasonBadUserID, fmt.Sprintf("has forbidden character %U at byte %d", rune(c), i)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return ReasonBadUserID, "has invalid UTF-8 at byte " + strconv.Itoa(i)
		}
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return ReasonBadUserID, fmt.Sprintf("has forbidden character %U at byte %d", r, i)
		}
		i += size
	}
	return "", ""
}

// Validate applies the checks Decode applies after parsing, in this order:
// missing user_id, item_id and type; unknown type; user_id, item_id and
// session_id contents and lengths; ts range; value finiteness. It returns nil
// or an *InvalidError. Unlike Decode it does not substitute a Kafka timestamp:
// TS == 0 fails with ReasonTSTooOld.
func (e Event) Validate(d Decoder) error {
	if err := e.validate(d.withDefaults(), false); err != nil {
		return err
	}
	return nil
}

func (e *Event) validate(d Decoder, fromKafka bool) *InvalidError {
	if e.UserID == "" {
		return invalid(ReasonMissingUser, "user_id is absent or empty")
	}
	imp := e.Type == Impression
	if e.ItemID == "" && !imp {
		return invalid(ReasonMissingItem, "item_id is absent or empty")
	}
	switch {
	case e.Type == 0:
		return invalid(ReasonMissingType, "type is absent or empty")
	case e.Type > Impression:
		return invalidf(ReasonUnknownType, "type %d is not a known event type", uint8(e.Type))
	}
	if err := idError(e.UserID, d.MaxIDLen, "user_id", ReasonBadUserID); err != nil {
		return err
	}
	if imp {
		if e.ItemID != "" {
			return invalid(ReasonItemIDNotUsed, "an impression names its items in items, not item_id")
		}
		if err := e.Shown.validate(d); err != nil {
			return err
		}
	} else if err := idError(e.ItemID, d.MaxIDLen, "item_id", ReasonBadItemID); err != nil {
		return err
	}
	if e.SessionID != "" {
		if err := idError(e.SessionID, d.MaxIDLen, "session_id", ReasonBadSessionID); err != nil {
			return err
		}
	}
	src := "ts"
	if fromKafka {
		src = "ts absent, Kafka timestamp"
	}
	if e.TS < MinTS {
		return invalidf(ReasonTSTooOld, "%s %d is before 2000-01-01T00:00:00Z", src, e.TS)
	}
	now := d.Now()
	limit := now.Add(d.MaxFuture).UnixMilli()
	if e.TS > limit {
		return invalidf(ReasonTSInFuture, "%s %d is more than %v after now (%d)", src, e.TS, d.MaxFuture, now.UnixMilli())
	}
	if math.IsNaN(e.Value) || math.IsInf(e.Value, 0) {
		return invalidf(ReasonBadValue, "value is %v", e.Value)
	}
	if imp && e.Shown.GeneratedAt != 0 {
		if g := e.Shown.GeneratedAt; g < MinTS || g > limit {
			return invalidf(ReasonBadGeneratedAt, "generated_at %d is before 2000-01-01 or more than %v after now", g, d.MaxFuture)
		}
	}
	return nil
}

// validate checks an impression's items, sources and variant.
func (m *Shown) validate(d Decoder) *InvalidError {
	if m == nil || len(m.Items) == 0 {
		return invalid(ReasonMissingItems, "items is absent or empty")
	}
	if len(m.Items) > d.MaxItems {
		return invalidf(ReasonTooManyItems, "%d items, limit %d", len(m.Items), d.MaxItems)
	}
	for i, it := range m.Items {
		if err := idError(it, d.MaxIDLen, "items["+strconv.Itoa(i)+"]", ReasonBadItemID); err != nil {
			return err
		}
	}
	if len(m.Sources) > 0 {
		if len(m.Sources) != len(m.Items) {
			return invalidf(ReasonBadSources, "%d sources for %d items", len(m.Sources), len(m.Items))
		}
		for i, s := range m.Sources {
			if !ValidSource(s) {
				return invalidf(ReasonBadSources, "sources[%d] %s is not a source name (a-z, 0-9, _; at most %d bytes)", i, quoteTrunc(s), MaxSourceLen)
			}
		}
	}
	if !utf8.ValidString(m.Variant) {
		return invalid(ReasonUnknownVariant, "variant is not valid UTF-8")
	}
	if m.Variant != "" && d.Variants != nil {
		known := false
		for _, v := range d.Variants {
			if v == m.Variant {
				known = true
				break
			}
		}
		if !known {
			if len(d.Variants) == 0 {
				return invalid(ReasonUnknownVariant, "variant "+quoteTrunc(m.Variant)+" given but no variants are configured")
			}
			return invalid(ReasonUnknownVariant, "variant "+quoteTrunc(m.Variant)+" is not a configured variant")
		}
	}
	return nil
}

// ValidSource reports whether s can be an impression's source name: 1 to
// MaxSourceLen bytes of a-z, 0-9 and _.
func ValidSource(s string) bool {
	if s == "" || len(s) > MaxSourceLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func idError(s string, maxLen int, field string, bad Reason) *InvalidError {
	r, detail := checkID(s, maxLen)
	switch r {
	case "":
		return nil
	case ReasonBadUserID:
		r = bad
	}
	return invalid(r, field+" "+detail)
}

// quoteTrunc quotes at most 32 bytes of s for use in an error detail.
func quoteTrunc(s string) string {
	if len(s) > 32 {
		return strconv.Quote(s[:32]) + "..."
	}
	return strconv.Quote(s)
}
