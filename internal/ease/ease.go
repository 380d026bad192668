// Package ease holds the solver of the EASE item model (Steck,
// "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019) that the
// production model (scorer.EASE) and the offline one (eval.EASE) share:
//
//	P = (G + λI)⁻¹,  B = I − P·diagMat(1/diag(P))
//
// i.e. B_ij = −P_ij/P_jj off the diagonal and B_ii = 0, where G = XᵀX is the
// Gram matrix of the user-item matrix X, and score(u,·) = x_u·B. P comes
// from a Cholesky factorisation of the symmetric positive definite G + λI
// (gonum's LAPACK).
package ease

import (
	"context"
	"errors"
	"fmt"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/lapack64"
)

// Solve turns g, the n×n row-major Gram matrix XᵀX of which only the upper
// triangle (i <= j) is read, into B, in place, and returns it: the only
// n×n matrix it holds is g (the Cholesky factor and the inverse overwrite
// its upper triangle, LAPACK's potrf and potri). λ is added to the
// diagonal first. ctx is checked between the factorisation and the
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
	t, ok := lapack64.Potrf(blas64.Symmetric{Uplo: blas.Upper, N: n, Stride: n, Data: g})
	if !ok {
		return nil, errors.New("ease: XᵀX + λI is not positive definite (λ = 0 with a singular Gram matrix?)")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if _, ok := lapack64.Potri(t); !ok {
		return nil, errors.New("ease: inverting the Gram matrix failed")
	}
	// g's upper triangle holds P; B_ij = −P_ij/P_jj fills both triangles.
	d := make([]float64, n)
	for j := range n {
		d[j] = g[j*n+j]
	}
	for i := range n {
		g[i*n+i] = 0
		for j := i + 1; j < n; j++ {
			p := g[i*n+j]
			g[i*n+j] = -p / d[j]
			g[j*n+i] = -p / d[i]
		}
	}
	return g, nil
}
