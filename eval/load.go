package eval

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxLine bounds one line of a line-oriented input.
const maxLine = 16 << 20

func newScanner(r io.Reader) *bufio.Scanner {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	return sc
}

// LoadMovieLens reads MovieLens ratings in the u.data format (user, item,
// rating, timestamp separated by tabs or spaces) or the ratings.dat format
// (user::item::rating::timestamp); the separator is detected per line. Every
// rating becomes a "click" with Value = rating and TS in milliseconds.
// Interactions are returned in file order.
func LoadMovieLens(r io.Reader) ([]Interaction, error) {
	sc := newScanner(r)
	var out []Interaction
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var f []string
		if strings.Contains(line, "::") {
			f = strings.Split(line, "::")
		} else {
			f = strings.Fields(line)
		}
		if len(f) < 3 {
			return nil, fmt.Errorf("movielens line %d: want user, item, rating[, ts], got %d fields", n, len(f))
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(f[2]), 64)
		if err != nil {
			return nil, fmt.Errorf("movielens line %d: rating: %w", n, err)
		}
		var ts int64
		if len(f) > 3 {
			if ts, err = parseTS(strings.TrimSpace(f[3]), "s"); err != nil {
				return nil, fmt.Errorf("movielens line %d: %w", n, err)
			}
		}
		out = append(out, Interaction{User: strings.TrimSpace(f[0]), Item: strings.TrimSpace(f[1]), Type: TypeClick, TS: ts, Value: v})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read movielens: %w", err)
	}
	return out, nil
}

// LoadMovieLensCSV reads ratings.csv of the MovieLens "latest" releases
// (header userId,movieId,rating,timestamp; columns found by name).
func LoadMovieLensCSV(r io.Reader) ([]Interaction, error) {
	out, _, err := LoadCSV(r, MovieLensCSVMapping())
	return out, err
}

// CSVMapping says how LoadCSV reads a delimited log. A column is named by its
// header name (when Header is set) or by its zero-based index ("0", "3").
type CSVMapping struct {
	// Comma is the field separator; 0 means ','.
	Comma rune
	// Header says the first row holds column names.
	Header bool
	// User and Item name the required id columns.
	User, Item string
	// TS names the timestamp column; empty means every TS is 0 (file order).
	// Values are integers in TSUnit or RFC 3339 times.
	TS string
	// TSUnit is "s" (default) or "ms".
	TSUnit string
	// Type names the event-type (behaviour) column; empty means DefaultType.
	Type string
	// TypeMap maps raw behaviour values to event types, e.g. pv -> browse.
	// Nil keeps raw values as they are.
	TypeMap map[string]string
	// SkipUnmapped drops rows whose behaviour is not in TypeMap; otherwise
	// such a row is an error.
	SkipUnmapped bool
	// DefaultType is the type when there is no Type column; "" means "click".
	DefaultType string
	// Value names the value (rating) column; empty means Value 1.
	Value string
	// Attrs maps an attribute name to its column, e.g. {"category": "2"}.
	// The first non-empty value seen for an item is kept.
	Attrs map[string]string
}

// MovieLensCSVMapping reads ratings.csv (userId,movieId,rating,timestamp).
func MovieLensCSVMapping() CSVMapping {
	return CSVMapping{Header: true, User: "userId", Item: "movieId", Value: "rating", TS: "timestamp", TSUnit: "s"}
}

// TaobaoMapping reads the Alibaba UserBehavior log
// (user,item,category,behavior,ts in seconds, no header) and maps pv, fav,
// cart and buy to browse, click, add_to_cart and purchase.
func TaobaoMapping() CSVMapping {
	return CSVMapping{
		User: "0", Item: "1", Type: "3", TS: "4", TSUnit: "s",
		Attrs: map[string]string{"category": "2"},
		TypeMap: map[string]string{
			"pv": TypeBrowse, "fav": TypeClick, "cart": TypeAddToCart, "buy": TypePurchase,
		},
	}
}

// LoadCSV reads a delimited interaction log as described by m and returns the
// interactions in file order and the item attributes (nil when m.Attrs is
// empty).
func LoadCSV(r io.Reader, m CSVMapping) ([]Interaction, map[string]map[string]string, error) {
	if m.User == "" || m.Item == "" {
		return nil, nil, errors.New("csv mapping: user and item columns are required")
	}
	switch m.TSUnit {
	case "", "s", "ms":
	default:
		return nil, nil, fmt.Errorf("csv mapping: ts unit %q: want s or ms", m.TSUnit)
	}
	cr := csv.NewReader(r)
	if m.Comma != 0 {
		cr.Comma = m.Comma
	}
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.LazyQuotes = true
	cr.ReuseRecord = true
	var header []string
	if m.Header {
		rec, err := cr.Read()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, nil, nil
			}
			return nil, nil, fmt.Errorf("read csv header: %w", err)
		}
		header = make([]string, len(rec))
		for i, h := range rec {
			header[i] = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		}
	}
	cols, err := csvColumnsOf(header, m)
	if err != nil {
		return nil, nil, err
	}
	var attrs map[string]map[string]string
	if len(cols.attrs) > 0 {
		attrs = map[string]map[string]string{}
	}
	var out []Interaction
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read csv: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		it, keep, err := cols.interaction(rec, m)
		if err != nil {
			return nil, nil, fmt.Errorf("csv line %d: %w", line, err)
		}
		if !keep {
			continue
		}
		cols.addAttrs(attrs, it.Item, rec)
		out = append(out, it)
	}
	return out, attrs, nil
}

// csvColumns are the column indexes a CSVMapping names in one file (-1:
// absent), with the defaults that stand in for absent columns.
type csvColumns struct {
	user, item, ts, typ, value int
	attrs                      []csvAttr
	need                       int    // the highest column read
	defType                    string // the type without a type column
	unit                       string // of integer timestamps
}

type csvAttr struct {
	name string
	col  int
}

// csvColumnsOf resolves m's columns against header (nil: columns by
// index only).
func csvColumnsOf(header []string, m CSVMapping) (csvColumns, error) {
	col := func(what, spec string) (int, error) {
		if spec == "" {
			return -1, nil
		}
		for i, h := range header {
			if h == spec {
				return i, nil
			}
		}
		i, err := strconv.Atoi(spec)
		if err != nil || i < 0 {
			return 0, fmt.Errorf("csv mapping: %s column %q: no such header and not an index", what, spec)
		}
		if header != nil && i >= len(header) {
			return 0, fmt.Errorf("csv mapping: %s column %d: header has %d columns", what, i, len(header))
		}
		return i, nil
	}
	c := csvColumns{defType: m.DefaultType, unit: m.TSUnit}
	for _, f := range []struct {
		what, spec string
		to         *int
	}{{"user", m.User, &c.user}, {"item", m.Item, &c.item}, {"ts", m.TS, &c.ts}, {"type", m.Type, &c.typ}, {"value", m.Value, &c.value}} {
		i, err := col(f.what, f.spec)
		if err != nil {
			return c, err
		}
		*f.to = i
	}
	for name, spec := range m.Attrs {
		i, err := col("attr "+name, spec)
		if err != nil {
			return c, err
		}
		c.attrs = append(c.attrs, csvAttr{name, i})
	}
	c.need = max(c.user, c.item, c.ts, c.typ, c.value)
	for _, a := range c.attrs {
		c.need = max(c.need, a.col)
	}
	if c.defType == "" {
		c.defType = TypeClick
	}
	if c.unit == "" {
		c.unit = "s"
	}
	return c, nil
}

// interaction reads one row; keep is false for a row whose behaviour m
// skips.
func (c csvColumns) interaction(rec []string, m CSVMapping) (it Interaction, keep bool, err error) {
	if len(rec) <= c.need {
		return it, false, fmt.Errorf("%d fields, need %d", len(rec), c.need+1)
	}
	it = Interaction{User: strings.TrimSpace(rec[c.user]), Item: strings.TrimSpace(rec[c.item]), Type: c.defType, Value: 1}
	if it.User == "" || it.Item == "" {
		return it, false, errors.New("empty user or item")
	}
	if c.typ >= 0 {
		raw := strings.TrimSpace(rec[c.typ])
		it.Type = raw
		if m.TypeMap != nil {
			t, ok := m.TypeMap[raw]
			if !ok {
				if m.SkipUnmapped {
					return it, false, nil
				}
				return it, false, fmt.Errorf("behaviour %q not in type map", raw)
			}
			it.Type = t
		}
	}
	if c.ts >= 0 {
		if it.TS, err = parseTS(strings.TrimSpace(rec[c.ts]), c.unit); err != nil {
			return it, false, err
		}
	}
	if c.value >= 0 {
		if it.Value, err = strconv.ParseFloat(strings.TrimSpace(rec[c.value]), 64); err != nil {
			return it, false, fmt.Errorf("value: %w", err)
		}
	}
	return it, true, nil
}

// addAttrs keeps, for item, the first non-empty value of each attribute
// column of rec.
func (c csvColumns) addAttrs(attrs map[string]map[string]string, item string, rec []string) {
	for _, a := range c.attrs {
		v := strings.TrimSpace(rec[a.col])
		if v == "" {
			continue
		}
		am := attrs[item]
		if am == nil {
			am = map[string]string{}
			attrs[item] = am
		}
		if _, ok := am[a.name]; !ok {
			am[a.name] = v
		}
	}
}

// parseTS parses an integer timestamp in unit ("s" or "ms"), a decimal
// number of that unit, or an RFC 3339 time, and returns unix milliseconds.
func parseTS(s, unit string) (int64, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if unit == "ms" {
			return n, nil
		}
		return n * 1000, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if unit == "ms" {
			return int64(f), nil
		}
		return int64(f * 1000), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UnixMilli(), nil
	}
	return 0, fmt.Errorf("timestamp %q: want an integer in %s or an RFC 3339 time", s, unit)
}

// jsonEvent is one line of LoadJSONLines.
type jsonEvent struct {
	UserID json.RawMessage `json:"user_id"`
	ItemID json.RawMessage `json:"item_id"`
	Type   string          `json:"type"`
	TS     json.RawMessage `json:"ts"`
	Value  *float64        `json:"value"`
}

// LoadJSONLines reads one event object per line with the fields of the
// clickstream schema: "user_id" and "item_id" (strings or numbers), "type"
// (default "click"), "ts" (unix ms as a number, or an RFC 3339 string;
// missing means 0) and "value" (default 1). Unknown fields are ignored;
// blank lines are skipped.
func LoadJSONLines(r io.Reader) ([]Interaction, error) {
	sc := newScanner(r)
	var out []Interaction
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var ev jsonEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return nil, fmt.Errorf("jsonl line %d: %w", n, err)
		}
		u, err := jsonID(ev.UserID)
		if err != nil {
			return nil, fmt.Errorf("jsonl line %d: user_id: %w", n, err)
		}
		i, err := jsonID(ev.ItemID)
		if err != nil {
			return nil, fmt.Errorf("jsonl line %d: item_id: %w", n, err)
		}
		it := Interaction{User: u, Item: i, Type: ev.Type, Value: 1}
		if it.Type == "" {
			it.Type = TypeClick
		}
		if ev.Value != nil {
			it.Value = *ev.Value
		}
		if len(ev.TS) > 0 && string(ev.TS) != "null" {
			s := string(ev.TS)
			if ev.TS[0] == '"' {
				if err := json.Unmarshal(ev.TS, &s); err != nil {
					return nil, fmt.Errorf("jsonl line %d: ts: %w", n, err)
				}
			}
			if it.TS, err = parseTS(s, "ms"); err != nil {
				return nil, fmt.Errorf("jsonl line %d: %w", n, err)
			}
		}
		out = append(out, it)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read jsonl: %w", err)
	}
	return out, nil
}

func jsonID(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", errors.New("missing")
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		if s == "" {
			return "", errors.New("empty")
		}
		return s, nil
	}
	var num json.Number
	if err := json.Unmarshal(raw, &num); err != nil {
		return "", fmt.Errorf("want a string or a number: %w", err)
	}
	return num.String(), nil
}

// NCFSplit is a published leave-one-out split in the format of the Neural
// Collaborative Filtering paper (He et al., WWW 2017).
type NCFSplit = Split

// LoadNCF reads an NCF split: train and test lines are
// "user\titem\trating\tts" (rating and ts may be placeholders: a rating that
// is not a number reads as 1, a ts that is not an integer as 0; ts is in
// seconds), negatives lines are "(user,item)\tneg1\tneg2...". negatives may
// be nil, in which case the protocol samples them. Each test user must have
// exactly one test line and, when negatives are given, one negatives line
// naming the same item.
func LoadNCF(train, test, negatives io.Reader) (*NCFSplit, error) {
	tr, err := loadNCFRatings(train, "train")
	if err != nil {
		return nil, err
	}
	te, err := loadNCFRatings(test, "test")
	if err != nil {
		return nil, err
	}
	s := &Split{Train: tr, Test: te}
	SortByTime(s.Train)
	testItem := make(map[string]string, len(te))
	for _, it := range te {
		if _, dup := testItem[it.User]; dup {
			return nil, fmt.Errorf("ncf test: user %q has more than one test item", it.User)
		}
		testItem[it.User] = it.Item
	}
	if negatives == nil {
		return s, nil
	}
	s.Negatives = make(map[string][]string, len(te))
	sc := newScanner(negatives)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		key := f[0]
		if !strings.HasPrefix(key, "(") || !strings.HasSuffix(key, ")") {
			return nil, fmt.Errorf("ncf negatives line %d: first field %q: want (user,item)", n, key)
		}
		u, i, ok := strings.Cut(key[1:len(key)-1], ",")
		if !ok {
			return nil, fmt.Errorf("ncf negatives line %d: first field %q: want (user,item)", n, key)
		}
		u, i = strings.TrimSpace(u), strings.TrimSpace(i)
		want, ok := testItem[u]
		if !ok {
			return nil, fmt.Errorf("ncf negatives line %d: user %q has no test item", n, u)
		}
		if want != i {
			return nil, fmt.Errorf("ncf negatives line %d: user %q: item %q, test file says %q", n, u, i, want)
		}
		if _, dup := s.Negatives[u]; dup {
			return nil, fmt.Errorf("ncf negatives line %d: user %q listed twice", n, u)
		}
		s.Negatives[u] = append([]string(nil), f[1:]...)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read ncf negatives: %w", err)
	}
	for u := range testItem {
		if _, ok := s.Negatives[u]; !ok {
			return nil, fmt.Errorf("ncf negatives: user %q has none", u)
		}
	}
	return s, nil
}

func loadNCFRatings(r io.Reader, what string) ([]Interaction, error) {
	if r == nil {
		return nil, fmt.Errorf("ncf %s: no reader", what)
	}
	sc := newScanner(r)
	var out []Interaction
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("ncf %s line %d: want user and item", what, n)
		}
		it := Interaction{User: f[0], Item: f[1], Type: TypeClick, Value: 1}
		if len(f) > 2 {
			if v, err := strconv.ParseFloat(f[2], 64); err == nil {
				it.Value = v
			}
		}
		if len(f) > 3 {
			if ts, err := strconv.ParseInt(f[3], 10, 64); err == nil {
				it.TS = ts * 1000
			}
		}
		out = append(out, it)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read ncf %s: %w", what, err)
	}
	return out, nil
}

// movieLensGenres are the 19 genre flags of u.item, in column order.
var movieLensGenres = []string{
	"unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
	"Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
	"Romance", "Sci-Fi", "Thriller", "War", "Western",
}

// LoadMovieLensGenres reads movie attributes: ML-100K u.item (| separated,
// 19 genre flags), ML-1M movies.dat (id::title::genres) or movies.csv
// (movieId,title,genres with a header). It returns
// {"genre": "Action|Comedy", "title": "..."} per movie; a movie without
// genres has no "genre" key. Latin-1 titles are converted to UTF-8.
func LoadMovieLensGenres(r io.Reader) (map[string]map[string]string, error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(8)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("read movies: %w", err)
	}
	out := map[string]map[string]string{}
	add := func(id, title, genres string) {
		m := map[string]string{}
		if title != "" {
			m["title"] = latin1(title)
		}
		if genres != "" && genres != "(no genres listed)" {
			m["genre"] = genres
		}
		out[id] = m
	}
	if strings.HasPrefix(strings.TrimPrefix(string(head), "\ufeff"), "movieId") {
		cr := csv.NewReader(br)
		cr.FieldsPerRecord = -1
		cr.LazyQuotes = true
		if _, err := cr.Read(); err != nil {
			return nil, fmt.Errorf("read movies.csv header: %w", err)
		}
		for {
			rec, err := cr.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("read movies.csv: %w", err)
			}
			if len(rec) < 3 {
				line, _ := cr.FieldPos(0)
				return nil, fmt.Errorf("movies.csv line %d: want movieId,title,genres", line)
			}
			add(strings.TrimSpace(rec[0]), rec[1], strings.TrimSpace(rec[2]))
		}
		return out, nil
	}
	sc := newScanner(br)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if strings.Contains(line, "::") {
			f := strings.Split(line, "::")
			if len(f) < 3 {
				return nil, fmt.Errorf("movies.dat line %d: want id::title::genres", n)
			}
			add(strings.TrimSpace(f[0]), f[1], strings.TrimSpace(f[2]))
			continue
		}
		f := strings.Split(line, "|")
		if len(f) < 5+len(movieLensGenres) {
			return nil, fmt.Errorf("u.item line %d: %d fields, want %d", n, len(f), 5+len(movieLensGenres))
		}
		flags := f[len(f)-len(movieLensGenres):]
		var gs []string
		for k, fl := range flags {
			if strings.TrimSpace(fl) == "1" {
				gs = append(gs, movieLensGenres[k])
			}
		}
		add(strings.TrimSpace(f[0]), f[1], strings.Join(gs, "|"))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read u.item: %w", err)
	}
	return out, nil
}

// latin1 returns s unchanged when it is valid UTF-8 and otherwise decodes it
// as ISO 8859-1 (the encoding of the older MovieLens files).
func latin1(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteRune(rune(s[i]))
	}
	return b.String()
}
