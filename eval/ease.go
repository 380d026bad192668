package eval

import (
	"context"
	"errors"
	"fmt"

	"github.com/recstream/recstream/internal/ease"
)

// EASEConfig configures EASE.
type EASEConfig struct {
	// Lambda is the L2 regularisation λ; 0 means 500.
	Lambda float64
	// MaxItems refuses catalogues larger than this (the model is a dense
	// items×items matrix: 8·n² bytes while fitting);
	// 0 means 20000.
	MaxItems int
	// Weighting gives the matrix X (the zero value counts events; Binary for
	// the 0/1 matrix of the paper).
	Weighting
}

// EASE is the closed-form linear item-item model of Steck, "Embarrassingly
// Shallow Autoencoders for Sparse Data" (WWW 2019):
//
//	P = (XᵀX + λI)⁻¹,  B = I − P·diagMat(1/diag(P))
//
// i.e. B_ij = −P_ij/P_jj off the diagonal and B_ii = 0, and
// score(u,·) = x_u·B, solved by internal/ease as the production model is.
type EASE struct {
	cfg   EASEConfig
	m     *matrix
	b     []float64 // n×n row-major
	cache scoreCache
}

var _ HistoryModel = (*EASE)(nil)

// NewEASE returns an unfitted EASE model.
func NewEASE(cfg EASEConfig) *EASE {
	if cfg.Lambda == 0 {
		cfg.Lambda = 500
	}
	if cfg.MaxItems == 0 {
		cfg.MaxItems = 20000
	}
	return &EASE{cfg: cfg}
}

// Name implements Model, e.g. "EASE(lambda=500)".
func (e *EASE) Name() string {
	s := fmt.Sprintf("EASE(lambda=%g", e.cfg.Lambda)
	if w := e.cfg.Weighting.String(); w != "" {
		s += "," + w
	}
	return s + ")"
}

// ErrTooManyItems is returned by EASE.Fit for a catalogue above MaxItems.
var ErrTooManyItems = errors.New("ease: too many items for a dense model")

// Fit implements Model.
func (e *EASE) Fit(ctx context.Context, train []Interaction) error {
	e.cache.reset()
	e.m, e.b = nil, nil
	if e.cfg.Lambda < 0 {
		return fmt.Errorf("ease: lambda %g: want >= 0", e.cfg.Lambda)
	}
	m, err := buildMatrix(ctx, train, e.cfg.Weighting)
	if err != nil {
		return err
	}
	n := len(m.items)
	if n == 0 {
		e.m = m
		return nil
	}
	if n > e.cfg.MaxItems {
		return fmt.Errorf("%w: %d > %d", ErrTooManyItems, n, e.cfg.MaxItems)
	}
	// G = XᵀX + λI, upper triangle only (rows are sorted by item index).
	g := make([]float64, n*n)
	for u, row := range m.rows {
		if u&0xff == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		for p, a := range row {
			base := int(a.idx) * n
			for _, b := range row[p:] {
				g[base+int(b.idx)] += a.w * b.w
			}
		}
	}
	b, err := ease.Solve(ctx, g, n, e.cfg.Lambda)
	if err != nil {
		return err
	}
	e.m, e.b = m, b
	return nil
}

// Weight returns B_ij, the weight of item i in the score of item j.
func (e *EASE) Weight(i, j string) float64 {
	if e.m == nil {
		return 0
	}
	a, ok1 := e.m.itemIdx[i]
	c, ok2 := e.m.itemIdx[j]
	if !ok1 || !ok2 {
		return 0
	}
	return e.b[int(a)*len(e.m.items)+int(c)]
}

func (e *EASE) scores(user string) []float64 {
	if e.m == nil {
		return nil
	}
	return e.cache.get(user, func() []float64 {
		u, ok := e.m.userIdx[user]
		if !ok {
			return make([]float64, len(e.m.items))
		}
		return e.scoreHistory(e.m.rows[u])
	})
}

// scoreHistory returns x·B for the history x.
func (e *EASE) scoreHistory(hist []entry) []float64 {
	n := len(e.m.items)
	s := make([]float64, n)
	for _, x := range hist {
		row := e.b[int(x.idx)*n : int(x.idx+1)*n]
		for j, w := range row {
			s[j] += x.w * w
		}
	}
	return s
}

// ScoreEvents implements HistoryModel.
func (e *EASE) ScoreEvents(events []Interaction, candidates []string) []float64 {
	if e.m == nil {
		return pick(nil, nil, candidates)
	}
	return pick(e.m.itemIdx, e.scoreHistory(history(events, e.cfg.Weighting, e.m.itemIdx)), candidates)
}

// TopKEvents implements HistoryModel.
func (e *EASE) TopKEvents(events []Interaction, k int, exclude map[string]bool) []string {
	if e.m == nil {
		return nil
	}
	return topK(e.m.items, e.scoreHistory(history(events, e.cfg.Weighting, e.m.itemIdx)), k, exclude, false)
}

// Score implements Model.
func (e *EASE) Score(ctx context.Context, user string, candidates []string) ([]float64, error) {
	if e.m == nil {
		return pick(nil, nil, candidates), nil
	}
	return pick(e.m.itemIdx, e.scores(user), candidates), nil
}

// TopK implements Model.
func (e *EASE) TopK(ctx context.Context, user string, k int, exclude map[string]bool) ([]string, error) {
	if e.m == nil {
		return nil, nil
	}
	return topK(e.m.items, e.scores(user), k, exclude, false), nil
}
