package eval

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// TuneConfig configures Tune.
type TuneConfig struct {
	// Config is the validation protocol's configuration (cutoffs,
	// negatives, seed, progress). The cutoff of Metric is added to Ks.
	Config
	// Metric is the key to maximise; "" means "ndcg@10".
	Metric string
	// Full validates with full ranking instead of sampled negatives.
	Full bool
}

// TuneResult is the outcome of Tune.
type TuneResult struct {
	// Best is the index of the winning factory; ties go to the earlier one.
	Best int
	// Model is a fresh, unfitted instance from the winning factory.
	Model Model
	// Metric is the key that was maximised and Score its best value.
	Metric string
	Score  float64
	// Results are the validation results of every factory, in order.
	Results []Result
}

// Tune grid-searches factories on a validation split carved only from
// train: each user's latest training interaction is held out (ties by
// cfg.Ties) and the rest fits the candidates. Pass the training part of a
// split (Split.Train), never the full log, so the test interactions stay
// unseen. Every candidate sees the same validation negatives.
func Tune(ctx context.Context, train []Interaction, factories []func() Model, cfg TuneConfig) (TuneResult, error) {
	if len(factories) == 0 {
		return TuneResult{}, errors.New("tune: no candidates")
	}
	metric := cfg.Metric
	if metric == "" {
		metric = MetricKey(MetricNDCG, 10)
	}
	if _, k := splitKey(metric); k > 0 && !slices.Contains(cfg.Ks, k) {
		cfg.Ks = append(slices.Clone(cfg.Ks), k)
	}
	val := SplitLeaveOneOutTies(train, cfg.Ties)
	if len(val.Test) == 0 {
		return TuneResult{}, fmt.Errorf("tune: %w", ErrNoData)
	}
	if !cfg.Full {
		val.SampleNegatives(cfg.negatives(), cfg.Seed)
	}
	res := TuneResult{Best: -1, Metric: metric}
	for n, f := range factories {
		m := f()
		var (
			rs  []Result
			err error
		)
		if cfg.Full {
			rs, err = FullRankingSplit(ctx, val, []Model{m}, cfg.Config)
		} else {
			rs, err = LeaveOneOutSplit(ctx, val, []Model{m}, cfg.Config)
		}
		if err != nil {
			return TuneResult{}, fmt.Errorf("tune: candidate %d: %w", n, err)
		}
		r := rs[0]
		r.Protocol = "validation-" + r.Protocol
		res.Results = append(res.Results, r)
		v, ok := r.Metrics[metric]
		if !ok {
			return TuneResult{}, fmt.Errorf("tune: metric %q not measured (have %v)", metric, metricKeys(rs))
		}
		if res.Best < 0 || v > res.Score {
			res.Best, res.Score = n, v
		}
	}
	res.Model = factories[res.Best]()
	return res, nil
}
