package event

import (
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonParser is a strict RFC 8259 scanner for one top-level object. It
// accepts exactly the documents encoding/json's Valid accepts (checked by
// FuzzDecode), never recurses deeper than MaxDepth+1, and does not allocate
// except for the decoded field strings (and for keys or values that contain
// escape sequences).
//
// Unlike encoding/json it does not replace invalid UTF-8 or lone surrogate
// escapes with U+FFFD: such bytes are kept (a lone surrogate as its 3-byte
// WTF-8 form), so ID validation rejects them instead of silently mapping
// distinct raw IDs to the same string.
type jsonParser struct {
	b   []byte
	pos int
}

func (p *jsonParser) errAt(what string) *InvalidError {
	if p.pos >= len(p.b) {
		return p.truncated()
	}
	return invalid(ReasonMalformed, "json: "+what+" at byte "+strconv.Itoa(p.pos)+", found "+strconv.QuoteRune(rune(p.b[p.pos])))
}

func (p *jsonParser) truncated() *InvalidError {
	return invalid(ReasonMalformed, "json: unexpected end of data after "+strconv.Itoa(len(p.b))+" bytes")
}

func (p *jsonParser) ws() {
	for p.pos < len(p.b) && isSpace(p.b[p.pos]) {
		p.pos++
	}
}

// expect consumes byte c, after optional white space.
func (p *jsonParser) expect(c byte, what string) *InvalidError {
	p.ws()
	if p.pos < len(p.b) && p.b[p.pos] == c {
		p.pos++
		return nil
	}
	return p.errAt("expected " + what)
}

// parse reads the top-level object; p.b[p.pos] is '{'.
func (p *jsonParser) parse(f *fields) *InvalidError {
	p.pos++
	p.ws()
	if p.pos < len(p.b) && p.b[p.pos] == '}' {
		p.pos++
	} else {
		for {
			p.ws()
			if p.pos >= len(p.b) || p.b[p.pos] != '"' {
				return p.errAt("expected an object key")
			}
			key, escaped, err := p.str()
			if err != nil {
				return err
			}
			if escaped {
				key = unescape(key)
			}
			if err := p.expect(':', "':'"); err != nil {
				return err
			}
			p.ws()
			if k := fieldOf(key); k == 0 || !f.begin(k) {
				err = p.skipValue(2)
			} else {
				err = p.field(f, k)
			}
			if err != nil {
				return err
			}
			p.ws()
			if p.pos >= len(p.b) {
				return p.truncated()
			}
			if p.b[p.pos] == '}' {
				p.pos++
				break
			}
			if p.b[p.pos] != ',' {
				return p.errAt("expected ',' or '}'")
			}
			p.pos++
		}
	}
	p.ws()
	if p.pos < len(p.b) {
		return invalid(ReasonTrailingData, strconv.Itoa(len(p.b)-p.pos)+" bytes after the JSON object, starting at byte "+strconv.Itoa(p.pos))
	}
	return nil
}

// field decodes the value of known field k at p.pos.
func (p *jsonParser) field(f *fields, k uint16) *InvalidError {
	if p.pos >= len(p.b) {
		return p.truncated()
	}
	if isList(k) && p.b[p.pos] == '[' {
		return p.list(f, k)
	}
	switch c := p.b[p.pos]; {
	case c == '"':
		s, escaped, err := p.str()
		if err != nil {
			return err
		}
		if escaped && k != fTS && k != fValue {
			s = unescape(s)
		}
		f.setBytes(k, s)
	case c == '-' || (c >= '0' && c <= '9'):
		num, integer, err := p.number()
		if err != nil {
			return err
		}
		f.setNumber(k, string(num), integer)
	case c == 'n': // null: same as absent
		return p.literal("null")
	case c == 't' || c == 'f':
		if err := p.skipValue(2); err != nil {
			return err
		}
		f.wrongType(k, "a boolean")
	case c == '{' || c == '[':
		if err := p.skipValue(2); err != nil {
			return err
		}
		if c == '{' {
			f.wrongType(k, "an object")
		} else {
			f.wrongType(k, "an array")
		}
	default:
		return p.errAt("expected a value")
	}
	return nil
}

// list decodes the array of strings of field k at p.pos ('['). An
// element that is not a string is skipped (bounded) and reported as a
// wrong field type.
func (p *jsonParser) list(f *fields, k uint16) *InvalidError {
	p.pos++
	f.listed(k)
	p.ws()
	if p.pos < len(p.b) && p.b[p.pos] == ']' {
		p.pos++
		return nil
	}
	for {
		p.ws()
		if p.pos >= len(p.b) {
			return p.truncated()
		}
		if p.b[p.pos] == '"' {
			s, escaped, err := p.str()
			if err != nil {
				return err
			}
			if escaped {
				s = unescape(s)
			}
			f.appendString(k, string(s))
		} else {
			if err := p.skipValue(3); err != nil {
				return err
			}
			f.wrongType(k, "an array holding something else")
		}
		p.ws()
		if p.pos >= len(p.b) {
			return p.truncated()
		}
		switch p.b[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return nil
		default:
			return p.errAt("expected ',' or ']'")
		}
	}
}

// skipValue consumes one value. depth is the nesting level the value sits
// at (the top-level object is level 1); a container deeper than MaxDepth is
// rejected with ReasonTooDeep before its contents are looked at.
func (p *jsonParser) skipValue(depth int) *InvalidError {
	if p.pos >= len(p.b) {
		return p.truncated()
	}
	c := p.b[p.pos]
	switch {
	case c == '"':
		_, _, err := p.str()
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		_, _, err := p.number()
		return err
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	case c != '{' && c != '[':
		return p.errAt("expected a value")
	}
	if depth > MaxDepth {
		return invalid(ReasonTooDeep, "json: containers nested more than "+strconv.Itoa(MaxDepth)+" levels deep at byte "+strconv.Itoa(p.pos))
	}
	isObj := c == '{'
	end := byte(']')
	if isObj {
		end = '}'
	}
	p.pos++
	p.ws()
	if p.pos < len(p.b) && p.b[p.pos] == end {
		p.pos++
		return nil
	}
	for {
		p.ws()
		if isObj {
			if p.pos >= len(p.b) || p.b[p.pos] != '"' {
				return p.errAt("expected an object key")
			}
			if _, _, err := p.str(); err != nil {
				return err
			}
			if err := p.expect(':', "':'"); err != nil {
				return err
			}
			p.ws()
		}
		if err := p.skipValue(depth + 1); err != nil {
			return err
		}
		p.ws()
		if p.pos >= len(p.b) {
			return p.truncated()
		}
		switch p.b[p.pos] {
		case ',':
			p.pos++
		case end:
			p.pos++
			return nil
		default:
			return p.errAt("expected ',' or '" + string(end) + "'")
		}
	}
}

func (p *jsonParser) literal(lit string) *InvalidError {
	rest := p.b[p.pos:]
	if len(rest) >= len(lit) && string(rest[:len(lit)]) == lit {
		p.pos += len(lit)
		return nil
	}
	for i := 0; i < len(lit) && i < len(rest); i++ {
		if rest[i] != lit[i] {
			p.pos += i
			return p.errAt("invalid literal")
		}
	}
	return p.truncated()
}

// str scans a string starting at the opening quote and returns its raw
// contents (between the quotes) and whether they contain escapes.
func (p *jsonParser) str() (s []byte, escaped bool, err *InvalidError) {
	p.pos++
	start := p.pos
	for p.pos < len(p.b) {
		c := p.b[p.pos]
		switch {
		case c == '"':
			s = p.b[start:p.pos]
			p.pos++
			return s, escaped, nil
		case c == '\\':
			escaped = true
			p.pos++
			if p.pos >= len(p.b) {
				return nil, false, p.truncated()
			}
			switch p.b[p.pos] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.pos++
			case 'u':
				p.pos++
				for i := 0; i < 4; i++ {
					if p.pos >= len(p.b) {
						return nil, false, p.truncated()
					}
					if unhex(p.b[p.pos]) < 0 {
						return nil, false, p.errAt("invalid \\u escape")
					}
					p.pos++
				}
			default:
				return nil, false, p.errAt("invalid escape")
			}
		case c < 0x20:
			return nil, false, p.errAt("control character in string")
		default:
			p.pos++
		}
	}
	return nil, false, p.truncated()
}

// number scans a number and reports whether it has neither a fraction nor
// an exponent.
func (p *jsonParser) number() (num []byte, integer bool, err *InvalidError) {
	start := p.pos
	if p.b[p.pos] == '-' {
		p.pos++
	}
	if p.pos >= len(p.b) {
		return nil, false, p.truncated()
	}
	switch c := p.b[p.pos]; {
	case c == '0':
		p.pos++
	case c >= '1' && c <= '9':
		p.digits()
	default:
		return nil, false, p.errAt("invalid number")
	}
	integer = true
	if p.pos < len(p.b) && p.b[p.pos] == '.' {
		integer = false
		p.pos++
		if p.digits() == 0 {
			return nil, false, p.errAt("expected a digit after '.'")
		}
	}
	if p.pos < len(p.b) && (p.b[p.pos] == 'e' || p.b[p.pos] == 'E') {
		integer = false
		p.pos++
		if p.pos < len(p.b) && (p.b[p.pos] == '+' || p.b[p.pos] == '-') {
			p.pos++
		}
		if p.digits() == 0 {
			return nil, false, p.errAt("expected a digit in exponent")
		}
	}
	return p.b[start:p.pos], integer, nil
}

func (p *jsonParser) digits() int {
	start := p.pos
	for p.pos < len(p.b) && p.b[p.pos] >= '0' && p.b[p.pos] <= '9' {
		p.pos++
	}
	return p.pos - start
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

// unescape decodes the contents of a string that str already validated.
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
