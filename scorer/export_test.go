package scorer

// SetMaxNumbered bounds how many items or users s numbers before it starts
// a new numbering.
func SetMaxNumbered(s *Scorer, n int) { s.maxNumbered = n }

// Numbering identifies the numbering s works with now.
func Numbering(s *Scorer) any { return s.num.Load() }
