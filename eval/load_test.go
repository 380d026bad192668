package eval_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/recstream/recstream/eval"
)

func TestLoadMovieLens(t *testing.T) {
	udata := "196\t242\t3\t881250949\n186\t302\t3.5\t891717742\n\n"
	dat := "1::1193::5::978300760\n1::661::3::978302109\n"
	want := []eval.Interaction{
		{User: "196", Item: "242", Type: "click", TS: 881250949000, Value: 3},
		{User: "186", Item: "302", Type: "click", TS: 891717742000, Value: 3.5},
	}
	got, err := eval.LoadMovieLens(strings.NewReader(udata))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("u.data: got %+v", got)
	}
	got, err = eval.LoadMovieLens(strings.NewReader(dat))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1] != (eval.Interaction{User: "1", Item: "661", Type: "click", TS: 978302109000, Value: 3}) {
		t.Fatalf("ratings.dat: got %+v", got)
	}
	if _, err := eval.LoadMovieLens(strings.NewReader("1\t2\tx\t3\n")); err == nil {
		t.Error("bad rating: want error")
	}
	if _, err := eval.LoadMovieLens(strings.NewReader("1\t2\n")); err == nil {
		t.Error("short line: want error")
	}
}

func TestLoadMovieLensCSV(t *testing.T) {
	in := "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n"
	got, err := eval.LoadMovieLensCSV(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []eval.Interaction{
		{User: "1", Item: "1", Type: "click", TS: 964982703000, Value: 4},
		{User: "1", Item: "3", Type: "click", TS: 964981247000, Value: 4.5},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
}

func TestLoadCSVTaobao(t *testing.T) {
	in := "1,2268318,2520377,pv,1511544070\n1,2333346,2520771,cart,1511561733\n" +
		"2,2268318,2520377,buy,1511572885\n3,9,77,fav,1511572886\n"
	got, attrs, err := eval.LoadCSV(strings.NewReader(in), eval.TaobaoMapping())
	if err != nil {
		t.Fatal(err)
	}
	want := []eval.Interaction{
		{User: "1", Item: "2268318", Type: "browse", TS: 1511544070000, Value: 1},
		{User: "1", Item: "2333346", Type: "add_to_cart", TS: 1511561733000, Value: 1},
		{User: "2", Item: "2268318", Type: "purchase", TS: 1511572885000, Value: 1},
		{User: "3", Item: "9", Type: "click", TS: 1511572886000, Value: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
	if attrs["2268318"]["category"] != "2520377" || attrs["9"]["category"] != "77" || len(attrs) != 3 {
		t.Fatalf("attrs %v", attrs)
	}
	// Unmapped behaviour: error, or skipped on request.
	bad := in + "4,5,6,share,1511572887\n"
	if _, _, err := eval.LoadCSV(strings.NewReader(bad), eval.TaobaoMapping()); err == nil {
		t.Error("unmapped behaviour: want error")
	}
	m := eval.TaobaoMapping()
	m.SkipUnmapped = true
	got, _, err = eval.LoadCSV(strings.NewReader(bad), m)
	if err != nil || len(got) != 4 {
		t.Fatalf("skip unmapped: %d rows, %v", len(got), err)
	}
}

func TestLoadCSVHeaderNames(t *testing.T) {
	in := "ts;who;what;event;price;brand\n" +
		"1700000000123;u1;i1;view;9.5;acme\n" +
		"2023-11-14T22:13:21Z;u2;i1;buy;9.5;\n"
	m := eval.CSVMapping{
		Comma: ';', Header: true, User: "who", Item: "what", TS: "ts", TSUnit: "ms",
		Type: "event", TypeMap: map[string]string{"view": "browse", "buy": "purchase"},
		Value: "price", Attrs: map[string]string{"brand": "brand"},
	}
	got, attrs, err := eval.LoadCSV(strings.NewReader(in), m)
	if err != nil {
		t.Fatal(err)
	}
	want := []eval.Interaction{
		{User: "u1", Item: "i1", Type: "browse", TS: 1700000000123, Value: 9.5},
		{User: "u2", Item: "i1", Type: "purchase", TS: 1700000001000, Value: 9.5},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
	if attrs["i1"]["brand"] != "acme" {
		t.Fatalf("attrs %v", attrs)
	}
	// No type column: DefaultType; missing column names are errors.
	got, _, err = eval.LoadCSV(strings.NewReader("a,b\nx,y\n"), eval.CSVMapping{Header: true, User: "a", Item: "b", DefaultType: "purchase"})
	if err != nil || len(got) != 1 || got[0].Type != "purchase" || got[0].TS != 0 {
		t.Fatalf("default type: %+v %v", got, err)
	}
	if _, _, err := eval.LoadCSV(strings.NewReader("a,b\nx,y\n"), eval.CSVMapping{Header: true, User: "a", Item: "nope"}); err == nil {
		t.Error("unknown column: want error")
	}
	if _, _, err := eval.LoadCSV(strings.NewReader("x,y\n"), eval.CSVMapping{User: "0", Item: "1", TS: "5"}); err == nil {
		t.Error("short row: want error")
	}
}

func TestLoadJSONLines(t *testing.T) {
	in := `{"user_id":"u1","item_id":"i1","type":"add_to_cart","ts":1700000000000,"value":2.5,"session_id":"s"}
{"user_id":42,"item_id":7,"ts":"2023-11-14T22:13:20Z"}

{"user_id":"u3","item_id":"i3","type":"purchase"}
`
	got, err := eval.LoadJSONLines(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []eval.Interaction{
		{User: "u1", Item: "i1", Type: "add_to_cart", TS: 1700000000000, Value: 2.5},
		{User: "42", Item: "7", Type: "click", TS: 1700000000000, Value: 1},
		{User: "u3", Item: "i3", Type: "purchase", TS: 0, Value: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
	for _, bad := range []string{`{"item_id":"i"}`, `{"user_id":"u","item_id":""}`, `{"user_id":"u","item_id":"i","ts":"yesterday"}`, `not json`} {
		if _, err := eval.LoadJSONLines(strings.NewReader(bad)); err == nil {
			t.Errorf("%s: want error", bad)
		}
	}
}

func TestLoadNCF(t *testing.T) {
	train := "0\t32\t4\t978824330\n0\t34\t4\t978824291\n1\t32\t5\t978300000\n"
	test := "0\t25\t5\t978824351\n1\t133\t3\t978300760\n"
	negs := "(0,25)\t1064\t174\t2791\n(1,133)\t1072\t3154\t3368\n"
	s, err := eval.LoadNCF(strings.NewReader(train), strings.NewReader(test), strings.NewReader(negs))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Train) != 3 || len(s.Test) != 2 {
		t.Fatalf("train %d test %d", len(s.Train), len(s.Test))
	}
	// Train is time-sorted.
	if s.Train[0].Item != "32" || s.Train[0].User != "1" || s.Train[2].Item != "32" || s.Train[1].Item != "34" {
		t.Fatalf("train order %+v", s.Train)
	}
	if !reflect.DeepEqual(s.Negatives["0"], []string{"1064", "174", "2791"}) || !reflect.DeepEqual(s.Negatives["1"], []string{"1072", "3154", "3368"}) {
		t.Fatalf("negatives %v", s.Negatives)
	}
	if s.Test[0] != (eval.Interaction{User: "0", Item: "25", Type: "click", TS: 978824351000, Value: 5}) {
		t.Fatalf("test %+v", s.Test[0])
	}
	// Placeholders in rating and ts.
	s, err = eval.LoadNCF(strings.NewReader("0\t1\t-\t-\n"), strings.NewReader("0\t2\n"), nil)
	if err != nil || s.Train[0].Value != 1 || s.Train[0].TS != 0 || s.Negatives != nil {
		t.Fatalf("placeholders: %+v %v", s, err)
	}
	// A negatives line naming another item than the test file is an error.
	if _, err := eval.LoadNCF(strings.NewReader(train), strings.NewReader(test), strings.NewReader("(0,26)\t1\n(1,133)\t2\n")); err == nil {
		t.Error("mismatched negatives: want error")
	}
	if _, err := eval.LoadNCF(strings.NewReader(train), strings.NewReader(test), strings.NewReader("(0,25)\t1\n")); err == nil {
		t.Error("missing negatives: want error")
	}
}

func TestLoadMovieLensGenres(t *testing.T) {
	uitem := "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n" +
		"2|GoldenEye (1995)|01-Jan-1995||http://y|0|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0\n" +
		"3|Caf\xe9 (1990)|||http://z|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
	got, err := eval.LoadMovieLensGenres(strings.NewReader(uitem))
	if err != nil {
		t.Fatal(err)
	}
	if got["1"]["genre"] != "Animation|Children's|Comedy" || got["2"]["genre"] != "Action|Adventure|Thriller" {
		t.Fatalf("u.item genres %v", got)
	}
	if _, ok := got["3"]["genre"]; ok || got["3"]["title"] != "Café (1990)" {
		t.Fatalf("u.item movie 3 %v", got["3"])
	}
	csv := "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n2,\"Jumanji, The (1995)\",(no genres listed)\n"
	got, err = eval.LoadMovieLensGenres(strings.NewReader(csv))
	if err != nil {
		t.Fatal(err)
	}
	if got["1"]["genre"] != "Adventure|Animation" || got["2"]["title"] != "Jumanji, The (1995)" || got["2"]["genre"] != "" {
		t.Fatalf("movies.csv %v", got)
	}
	got, err = eval.LoadMovieLensGenres(strings.NewReader("1::Toy Story (1995)::Animation|Comedy\n"))
	if err != nil || got["1"]["genre"] != "Animation|Comedy" {
		t.Fatalf("movies.dat %v %v", got, err)
	}
}

func TestFilterMinCounts(t *testing.T) {
	// Items: a×3, b×2, c×1. minItem 2 drops c. Users then: u1 {a,b,(c)} -> 2,
	// u2 {a,b} -> 2, u3 {a} -> 1. minUser 2 drops u3, which leaves a with 2
	// interactions: a single pass, so nothing more is dropped.
	in := []eval.Interaction{
		{User: "u1", Item: "a"}, {User: "u1", Item: "b"}, {User: "u1", Item: "c"},
		{User: "u2", Item: "a"}, {User: "u2", Item: "b"},
		{User: "u3", Item: "a"},
	}
	got := eval.FilterMinCounts(in, 2, 2)
	want := []eval.Interaction{
		{User: "u1", Item: "a"}, {User: "u1", Item: "b"},
		{User: "u2", Item: "a"}, {User: "u2", Item: "b"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
	// Items are filtered before users: u4 has 3 interactions but two of them
	// are on a rare item, so u4 falls below minUser 2.
	in2 := []eval.Interaction{
		{User: "u4", Item: "x"}, {User: "u4", Item: "y"}, {User: "u4", Item: "p"},
		{User: "u5", Item: "p"}, {User: "u5", Item: "q"}, {User: "u6", Item: "p"}, {User: "u6", Item: "q"},
	}
	got = eval.FilterMinCounts(in2, 2, 2)
	for _, it := range got {
		if it.User == "u4" || it.Item == "x" || it.Item == "y" {
			t.Fatalf("kept %+v", it)
		}
	}
	if len(got) != 4 {
		t.Fatalf("got %d rows", len(got))
	}
}
