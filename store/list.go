package store

import (
	"encoding/json"
	"fmt"
)

// ListFormatVersion is the version of the List payload.
const ListFormatVersion = 1

// List is the payload stored at UserList and TrendingList: one JSON document
// replaced with a single SET, so readers never see a partial list.
type List struct {
	Version     int        `json:"v"`
	User        string     `json:"user,omitempty"`
	GeneratedAt int64      `json:"generated_at"` // unix ms
	Model       string     `json:"model"`
	Variant     string     `json:"variant,omitempty"`
	EventTS     int64      `json:"event_ts,omitempty"` // newest event (unix ms) the list reflects
	Items       []ListItem `json:"items"`
}

// ListItem is one recommended item.
type ListItem struct {
	Item   string  `json:"item"`
	Score  float64 `json:"score"`
	Source string  `json:"source"` // item_knn, user_knn, trending, ...
	Reason string  `json:"reason"`
}

// DecodeList parses a stored list payload.
func DecodeList(b []byte) (List, error) {
	var l List
	if err := json.Unmarshal(b, &l); err != nil {
		return List{}, fmt.Errorf("decoding list: %w", err)
	}
	if l.Version != ListFormatVersion {
		return List{}, fmt.Errorf("decoding list: unsupported format version %d", l.Version)
	}
	return l, nil
}
