// Package eval measures recommendation accuracy offline: it loads public
// interaction logs, replays them through models under the standard
// protocols and reports HR, NDCG, precision, recall, MRR, catalogue coverage
// and the popularity of what was recommended. It also holds the brute-force
// batch reference models that the incremental production code is compared
// with. `recstream eval` is a thin command over this package.
//
// # Data
//
// An [Interaction] is one user-item event with a type (browse, click,
// add_to_cart, purchase), a unix-millisecond timestamp and a value. Loaders
// read MovieLens u.data and ratings.dat ([LoadMovieLens]), ratings.csv
// ([LoadMovieLensCSV]), any delimited log through a [CSVMapping] ([LoadCSV];
// [TaobaoMapping] reads the Alibaba UserBehavior log and maps pv, fav, cart,
// buy to browse, click, add_to_cart, purchase), JSON lines in the event
// schema ([LoadJSONLines]), published NCF splits with their negatives
// ([LoadNCF]) and movie genres ([LoadMovieLensGenres]). Loaders return file
// order; the protocols sort by time themselves (stably, so equal timestamps
// keep file order). [FilterMinCounts] applies the usual k-core style filter
// (items first, then users, one pass each).
//
// # Protocols
//
// [LeaveOneOut] holds out each user's latest interaction (ties on the
// timestamp: the last in file order) and ranks it among itself and N
// sampled negatives (default 99, drawn uniformly without replacement with a
// seeded math/rand/v2 PCG from the items the user never interacted with),
// or among the negatives of an NCF file ([LeaveOneOutSplit]). [FullRanking]
// ranks it among every item the user has no training interaction with.
// Ties count against the held-out item: rank = 1 + the number of
// candidates scoring at least as high; items a model cannot score get -Inf.
// Config.Ties can instead hold out, among a user's interactions sharing the
// latest timestamp, the one whose item appears first in the log
// ([TiesFirstSeenItem]): that is what the reference code behind the
// published ML-100K numbers does, and on ML-100K (44% of users have such
// ties) it moves popularity's HR@10 from 0.36 to 0.42. Config.SkipRepeats
// leaves out users whose held-out item is already in their training data.
// [Prequential] replays the log test-then-learn through a [Learner] and
// reports the metrics overall and over equal-count windows (with
// PrequentialConfig.Impressions, each list asked for is shown to an
// [Impressioner] before the event is learnt); [Periodic] turns
// a batch model into a Learner by refitting it, and scores a
// [HistoryModel] (the item-item models) from live user histories between
// refits. [Tune] grid-searches model factories on a validation split carved
// from the training data only.
//
// The published ML-100K protocol (Ferrari Dacrema et al., TOIS 2021; the NCF
// protocol of He et al., WWW 2017) is
//
//	data := eval.FilterMinCounts(all, 5, 20)
//	rs, err := eval.LeaveOneOut(ctx, data, models, eval.Config{
//		Ks: []int{10}, Seed: 1, Ties: eval.TiesFirstSeenItem})
//
// # Metrics
//
// With a single relevant item of rank r: HR@K = [r <= K], NDCG@K =
// 1/log2(r+1) within K, Precision@K = HR@K/K, Recall@K = HR@K, MRR = 1/r
// (untruncated, except in prequential where only the top-K list is known).
// coverage@K is the fraction of the catalogue appearing in any evaluated
// user's top-K list (from the model's TopK, excluding the user's training
// items); popularity@K is the mean training interaction count of the
// recommended items and popularity_norm@K the same divided by the largest
// count. Result metrics are keyed "hr@10", "ndcg@10", "precision@10",
// "recall@10", "mrr", "coverage@10", "popularity@10", "popularity_norm@10".
//
// # Models
//
// [Popularity] ranks by training interaction count. [BatchItemKNN] is
// item-based CF on the binary co-occurrence matrix (cosine, Jaccard, lift or
// raw co-occurrence, with shrinkage and top-K neighbourhoods);
// [BatchUserKNN] is user-based CF (cosine or Pearson, top-K neighbours among
// users sharing an item, R_ui = Σ sim·r_vi / Σ|sim|). [EASE] is Steck's
// closed-form linear autoencoder, solved with a Cholesky factorisation
// (gonum). A [Weighting] turns events into matrix weights: binary, one per
// event, per-type implicit weights ([DefaultWeights]) or the rating. They are
// plain computations meant to be obviously right, not fast; the tests check
// them against hand-computed similarities and, for EASE, against an
// independent matrix inversion. The kNN models leave items without evidence
// (score 0) out of their TopK lists.
//
// # Production models
//
// [Incremental] evaluates the code that runs in production: a [Replay]
// applies the training interactions in time order to a real Redis through
// store.Store.Apply (micro-batches of BatchSize events, one Apply per
// simulated partition, users assigned to partitions by a hash of their id,
// offsets increasing per partition: the ingest consumer's calls), and
// Score and TopK ask scorer.Scorer.Score for the user's blended candidates
// (the score role's computation before it writes a list). Several
// Incremental models with different scorer options (user-kNN only,
// item-kNN only, EASE only, the hybrid) share one Replay, which replays a
// training slice once. The store epoch defaults to the first training
// timestamp so forward-decay factors stay in range for old logs. With a
// ReplayConfig.EASE the scorer's EASE item model is refreshed from the live
// user vectors after the replay (and every EASERefresh events of a
// prequential run). ReplayConfig.Ingest replaces the direct store calls,
// e.g. by the broker and the real processor (`recstream eval --full-path`).
// Every key lives under the store prefix; [DeletePrefix] clears it (and
// refuses an empty prefix).
//
// Where the production caps do not bind (every history item a seed, no
// recency boost, co-occurrence over the whole history, all neighbours, no
// decay), the production user-kNN, item-kNN and EASE scores equal
// [BatchUserKNN], [BatchItemKNN] and [EASE] (binary) exactly; the tests
// check it.
//
// # Output
//
// [WriteTable] prints an aligned table, [WriteJSON] prints
// {"results": [{"model": ..., "protocol": ..., "hr@10": ..., ...}]} and
// [WriteSVG] draws a metric against K, one line per model. A [Progress] bar
// goes to Config.Progress when it is set.
//
// # Reference numbers
//
// ML-100K u.data, FilterMinCounts(5, 20) (99,249 ratings, 941 users, 1,349
// items), LeaveOneOut with 99 negatives, seed 1, K = 10; ItemKNN, UserKNN and
// EASE tuned with [Tune] (ndcg@10) on a validation split of the training
// part. HR@10 / NDCG@10:
//
//	                   ties: last in input   first-seen item   published
//	Popularity              0.3560 / 0.1991   0.4219 / 0.2368   0.4145 / 0.2342
//	ItemKNN cosine          0.5707 / 0.3176   0.5792 / 0.3407   0.5781 / 0.3363
//	UserKNN cosine          0.5473 / 0.3083   0.5760 / 0.3410   0.5834 / 0.3400
//	EASE                    0.5972 / 0.3460   0.6344 / 0.3812   0.6089 / 0.3571
//
// (tuned: ItemKNN k=10 shrink=10 / k=20 shrink=0, UserKNN k=20 shrink=50 /
// k=20 shrink=10, EASE λ=200 / λ=300). Reproduce with
//
//	RECSTREAM_ML100K=$(realpath ../shared/data/ml100k/u.data) go test -run MovieLens100K -v ./eval/
package eval
