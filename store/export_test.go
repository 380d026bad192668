package store

// FailAfterUsers makes the next Apply return an error after its user phase,
// as a crash between the two phases would.
func (s *Store) FailAfterUsers() { s.failAfterUsers = true }

// SetFoldHook makes FoldCooc call f between reading the rows and writing
// their folds, as a slow process would.
func (s *Store) SetFoldHook(f func()) { s.foldHook = f }

// SetItemChunk sets how many item scripts ApplyItems sends per pipeline
// until the returned function restores it.
func SetItemChunk(n int) (restore func()) {
	old := itemChunk
	itemChunk = n
	return func() { itemChunk = old }
}
