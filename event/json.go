package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonParser reads one top-level object with encoding/json's streaming
// Decoder (Token), so it accepts exactly what encoding/json accepts. It
// counts container nesting itself and rejects a container deeper than
// MaxDepth as soon as it opens, before its contents are read.
//
// Unlike encoding/json's strings, decoded strings keep invalid UTF-8 and
// lone surrogate escapes (a lone surrogate as its 3-byte WTF-8 form)
// instead of replacing them with U+FFFD, so ID validation rejects them
// instead of silently mapping distinct raw IDs to the same string.
type jsonParser struct {
	b    []byte
	r    bytes.Reader
	d    *json.Decoder
	prev int64 // offset in b where the last token's text (with separators) began
}

func (p *jsonParser) truncated() *InvalidError {
	return invalid(ReasonMalformed, "json: unexpected end of data after "+strconv.Itoa(len(p.b))+" bytes")
}

// token reads the next token: a json.Delim, string, json.Number, bool or
// nil.
func (p *jsonParser) token() (json.Token, *InvalidError) {
	p.prev = p.d.InputOffset()
	t, err := p.d.Token()
	if err == nil {
		return t, nil
	}
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return nil, invalid(ReasonMalformed, "json: "+se.Error()+" at byte "+strconv.FormatInt(se.Offset, 10))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return nil, p.truncated()
	}
	return nil, invalid(ReasonMalformed, "json: "+err.Error())
}

// str returns the string token t, just read, keeping invalid UTF-8 and
// lone surrogates where encoding/json put U+FFFD.
func (p *jsonParser) str(t string) string {
	if !strings.ContainsRune(t, utf8.RuneError) {
		return t
	}
	raw := p.b[p.prev:p.d.InputOffset()]
	raw = raw[bytes.IndexByte(raw, '"')+1 : len(raw)-1]
	return string(unescape(raw))
}

// parse reads the top-level object; its '{' is the first non-space byte.
func (p *jsonParser) parse(f *fields) *InvalidError {
	p.r.Reset(p.b)
	p.d = json.NewDecoder(&p.r)
	p.d.UseNumber()
	if _, err := p.token(); err != nil { // '{'
		return err
	}
	for p.d.More() {
		t, err := p.token()
		if err != nil {
			return err
		}
		key, _ := t.(string) // Token returns keys as strings
		if k := fieldOf([]byte(key)); k == 0 || !f.begin(k) {
			err = p.skipValue(2)
		} else {
			err = p.field(f, k)
		}
		if err != nil {
			return err
		}
	}
	if _, err := p.token(); err != nil { // '}'
		return err
	}
	rest := int(p.d.InputOffset())
	for rest < len(p.b) && isSpace(p.b[rest]) {
		rest++
	}
	if rest < len(p.b) {
		return invalid(ReasonTrailingData, strconv.Itoa(len(p.b)-rest)+" bytes after the JSON object, starting at byte "+strconv.Itoa(rest))
	}
	return nil
}

// field decodes the value of known field k.
func (p *jsonParser) field(f *fields, k uint16) *InvalidError {
	t, err := p.token()
	if err != nil {
		return err
	}
	switch v := t.(type) {
	case string:
		f.setString(k, p.str(v))
	case json.Number:
		f.setNumber(k, string(v), !strings.ContainsAny(string(v), ".eE"))
	case nil: // null: same as absent
	case bool:
		f.wrongType(k, "a boolean")
	case json.Delim: // '{' or '['
		if v == '[' && isList(k) {
			return p.list(f, k)
		}
		if err := p.skipRest(v, 2); err != nil {
			return err
		}
		if v == '{' {
			f.wrongType(k, "an object")
		} else {
			f.wrongType(k, "an array")
		}
	}
	return nil
}

// list decodes the array of strings of field k, whose '[' has been read.
// An element that is not a string is skipped (bounded) and reported as a
// wrong field type.
func (p *jsonParser) list(f *fields, k uint16) *InvalidError {
	f.listed(k)
	for p.d.More() {
		t, err := p.token()
		if err != nil {
			return err
		}
		switch v := t.(type) {
		case string:
			f.appendString(k, p.str(v))
			continue
		case json.Delim:
			if err := p.skipRest(v, 3); err != nil {
				return err
			}
		}
		f.wrongType(k, "an array holding something else")
	}
	_, err := p.token() // ']'
	return err
}

// skipValue consumes one value. depth is the nesting level the value sits
// at (the top-level object is level 1); a container deeper than MaxDepth is
// rejected with ReasonTooDeep before its contents are read.
func (p *jsonParser) skipValue(depth int) *InvalidError {
	t, err := p.token()
	if err != nil {
		return err
	}
	if d, ok := t.(json.Delim); ok {
		if depth > MaxDepth {
			return invalid(ReasonTooDeep, "json: containers nested more than "+strconv.Itoa(MaxDepth)+" levels deep at byte "+strconv.FormatInt(p.d.InputOffset()-1, 10))
		}
		return p.skipRest(d, depth)
	}
	return nil
}

// skipRest consumes the rest of the container at level depth whose opening
// delimiter open has been read.
func (p *jsonParser) skipRest(open json.Delim, depth int) *InvalidError {
	for p.d.More() {
		if open == '{' {
			if _, err := p.token(); err != nil { // key
				return err
			}
		}
		if err := p.skipValue(depth + 1); err != nil {
			return err
		}
	}
	_, err := p.token() // the closing delimiter
	return err
}

func unhex(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

func hex4(s []byte) rune {
	return unhex(s[0])<<12 | unhex(s[1])<<8 | unhex(s[2])<<4 | unhex(s[3])
}

// unescape decodes the contents (between the quotes) of a string token
// encoding/json has already validated.
func unescape(s []byte) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		e := s[i+1]
		i += 2
		switch e {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(s[i : i+4])
			i += 4
			if utf16.IsSurrogate(r) {
				if r < 0xdc00 && i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if r2 := hex4(s[i+2 : i+6]); r2 >= 0xdc00 && r2 <= 0xdfff {
						out = utf8.AppendRune(out, utf16.DecodeRune(r, r2))
						i += 6
						continue
					}
				}
				// Lone surrogate: keep its WTF-8 form, which is invalid UTF-8.
				out = append(out, 0xe0|byte(r>>12), 0x80|byte(r>>6)&0x3f, 0x80|byte(r)&0x3f)
				continue
			}
			out = utf8.AppendRune(out, r)
		default: // '"', '\\', '/'
			out = append(out, e)
		}
	}
	return out
}

// EncodeJSON returns e as a JSON object with the same field names, presence
// rules and failure cases as Encode. Strings are escaped minimally; value is
// formatted like encoding/json formats a float64.
func EncodeJSON(e Event) ([]byte, error) {
	if err := e.encodable(); err != nil {
		return nil, err
	}
	name := e.Type.String()
	b := make([]byte, 0, 96+len(e.UserID)+len(e.ItemID)+len(e.SessionID))
	b = append(b, `{"user_id":`...)
	b = jsonAppendStr(b, e.UserID)
	if e.Type != Impression {
		b = append(b, `,"item_id":`...)
		b = jsonAppendStr(b, e.ItemID)
	} else {
		m := e.Shown
		b = jsonAppendList(append(b, `,"items":`...), m.Items)
		if len(m.Sources) > 0 {
			b = jsonAppendList(append(b, `,"sources":`...), m.Sources)
		}
		if m.Variant != "" {
			b = jsonAppendStr(append(b, `,"variant":`...), m.Variant)
		}
		if m.GeneratedAt != 0 {
			b = strconv.AppendInt(append(b, `,"generated_at":`...), m.GeneratedAt, 10)
		}
	}
	b = append(b, `,"type":"`...)
	b = append(b, name...)
	b = append(b, '"')
	if e.TS != 0 {
		b = append(b, `,"ts":`...)
		b = strconv.AppendInt(b, e.TS, 10)
	}
	if e.Value != 0 {
		b = append(b, `,"value":`...)
		b = jsonAppendFloat(b, e.Value)
	}
	if e.SessionID != "" {
		b = append(b, `,"session_id":`...)
		b = jsonAppendStr(b, e.SessionID)
	}
	return append(b, '}'), nil
}

func jsonAppendList(b []byte, l []string) []byte {
	b = append(b, '[')
	for i, s := range l {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonAppendStr(b, s)
	}
	return append(b, ']')
}

const hexDigits = "0123456789abcdef"

func jsonAppendStr(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// jsonAppendFloat formats f (finite) the way encoding/json does.
func jsonAppendFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
