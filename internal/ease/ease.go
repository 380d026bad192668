// Package ease holds the solver of the EASE item model (Steck,
// "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019) that the
// production model (scorer.EASE) and the offline one (eval.EASE) share:
//
//	P = (G + λI)⁻¹,  B = I − P·diagMat(1/diag(P))
//
// i.e. B_ij = −P_ij/P_jj off the diagonal and B_ii = 0, where G = XᵀX is the
// Gram matrix of the user-item matrix X, and score(u,·) = x_u·B. P comes
// from a Cholesky factorisation of the symmetric positive definite G + λI
// (gonum/mat).
package ease

import (
	"context"
	"errors"
	"fmt"

	"gonum.org/v1/gonum/mat"
)

// Solve turns g, the n×n row-major Gram matrix XᵀX of which only the upper
// triangle (i <= j) is read, into B, in place, and returns it. λ is added
// to the diagonal first. ctx is checked between the factorisation and the
// inversion, the two O(n³) steps.
func Solve(ctx context.Context, g []float64, n int, lambda float64) ([]float64, error) {
	if len(g) != n*n {
		return nil, fmt.Errorf("ease: Gram matrix of %d values for %d items", len(g), n)
	}
	if n == 0 {
		return g, nil
	}
	for i := range n {
		g[i*n+i] += lambda
	}
	var ch mat.Cholesky
	if ok := ch.Factorize(mat.NewSymDense(n, g)); !ok {
		return nil, errors.New("ease: XᵀX + λI is not positive definite (λ = 0 with a singular Gram matrix?)")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var p mat.SymDense
	if err := ch.InverseTo(&p); err != nil {
		return nil, fmt.Errorf("ease: inverting the Gram matrix: %w", err)
	}
	raw := p.RawSymmetric() // upper triangle valid
	at := func(i, j int) float64 {
		if i > j {
			i, j = j, i
		}
		return raw.Data[i*raw.Stride+j]
	}
	b := g
	for i := range n {
		for j := range n {
			if i == j {
				b[i*n+j] = 0
			} else {
				b[i*n+j] = -at(i, j) / at(j, j)
			}
		}
	}
	return b, nil
}
