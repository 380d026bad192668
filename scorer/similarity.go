package scorer

import "math"

// Cosine is the cosine similarity of two sparse vectors.
func Cosine(a, b map[string]float64) float64 {
	if len(a) > len(b) {
		a, b = b, a
	}
	var dot float64
	for k, x := range a {
		if y, ok := b[k]; ok {
			dot += x * y
		}
	}
	if dot == 0 {
		return 0
	}
	return dot / (norm(a) * norm(b))
}

func norm(a map[string]float64) float64 {
	var s float64
	for _, x := range a {
		s += x * x
	}
	return math.Sqrt(s)
}

func mean(a map[string]float64) float64 {
	if len(a) == 0 {
		return 0
	}
	var s float64
	for _, x := range a {
		s += x
	}
	return s / float64(len(a))
}

// Pearson is the Pearson correlation of two sparse vectors over the items
// both contain, each centred on the mean of its own entries (the classic
// user-based CF form). Fewer than two common items give 0.
func Pearson(a, b map[string]float64) float64 {
	ma, mb := mean(a), mean(b)
	var num, da, db float64
	common := 0
	for k, x := range a {
		y, ok := b[k]
		if !ok {
			continue
		}
		common++
		x -= ma
		y -= mb
		num += x * y
		da += x * x
		db += y * y
	}
	if common < 2 || da == 0 || db == 0 {
		return 0
	}
	return num / math.Sqrt(da*db)
}

// ItemSimilarity turns a co-occurrence c of items i and j with degrees ni and
// nj into a similarity: cosine c/(√(ni·nj)+shrink), jaccard
// c/(ni+nj−c+shrink) or lift c/(ni·nj+shrink).
func ItemSimilarity(kind string, c, ni, nj, shrink float64) float64 {
	if c <= 0 || ni <= 0 || nj <= 0 {
		return 0
	}
	switch kind {
	case "jaccard":
		d := ni + nj - c
		if d <= 0 {
			d = c
		}
		return c / (d + shrink)
	case "lift":
		return c / (ni*nj + shrink)
	default:
		return c / (math.Sqrt(ni*nj) + shrink)
	}
}
