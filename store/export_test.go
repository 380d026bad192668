package store

// FailAfterUsers makes the next Apply return an error after its user phase,
// as a crash between the two phases would.
func (s *Store) FailAfterUsers() { s.failAfterUsers = true }
