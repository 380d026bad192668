package config

import "time"

// AttributionConfig configures impressions, attribution at ingest and
// impression discounting (docs/experiments.md).
type AttributionConfig struct {
	// Window is how long after an item was shown a click, add-to-cart or
	// purchase of it is attributed to the showing; 0 turns attribution
	// and the experiment counters off.
	Window time.Duration `yaml:"window"`
	// ListFallback attributes to the user's current list when the user
	// has no impression within the window.
	ListFallback bool `yaml:"list_fallback"`
	// MaxItems is the most items one impression event may name.
	MaxItems int `yaml:"max_items"`
	// ShownCap is how many shown items are remembered per user.
	ShownCap int `yaml:"shown_cap"`
	// Discount is impression discounting: an item shown to a user k times
	// since the user last clicked it scores discount^k in the user's next
	// lists. 0 turns it off.
	Discount float64 `yaml:"discount"`
}

// SetDefaults sets every attribution key to its default.
func (s *AttributionConfig) SetDefaults() {
	*s = AttributionConfig{
		Window:       24 * time.Hour,
		ListFallback: true,
		MaxItems:     100,
		ShownCap:     500,
		Discount:     0,
	}
}

// Validate checks the attribution section.
func (s AttributionConfig) Validate() error {
	var p problems
	if s.Window < 0 {
		p.add("attribution.window", "must be >= 0 (0 turns attribution off), got %v", s.Window)
	}
	if s.MaxItems < 1 || s.MaxItems > 1000 {
		p.add("attribution.max_items", "must be between 1 and 1000, got %d", s.MaxItems)
	}
	if s.ShownCap < 1 || s.ShownCap > 100000 {
		p.add("attribution.shown_cap", "must be between 1 and 100000, got %d", s.ShownCap)
	}
	if !(s.Discount >= 0 && s.Discount < 1) {
		p.add("attribution.discount", "must be 0 (off) or a factor in (0, 1), got %v", s.Discount)
	}
	return p.err()
}
