package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/recstream/recstream/event"
)

// Item is one catalog record: the attributes of one item. Records are keyed
// by item_id on a compacted topic, so the latest record of an item is its
// current state.
type Item struct {
	ID        string   `json:"item_id"`
	Category  string   `json:"category,omitempty"` // path, e.g. shoes/running
	Brand     string   `json:"brand,omitempty"`
	Price     float64  `json:"price,omitempty"`
	Tags      []string `json:"tags,omitempty"`
	Available bool     `json:"available"`
	CreatedAt int64    `json:"created_at,omitempty"` // unix ms
}

// Reason is a short, bounded failure code of an invalid record, used as the
// DLQ header and metric label.
type Reason string

// Reasons an item record is rejected.
const (
	ReasonEmpty       Reason = "empty"
	ReasonTooLarge    Reason = "too_large"
	ReasonMalformed   Reason = "malformed"
	ReasonBadItemID   Reason = "bad_item_id"
	ReasonKeyMismatch Reason = "key_mismatch"
	ReasonBadCategory Reason = "bad_category"
	ReasonBadBrand    Reason = "bad_brand"
	ReasonBadPrice    Reason = "bad_price"
	ReasonBadTags     Reason = "bad_tags"
	ReasonBadTime     Reason = "bad_created_at"
)

// Reasons lists every Reason.
var Reasons = []Reason{ReasonEmpty, ReasonTooLarge, ReasonMalformed, ReasonBadItemID, ReasonKeyMismatch,
	ReasonBadCategory, ReasonBadBrand, ReasonBadPrice, ReasonBadTags, ReasonBadTime}

// InvalidError is a rejected record with its reason.
type InvalidError struct {
	Reason Reason
	Detail string
}

func (e *InvalidError) Error() string { return "invalid item: " + string(e.Reason) + ": " + e.Detail }

// ReasonOf returns the reason of an *InvalidError, or ReasonMalformed.
func ReasonOf(err error) Reason {
	var ie *InvalidError
	if errors.As(err, &ie) {
		return ie.Reason
	}
	return ReasonMalformed
}

func invalid(r Reason, format string, args ...any) error {
	return &InvalidError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// Limits of a record.
const (
	MaxRecordBytes = 16 << 10
	MaxCategory    = 256 // bytes of the category path
	MaxDepth       = 6   // levels of the category path
	MaxBrand       = 128
	MaxTags        = 32
	MaxTag         = 64
)

// Decode parses and validates one JSON record. key is the Kafka message key
// (the item id; empty to skip the check); kafkaTS is the default created_at.
// A tombstone (empty value with a key) decodes to an unavailable item.
func Decode(key, value []byte, kafkaTS time.Time) (Item, error) {
	if len(value) == 0 {
		if len(key) == 0 {
			return Item{}, invalid(ReasonEmpty, "empty record without key")
		}
		id := string(key)
		if r := event.ValidateID(id, 0); r != "" {
			return Item{}, invalid(ReasonBadItemID, "key %q", trunc(id))
		}
		return Item{ID: id, Available: false}, nil
	}
	if len(value) > MaxRecordBytes {
		return Item{}, invalid(ReasonTooLarge, "%d bytes, limit %d", len(value), MaxRecordBytes)
	}
	var raw struct {
		ID        *string  `json:"item_id"`
		Category  string   `json:"category"`
		Brand     string   `json:"brand"`
		Price     *float64 `json:"price"`
		Tags      []string `json:"tags"`
		Available *bool    `json:"available"`
		CreatedAt *int64   `json:"created_at"`
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return Item{}, invalid(ReasonMalformed, "%v", err)
	}
	if dec.More() {
		return Item{}, invalid(ReasonMalformed, "trailing data")
	}
	if raw.ID == nil {
		return Item{}, invalid(ReasonBadItemID, "missing item_id")
	}
	it := Item{ID: *raw.ID, Category: raw.Category, Brand: raw.Brand, Tags: raw.Tags, Available: true}
	if raw.Price != nil {
		it.Price = *raw.Price
	}
	if raw.Available != nil {
		it.Available = *raw.Available
	}
	if raw.CreatedAt != nil {
		it.CreatedAt = *raw.CreatedAt
	} else if !kafkaTS.IsZero() {
		it.CreatedAt = kafkaTS.UnixMilli()
	}
	if len(key) > 0 && string(key) != it.ID {
		return Item{}, invalid(ReasonKeyMismatch, "key %q, item_id %q", trunc(string(key)), trunc(it.ID))
	}
	return it, it.Validate()
}

// Validate checks the record and normalises nothing: a valid record is
// stored as it is.
func (it Item) Validate() error {
	if r := event.ValidateID(it.ID, 0); r != "" {
		return invalid(ReasonBadItemID, "%q (%s)", trunc(it.ID), r)
	}
	if it.Category != "" {
		if len(it.Category) > MaxCategory {
			return invalid(ReasonBadCategory, "%d bytes, limit %d", len(it.Category), MaxCategory)
		}
		parts := strings.Split(it.Category, "/")
		if len(parts) > MaxDepth {
			return invalid(ReasonBadCategory, "%d levels, limit %d", len(parts), MaxDepth)
		}
		for _, p := range parts {
			if p == "" || !cleanText(p) || strings.ContainsAny(p, "{}|") {
				return invalid(ReasonBadCategory, "%q: empty level or bad character", trunc(it.Category))
			}
		}
	}
	if len(it.Brand) > MaxBrand || !cleanText(it.Brand) || strings.ContainsAny(it.Brand, "{}|") {
		return invalid(ReasonBadBrand, "%q", trunc(it.Brand))
	}
	if math.IsNaN(it.Price) || math.IsInf(it.Price, 0) || it.Price < 0 {
		return invalid(ReasonBadPrice, "%v", it.Price)
	}
	if len(it.Tags) > MaxTags {
		return invalid(ReasonBadTags, "%d tags, limit %d", len(it.Tags), MaxTags)
	}
	for _, t := range it.Tags {
		if t == "" || len(t) > MaxTag || !cleanText(t) || strings.ContainsAny(t, "{}|") {
			return invalid(ReasonBadTags, "%q", trunc(t))
		}
	}
	if it.CreatedAt < 0 {
		return invalid(ReasonBadTime, "%d", it.CreatedAt)
	}
	return nil
}

// Encode returns the JSON record of it.
func Encode(it Item) []byte {
	b, _ := json.Marshal(it)
	return b
}

func cleanText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func trunc(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strconv.Quote(s)[1 : len(strconv.Quote(s))-1]
}

// PriceBand returns the logarithmic price band of a price: band k holds
// prices in [10^(k/2), 10^((k+1)/2)), so neighbouring bands differ by about
// a factor 3.16. Items without a price have band -1.
func PriceBand(price float64) int {
	if price <= 0 {
		return -1
	}
	return int(math.Floor(2 * math.Log10(price+1)))
}

// Ancestors returns the category and each parent path, most specific
// first: shoes/running/trail -> [shoes/running/trail shoes/running shoes].
func Ancestors(category string) []string {
	if category == "" {
		return nil
	}
	out := []string{category}
	for i := len(category) - 1; i > 0; i-- {
		if category[i] == '/' {
			out = append(out, category[:i])
		}
	}
	return out
}
