package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// VariantSpec is one parsed entry of scorer.variants.
type VariantSpec struct {
	Name  string
	Share float64
	// Weights overrides scorer.weights for this variant, by source name
	// (user_knn, item_knn, trending, content, new_arrivals, popular).
	Weights map[string]float64
}

// Apply returns w with the variant's overrides.
func (v VariantSpec) Apply(w ScorerWeights) ScorerWeights {
	for k, x := range v.Weights {
		switch k {
		case "user_knn":
			w.UserKNN = x
		case "item_knn":
			w.ItemKNN = x
		case "trending":
			w.Trending = x
		case "content":
			w.Content = x
		case "new_arrivals":
			w.NewArrivals = x
		case "popular":
			w.Popular = x
		}
	}
	return w
}

// ParseVariants parses scorer.variants entries "name:share[:source=weight;...]",
// for example "control:50" and "content:50:content=1;item_knn=0.5".
func ParseVariants(specs []string) ([]VariantSpec, error) {
	out := make([]VariantSpec, 0, len(specs))
	seen := map[string]bool{}
	for _, sp := range specs {
		parts := strings.SplitN(sp, ":", 3)
		if len(parts) < 2 {
			return nil, fmt.Errorf("%q: want name:share[:source=weight;...]", sp)
		}
		v := VariantSpec{Name: strings.TrimSpace(parts[0]), Weights: map[string]float64{}}
		if err := checkKafkaName(v.Name); err != nil {
			return nil, fmt.Errorf("%q: name %v", sp, err)
		}
		if seen[v.Name] {
			return nil, fmt.Errorf("%q: duplicate variant name", sp)
		}
		seen[v.Name] = true
		sh, err := strconv.ParseFloat(strings.TrimSpace(parts[1]), 64)
		if err != nil || !(sh > 0) || math.IsInf(sh, 0) {
			return nil, fmt.Errorf("%q: share must be a number > 0", sp)
		}
		v.Share = sh
		if len(parts) == 3 && strings.TrimSpace(parts[2]) != "" {
			for _, kv := range strings.Split(parts[2], ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
				if !ok {
					return nil, fmt.Errorf("%q: weight %q: want source=weight", sp, kv)
				}
				switch k {
				case "user_knn", "item_knn", "trending", "content", "new_arrivals", "popular":
				default:
					return nil, fmt.Errorf("%q: unknown source %q (want user_knn, item_knn, trending, content, new_arrivals or popular)", sp, k)
				}
				x, err := strconv.ParseFloat(val, 64)
				if err != nil || x < 0 || math.IsNaN(x) || math.IsInf(x, 0) {
					return nil, fmt.Errorf("%q: weight of %s must be a number >= 0", sp, k)
				}
				v.Weights[k] = x
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// Validate checks the catalog section.
func (s CatalogConfig) Validate(k KafkaConfig) error {
	var p problems
	if err := checkKafkaName(s.Group); err != nil {
		p.add("catalog.group", "%v", err)
	} else if s.Group == k.IngestGroup || s.Group == k.ScoreGroup {
		p.add("catalog.group", "must differ from kafka.ingest_group and kafka.score_group, got %q", s.Group)
	}
	return p.err()
}
