// Package store is recstream's Redis state: the fenced, batched write path of
// the ingest consumer and the pipelined reads of the scorer.
//
// # Keys
//
// Every key starts with the configured prefix. One user's keys share the hash
// tag {u:<id>}, one item's keys {i:<id>}, the global keys {g}; each Lua script
// touches the keys of one tag only, so the layout is Redis Cluster safe. See
// Keys and docs/keys.md for the contract.
//
// # Fences
//
// Every mutation carries its source (partition, offset). Each key group keeps
// one fence per source partition (hash field f:<partition> in its meta hash)
// and an event is applied only when its offset is above that fence,
// advancing the fence in the same atomic step. A replayed, retried or zombie
// batch is therefore harmless, however its boundaries fall.
//
// # Batches
//
// ApplyUsers takes one partition's batch and applies each user's events in
// the process, to a copy of the user's keys (userstate.go) kept between
// batches (Options.UserCache per source partition, least recently used
// out; TrimUserCopies and AssignedPartitions drop idle copies, copies
// over the memory limit and those of partitions the process lost) or
// read in one pipelined round trip. A user's weights, log and purchases
// are one msgpack blob (userblob.go), read with one GET and written whole
// with one SET carrying its TTL. Each changed user is written
// with one guarded write (guarded.go): plain commands run by a small
// script only while the user's meta hash still holds n, gone and the
// partition's fence as the copy does. A write refused because another
// writer got there first (an erasure, a zombie, a batch of another
// partition of the user) drops the copy; the user is read again and its
// events applied again, the fences skipping what was applied. Applying
// answers, for every event, whether it made the item new for the user and
// which earlier items it co-occurs with; that answer is read back from the
// user's event log for events an earlier run applied, so item-side updates
// are replayable. The answers are collected in an ItemWork, over one batch or several (an item
// window), and ApplyItems writes them summed per item: one script per item
// touched, one for trending and one for the experiment counters, fenced by
// the first and last offsets they cover. Apply is both for one batch.
//
// # Item owners
//
// With item owners (ingest.item_owner), ItemWork.TakeUpdates turns the
// item half into ItemUpdate messages, one per item, holding the item's
// contributions per source offset, which the ingest consumer sends to the
// repartition topic. An ItemOwner (itemowner.go) keeps the items of its
// repartition partitions in memory, applies the contributions above each
// item's per-source-partition fences and writes each changed item with
// one guarded write on its version v, n and pop (rows whole, as one
// folded entry), and trending by version (lua/owner_trending.lua).
//
// # Attribution
//
// Impressions (event.Impression) go through the user half under the same
// fence but carry no weight. It remembers what was shown, decides
// for each click, cart and purchase whether and to what showing it is
// attributed, and logs each decision with its offset in the user's
// attribution log, which answers fenced events on a replay; the decisions,
// summed per item window, become the global experiment counters
// (experiment.go, lua/experiment.lua; package experiment reports them).
//
// # Entries
//
// The entries of the user log, the attribution log, the shown-items hash
// and the co-occurrence and next-item rows each have one codec in
// entry.go: a Go type, an append function and a parse function, with the
// exact bytes the store and its scripts write. Readers and writers go through them; a
// malformed entry is an error its reader skips (and counts, for rows).
//
// # Decay
//
// Weights are stored scaled to a fixed epoch, w·2^((t−epoch)/half-life), in
// event time: decaying needs no rewrite and replays give the same state.
package store
