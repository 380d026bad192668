// Package scorer computes recstream's recommendation lists from the state
// in the store and writes them.
//
// # Sources
//
// Each rescored user's list blends several sources, each normalised per
// user and weighted (Options.Weight*):
//
//   - user_knn: the user's K most similar users (cosine or Pearson over
//     their decayed weights vectors, with shrinkage), among the recent users
//     of the user's seed items;
//   - item_knn: items that co-occur with the seed items (cosine, Jaccard or
//     lift over the co-occurrence rows and item degrees);
//   - trending: the global trending list;
//   - ease: the EASE item model (EASE), solved in the background from every
//     user's vector over the items with the most users;
//   - content and new: items of the seed items' categories and brands, and
//     new arrivals, from the in-memory catalog (Options.Catalog).
//
// Seeds are the user's strongest items and latest events (the latest boosted
// by Options.RecencyBoost). Purchased items are always dropped, seen items
// with Options.ExcludeSeen; with a catalog, unavailable items are dropped
// (the index and the stored records both checked) and a category may hold
// at most Options.MaxPerCategory places. Every listed item carries the
// source that contributed most and a reason.
//
// # Writing lists
//
// Scorer.Refresh and Variants.Refresh (the A/B split: users assigned by
// salted hash, each list carrying its variant) write through one path: a
// user without state (never seen, expired or erased) gets no list, every
// list gets the list TTL, and with a catalog the item -> lists index is
// updated so that a withdrawn item's holders are rescored.
// Scorer.RefreshTrending writes the anonymous trending list and, with a
// catalog, the per-category trending and new-arrival lists.
//
// # Reads
//
// A chunk of users is scored in three pipelined read rounds (profiles; the
// seed items' co-occurrence rows and recent users; the neighbours' vectors
// and the items' degrees). Other entities' reads are reused for
// Options.NeighbourTTL, and items and users are numbered once per process
// (dense.go), so that scoring works on slices rather than maps of strings.
//
// # Metrics
//
// Variants registers recstream_variant_lists_total{variant} and
// recstream_variant_items_total{variant,source}; the rescore timings are
// the consumer's (package consumer).
package scorer
