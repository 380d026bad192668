// Package event defines recstream's clickstream event, its wire encodings
// and the strict decoder the consumer runs on every Kafka message.
//
// Decoding never panics, never allocates more than a small multiple of the
// message size, never recurses more than MaxDepth+1 levels, and reports every
// rejection as an *InvalidError whose Reason is one of a fixed set of short
// codes (see Reasons) suitable as a metric label.
//
// # Wire format
//
// A message is a single map (msgpack) or object (JSON) with these fields:
//
//	user_id     string, required
//	item_id     string, required (absent on an impression)
//	type        string, required: "browse", "click", "add_to_cart", "purchase" or "impression"
//	ts          integer, unix milliseconds, optional
//	value       number, optional (price, rating, ...)
//	session_id  string, optional
//
// An impression records what the web tier showed the user (Event.Shown);
// it has no item_id and these fields instead:
//
//	items         array of strings, required: the item ids shown, in order (1 to Decoder.MaxItems)
//	sources       array of strings, optional: each item's "source" from the list, as many as items
//	variant       string, optional: the list's "variant" (one of Decoder.Variants)
//	generated_at  integer, unix milliseconds, optional: the list's "generated_at"
//
// On other types these four fields are read (so a wrong kind of value is
// still wrong_field_type) and dropped.
//
// The format is detected from the first byte that is not JSON white space
// (space, tab, CR, LF): '{' means JSON, anything else msgpack. Every other
// JSON value starts with a byte that is a msgpack positive fixint, so a JSON
// array or scalar is reported as not_object, never misparsed.
//
// msgpack is read with github.com/vmihailenco/msgpack/v5's streaming
// Decoder; JSON with the package's own scanner, which accepts exactly the
// documents encoding/json accepts (docs/benchmarks.md has why it is not
// encoding/json's Decoder).
//
// JSON must be RFC 8259 and UTF-8; white space may surround the object. In
// JSON, ts may also be written as a number with an integral value, such as
// 1.7e12 or 1700000000000.0.
//
// In msgpack, strings may be str or bin (bin must hold valid UTF-8 to pass
// ID validation); ts and value may use any integer width and signedness, or
// float32/float64 (ts only with an integral value). Nothing may follow the
// map, not even white space.
//
// In both formats: a null/nil field is the same as an absent one; ts absent
// or 0 means "use the Kafka record timestamp" (the kafkaTS argument of
// Decode); unknown fields are ignored whatever their (well-formed, not too
// deep) value, and map keys that are not strings count as unknown fields;
// field names are case-sensitive and, in JSON, may use escapes.
//
// Encode and EncodeJSON write user_id, item_id and type always, and ts,
// value and session_id only when non-zero/non-empty. Encode uses the smallest
// msgpack integer encoding for ts and float64 for value.
//
// # Validation rules and reasons
//
// Checks run in this order; the first failure is returned.
//
//  1. too_large: the message is longer than Decoder.MaxBytes.
//  2. empty: the message is empty or only JSON white space.
//  3. Structure, in document order, stopping at the first problem:
//     not_object when the top level is not a map/object (for msgpack this is
//     decided from the first byte alone); malformed when the data is not
//     well-formed msgpack/JSON (truncation, a reserved msgpack code, a
//     length prefix or element count larger than the bytes that remain,
//     a JSON syntax error); too_deep when a container is nested more than
//     MaxDepth levels (the top-level object is level 1; an element of items
//     is level 3), whether in a known
//     or an unknown field; trailing_data when anything but JSON white space
//     follows the JSON object, or anything at all follows the msgpack map.
//  4. Field level, first in document order, reported only when the whole
//     message is structurally valid: duplicate_field when a known field
//     appears twice (duplicate unknown fields are not detected);
//     wrong_field_type when a known field has the wrong kind of value (an ID
//     or type that is not a string, a ts that is not an integral number, a
//     value that is not a number, any container or boolean); unknown_type
//     when type is a string other than the four names.
//  5. Event.Validate, in this order: missing_user_id, missing_item_id,
//     missing_type (absent, null or ""); unknown_type; id_too_long or
//     bad_user_id, then bad_item_id, then bad_session_id (session_id only when
//     present) per ValidateID; ts_too_old when ts (after substituting the
//     Kafka timestamp) is before 2000-01-01T00:00:00Z; ts_in_future when it
//     is more than MaxFuture after Decoder.Now(); bad_value when value is NaN
//     or ±Inf.
//  6. Impressions, in this order: item_id_not_used when item_id is given;
//     missing_items when items is absent or empty; too_many_items above
//     Decoder.MaxItems; bad_item_id or id_too_long for an item, per
//     ValidateID; bad_sources when sources is given with another length
//     than items or holds a name that is not 1 to MaxSourceLen bytes of
//     a-z, 0-9 and _; unknown_variant when variant is not valid
//     UTF-8 or not one of Decoder.Variants. These run after user_id's checks and before ts's;
//     last of all, bad_generated_at when generated_at is outside the range
//     ts may take.
//
// ValidateID accepts non-empty valid UTF-8 without control characters (C0,
// DEL, C1), Unicode white space, '{' or '}' — the braces are reserved because
// IDs are embedded in Redis keys, where braces select the cluster hash slot.
// JSON escape sequences are decoded before this check, so "\u0009" is a tab
// and is rejected; a lone surrogate escape such as "\ud800" is rejected as
// invalid UTF-8 rather than being replaced with U+FFFD.
//
// A ts too large for int64 (a huge uint64 or float) is reported as
// ts_in_future, a hugely negative one as ts_too_old. A JSON value that
// overflows float64 (1e400) is bad_value.
//
// # Limits
//
// Decoder fields left at zero (or negative) take their defaults: MaxBytes DefaultMaxBytes
// (64 KiB), MaxIDLen DefaultMaxIDLen (128 bytes, applied to user_id, item_id,
// session_id and each item of an impression), MaxFuture DefaultMaxFuture
// (1 hour), MaxItems DefaultMaxItems (100), Now time.Now. The
// nesting limit MaxDepth (4) and the oldest timestamp MinTS (2000-01-01) are
// fixed.
//
// A successful Decode allocates only the ID strings (plus a temporary buffer
// for each JSON key or string value that contains escape sequences); a
// rejected message costs at most that plus its error. Because lengths are checked
// against the remaining input before use, a message cannot make the decoder
// allocate or loop more than its own size allows, whatever its length
// prefixes claim.
package event
