package store

// Keys builds every Redis key recstream uses. All of one user's keys share
// the hash tag {u:<id>}, all of one item's keys the hash tag {i:<id>}, and the
// global keys the hash tag {g}, so each Lua script touches one Cluster slot.
type Keys struct {
	Prefix string
}

// UserState is a string: the user's weights, log and purchases as one
// msgpack blob (userblob.go).
func (k Keys) UserState(user string) string { return k.Prefix + "{u:" + user + "}:s" }

// UserWeights is a zset item -> scaled implicit weight, the user's weights
// as written before UserState held them: read for a user without
// UserState, deleted by the user's next write (userblob.go).
func (k Keys) UserWeights(user string) string { return k.Prefix + "{u:" + user + "}:w" }

// UserLog is a list of the user's recent events, newest first, as written
// before UserState held them (read and deleted as UserWeights).
func (k Keys) UserLog(user string) string { return k.Prefix + "{u:" + user + "}:log" }

// UserMeta is a hash: f:<partition> fences, n events, ts last event time.
func (k Keys) UserMeta(user string) string { return k.Prefix + "{u:" + user + "}:m" }

// UserPurchased is a zset item -> purchase time (unix ms), as written
// before UserState held the purchases (read and deleted as UserWeights).
func (k Keys) UserPurchased(user string) string { return k.Prefix + "{u:" + user + "}:buy" }

// UserList is the user's recommendation list (JSON payload, with TTL).
func (k Keys) UserList(user string) string { return k.Prefix + "{u:" + user + "}:list" }

// ItemUsers is a zset user -> last interaction time (unix ms).
func (k Keys) ItemUsers(item string) string { return k.Prefix + "{i:" + item + "}:u" }

// ItemCooc is the item's co-occurrence row: a list of entries (other items'
// decayed co-occurrence counts) folded by its readers, see cooc.go. (It was
// a zset under {i:<id>}:co; such keys are no longer read and expire.)
func (k Keys) ItemCooc(item string) string { return k.Prefix + "{i:" + item + "}:cl" }

// ItemMeta is a hash: f:<partition> fences, n decayed distinct users, pop
// decayed weighted popularity.
func (k Keys) ItemMeta(item string) string { return k.Prefix + "{i:" + item + "}:m" }

// Trending is the global zset item -> decayed weight.
func (k Keys) Trending() string { return k.Prefix + "{g}:trend" }

// TrendingFence is the hash of per-partition fences for Trending.
func (k Keys) TrendingFence() string { return k.Prefix + "{g}:trend:f" }

// TrendingVersions is the hash item -> version of the item owner's write
// that Trending's weight of the item comes from (itemowner.go).
func (k Keys) TrendingVersions() string { return k.Prefix + "{g}:trend:v" }

// TrendingList is the anonymous visitors' list (same payload as UserList).
func (k Keys) TrendingList() string { return k.Prefix + "{g}:list:trending" }

// UserShownAt is a zset item -> when the item was last shown to the user
// (unix ms), bounding UserShown.
func (k Keys) UserShownAt(user string) string { return k.Prefix + "{u:" + user + "}:imp" }

// UserShown is a hash item -> what the user was last shown of it
// (ts|n|done|pos|via|variant|source, see userstate.go), plus the user's
// experiment state in fields starting with a space.
func (k Keys) UserShown(user string) string { return k.Prefix + "{u:" + user + "}:imd" }

// UserAttribution is a list of the user's attribution decisions, newest
// first: offset|partition|record.
func (k Keys) UserAttribution(user string) string { return k.Prefix + "{u:" + user + "}:att" }

// Experiment is the global hash of experiment counters (experiment.go).
func (k Keys) Experiment() string { return k.Prefix + "{g}:exp" }

// ExperimentFence is the hash of per-partition fences for Experiment.
func (k Keys) ExperimentFence() string { return k.Prefix + "{g}:exp:f" }
