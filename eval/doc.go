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
// [Prequential] replays the log test-then-learn through a [Learner] and
// reports the metrics overall and over equal-count windows; [Periodic] turns
// a batch model into a Learner by refitting it. [Tune] grid-searches model
// factories on a validation split carved from the training data only.
//
// The published ML-100K protocol (Ferrari Dacrema et al., TOIS 2021; the NCF
// protocol of He et al., WWW 2017) is
//
//	data := eval.FilterMinCounts(all, 5, 20)
//	rs, err := eval.LeaveOneOut(ctx, data, models, eval.Config{Ks: []int{10}, Seed: 1})
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
// plain, single-pass computations meant to be obviously right, not fast.
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
// ML-100K u.data, FilterMinCounts(5, 20), LeaveOneOut with 99 negatives,
// seed 1, K = 10, hyper-parameters tuned with [Tune] on the validation
// split (ndcg@10); see the package tests' TestMovieLens100K, run with
// RECSTREAM_ML100K=path/to/u.data go test -run MovieLens100K ./eval/.
// The numbers are in the project's docs.
package eval
